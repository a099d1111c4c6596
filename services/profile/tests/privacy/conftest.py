"""Fixtures of the privacy tests.

Key rotation, the retention purge and tampering with the audit log act on a whole database, so
those tests run against a profile service of their own (`isolated_profile`, on a fresh database)
and leave the session's shared service alone.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.type import date_pb2, money_pb2, postal_address_pb2

from crm.common.v1 import audit_pb2, operation_pb2
from crm.profile.v1 import (
    attribute_pb2,
    consent_pb2,
    customer_pb2,
    data_class_pb2,
    event_pb2,
    holding_pb2,
    operations_pb2,
    profile_service_pb2_grpc,
    relationship_pb2,
)
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.app import SPEC
from crmkit.auth import Role
from crmkit.crypto import DecryptionError, KeyRing
from crmkit.testing import DatabaseFactory, bearer, eventually, migrated_database, running_service

ADMIN = bearer(Role.ADMIN, subject="privacy-officer")
SERVICE = bearer(Role.SERVICE, subject="core-banking")
DSR = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_SUBJECT_REQUEST, justification="DSR-2026-0042")
SERVE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="counter")
FINAL = {operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
         operation_pb2.OPERATION_STATE_CANCELLED}

ISOLATED_KEYS = {
    "encryption_keys": f"k1:{base64.b64encode(os.urandom(32)).decode()},"
                       f"k2:{base64.b64encode(os.urandom(32)).decode()}",
    "active_key_id": "k1",
    "blind_index_key": base64.b64encode(os.urandom(32)).decode(),
    "feed_poll_seconds": 0.05,
    "quality_cache_seconds": 0,
    "matcher_enabled": False,
    # No legal floors, so tests can set periods of a day; no purge by the clock.
    "retention_minimum_days": {},
    "retention_purge_interval_hours": 0,
}


@pytest.fixture(scope="session")
async def isolated_profile(database_factory: DatabaseFactory) -> AsyncIterator[tuple[Any, Any]]:
    """A profile service on its own database: (channel, runtime)."""
    url = await migrated_database(database_factory, SPEC)
    async with running_service(SPEC, database_url=url, **ISOLATED_KEYS) as running:
        yield running


@pytest.fixture
def isolated(isolated_profile: tuple[Any, Any]) -> Any:
    channel, _ = isolated_profile
    return profile_service_pb2_grpc.ProfileServiceStub(channel)


@dataclass
class Seeded:
    """A customer with data in every class, and the clear values to look for afterwards."""

    customer_id: str
    name: str
    etag: str
    clear_values: list[str]
    holding_ids: list[str]
    event_ids: list[str]
    related_id: str
    attribute_ids: dict[str, str]


class Seeder:
    """Builds customers with data in every class through the public API."""

    def __init__(self, stub: Any, make_customer: Any) -> None:
        self.stub = stub
        self.make_customer = make_customer

    async def attribute(self, value_type: int, data_class: int) -> str:
        attribute_id = f"p_{uuid.uuid4().hex[:10]}"
        await self.stub.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
            attribute_definition=attribute_pb2.AttributeDefinition(
                attribute_id=attribute_id, display_name=attribute_id, value_type=value_type,  # type: ignore[arg-type]
                data_class=data_class, source_system="crm")), metadata=ADMIN)  # type: ignore[arg-type]
        return attribute_id

    async def customer(self, *, closed_on: date | None = None, holdings_open: bool = False,
                       event_times: tuple[datetime, ...] = ()) -> Seeded:
        """A customer with identity, contact, demographic, special-category, financial, consent,
        relationship, event and history data; its events happen at `event_times` (now by default).
        Its holdings are closed on `closed_on` (2020-01-01 by default), which ends the relationship,
        or open."""
        tag = uuid.uuid4().hex[:8]
        digits = f"{int(tag, 16) % 10**8:08d}"
        name, phone, email = f"Zhang Erasable{tag}", f"+86139{digits}", f"erase.{tag}@example.com"
        attribute_ids = {
            "identity": await self.attribute(attribute_pb2.ATTRIBUTE_VALUE_TYPE_STRING,
                                             data_class_pb2.DATA_CLASS_IDENTITY),
            "special": await self.attribute(attribute_pb2.ATTRIBUTE_VALUE_TYPE_STRING,
                                            data_class_pb2.DATA_CLASS_SPECIAL_CATEGORY),
            "demographic": await self.attribute(attribute_pb2.ATTRIBUTE_VALUE_TYPE_STRING,
                                                data_class_pb2.DATA_CLASS_DEMOGRAPHIC),
            "financial": await self.attribute(attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT,
                                              data_class_pb2.DATA_CLASS_FINANCIAL),
        }
        street = f"{tag} Chang'an Avenue"
        customer = self.make_customer(
            full_name=name, mobile_phone=phone, email=email, occupation=f"Pilot{tag}",
            id_document=customer_pb2.IdDocument(type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT, number=f"E{digits}",
                                                issuing_country="CN"),
            address=postal_address_pb2.PostalAddress(region_code="CN", locality="Beijing", address_lines=[street],
                                                     postal_code="100000"),
            onboarded_on=date_pb2.Date(year=2015, month=1, day=1),
            external_ids=[customer_pb2.ExternalId(source_system="core-banking", id=f"CB{tag}")])
        customer.attributes[attribute_ids["identity"]].string_value = f"Nick{tag}"
        customer.attributes[attribute_ids["special"]].string_value = f"Asthma{tag}"
        customer.attributes[attribute_ids["demographic"]].string_value = f"Golf{tag}"
        customer.attributes[attribute_ids["financial"]].int_value = 25000
        created = (await self.stub.CreateCustomer(pb.CreateCustomerRequest(customer=customer),
                                                  metadata=ADMIN)).customer
        cid = created.customer_id
        new_phone, new_email = f"+86137{digits}", f"new.{tag}@example.com"
        changed = customer_pb2.Customer(name=created.name, mobile_phone=new_phone, email=new_email,
                                        occupation=f"Teacher{tag}")
        paths = ["mobile_phone", "email", "occupation"]
        await self.stub.UpdateCustomer(pb.UpdateCustomerRequest(
            customer=changed, update_mask=field_mask_pb2.FieldMask(paths=paths), audit=SERVE), metadata=ADMIN)
        await self.stub.RecordConsent(consent_pb2.RecordConsentRequest(
            parent=created.name, audit=SERVE, consents=[consent_pb2.ConsentRecord(
                purpose=consent_pb2.CONSENT_PURPOSE_MARKETING, channel=consent_pb2.CONTACT_CHANNEL_SMS,
                decision=consent_pb2.CONSENT_DECISION_OPT_IN,
                evidence=consent_pb2.ConsentEvidence(source=consent_pb2.CONSENT_SOURCE_BRANCH_FORM,
                                                     source_reference="FORM-2026-001", text_version="MKT-2025",
                                                     effective_time=_stamp(datetime.now(UTC)),
                                                     recorded_by="emp-4711"))]), metadata=ADMIN)
        await self.stub.UpdateContactPreferences(consent_pb2.UpdateContactPreferencesRequest(
            contact_preferences=consent_pb2.ContactPreferences(
                name=f"{created.name}/contactPreferences", do_not_contact=True, do_not_contact_reason=1,
                do_not_contact_note=f"Asked by Mrs {tag}"),
            update_mask=field_mask_pb2.FieldMask(paths=["do_not_contact", "do_not_contact_reason",
                                                        "do_not_contact_note"]), audit=SERVE), metadata=ADMIN)
        holding_ids = []
        for n in range(2):
            holding = holding_pb2.Holding(
                holding_id=f"H{tag}{n}", product_code="TD-3Y-CNY", product_type=holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT,
                currency="CNY", balance=money_pb2.Money(currency_code="CNY", units=1000 * (n + 1)),
                open_date=date_pb2.Date(year=2016, month=1, day=1),
                status=holding_pb2.HOLDING_STATUS_ACTIVE if holdings_open else holding_pb2.HOLDING_STATUS_CLOSED,
                source_system="core-banking")
            if not holdings_open:  # the last close ends the relationship (the customer's closed_on)
                ended = closed_on or date(2020, 1, 1)
                holding.close_date.CopyFrom(date_pb2.Date(year=ended.year, month=ended.month, day=ended.day))
            await self.stub.CreateHolding(holding_pb2.CreateHoldingRequest(
                parent=created.name, holding=holding, audit=SERVE), metadata=SERVICE)
            holding_ids.append(holding.holding_id)
        related = (await self.stub.CreateCustomer(pb.CreateCustomerRequest(customer=self.make_customer()),
                                                  metadata=ADMIN)).customer
        await self.stub.CreateRelationship(relationship_pb2.CreateRelationshipRequest(
            parent=created.name, audit=SERVE, relationship=relationship_pb2.Relationship(
                related_customer=related.name, type=relationship_pb2.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER,
                source_system="branch-counter")), metadata=ADMIN)
        times = event_times or (datetime.now(UTC),)
        events = []
        for n, at in enumerate(times):
            events.append(event_pb2.CustomerEvent(
                event_id=f"E{tag}-{n}v", customer=created.name, event_type=event_pb2.EVENT_TYPE_CHANNEL_VISIT,
                channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING, occur_time=_stamp(at), source_system="mobile-banking",
                properties={"device_owner": f"Owner{tag}"}))
            events.append(event_pb2.CustomerEvent(
                event_id=f"E{tag}-{n}t", customer=created.name, event_type=event_pb2.EVENT_TYPE_TRANSACTION,
                channel=event_pb2.EVENT_CHANNEL_BACK_OFFICE, occur_time=_stamp(at), source_system="core-banking",
                transaction=event_pb2.TransactionDetail(
                    amount=money_pb2.Money(currency_code="CNY", units=500),
                    direction=event_pb2.TRANSACTION_DIRECTION_DEBIT, kind=event_pb2.TRANSACTION_KIND_CARD_PAYMENT)))
        ingested = await _ingest(self.stub, events)
        assert not ingested.rejections, ingested.rejections
        return Seeded(customer_id=cid, name=created.name, etag=(await self._get(created.name)).etag,
                      clear_values=[name, phone, email, new_phone, new_email, f"Nick{tag}", f"Asthma{tag}",
                                    f"Golf{tag}", f"Pilot{tag}", f"Teacher{tag}", f"CB{tag}", f"Owner{tag}",
                                    f"Mrs {tag}", f"E{digits}", street],
                      holding_ids=holding_ids, event_ids=[e.event_id for e in events], related_id=related.customer_id,
                      attribute_ids=attribute_ids)

    async def _get(self, name: str) -> Any:
        return (await self.stub.GetCustomer(pb.GetCustomerRequest(name=name, audit=SERVE), metadata=ADMIN)).customer


@pytest.fixture
def seeder(profile: Any, new_customer: Any) -> Seeder:
    return Seeder(profile, new_customer)


@pytest.fixture
def isolated_seeder(isolated: Any, new_customer: Any) -> Seeder:
    return Seeder(isolated, new_customer)


class Helpers:
    """What the privacy tests share (test modules cannot import each other)."""

    ADMIN = ADMIN
    SERVICE = SERVICE
    DSR = DSR
    SERVE = SERVE

    @staticmethod
    async def wait_for(stub: Any, operation: Any, seconds: float = 120) -> Any:
        """The operation once it is final."""
        if operation.state in FINAL:
            return operation

        async def current() -> Any:
            return (await stub.GetOperation(operations_pb2.GetOperationRequest(name=operation.name),
                                            metadata=ADMIN)).operation

        return await eventually(current, until=lambda now: now.state in FINAL, seconds=seconds, interval=0.2,
                                what=f"{operation.name} final")

    @staticmethod
    async def rows(runtime: Any, sql: str, **params: Any) -> list[Any]:
        async with runtime.db.engine.connect() as connection:
            return list((await connection.execute(sa.text(sql), params)).all())

    @staticmethod
    async def execute(runtime: Any, sql: str, **params: Any) -> None:
        async with runtime.db.engine.begin() as connection:
            await connection.execute(sa.text(sql), params)

    @staticmethod
    def ring(runtime: Any) -> KeyRing:
        """The running service's keys (the test settings hold them)."""
        settings = runtime.settings
        return KeyRing.parse(settings.encryption_keys.get_secret_value(), active_key_id=settings.active_key_id)

    @staticmethod
    def opens(ring: KeyRing, sealed: bytes, context: str) -> bool:
        try:
            ring.open(sealed, context=context)
        except (DecryptionError, UnicodeDecodeError):  # not sealed at all (a hash that starts with 0x01)
            return False
        return True

    @staticmethod
    async def ingest(stub: Any, events: list[Any]) -> Any:
        return await _ingest(stub, events)

    @staticmethod
    def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
        return _stamp(moment)


@pytest.fixture
def helpers() -> type[Helpers]:
    return Helpers


def _stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _ingest(stub: Any, events: list[Any]) -> Any:
    async def batches() -> AsyncIterator[Any]:
        yield event_pb2.IngestEventsRequest(events=events)

    return await stub.IngestEvents(batches(), metadata=SERVICE)
