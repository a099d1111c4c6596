"""Profile service functions run in the unit of work they are handed (crmkit.db's rule): a customer
create and a holding create in one transaction commit together or not at all."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import sqlalchemy as sa
from google.type import date_pb2, money_pb2

from crm.profile.v1 import holding_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile import tables
from crm_profile.api import customer_messages, holding_messages
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.attributes.service import CustomerValues
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.service import Customers
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.history.repository import HistoryRepository
from crm_profile.history.rules import ENUM_NAMES
from crm_profile.history.service import FieldHistory
from crm_profile.holdings.repository import HoldingRepository
from crm_profile.holdings.service import Holdings, ReportingCurrency
from crm_profile.wiring import feed_payload
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
from crmkit.crypto import BlindIndex, KeyRing
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.resources import Purpose
from crmkit.testing import rows_about

ADMIN = Principal(subject="admin-1", roles=frozenset({Role.ADMIN}))


async def rows_of(service: tuple[Any, Any], customer_id: str) -> tuple[int, ...]:
    """This customer's rows: the customer, its holdings, its feed events and its audit records."""
    _, runtime = service
    name = f"customers/{customer_id}"
    async with runtime.db.engine.connect() as connection:
        customers, holdings = (await connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM customer WHERE customer_id = :id),"
            " (SELECT count(*) FROM holding WHERE customer_id = :id)"), {"id": customer_id})).one()
    return (customers, holdings, await rows_about(service, "outbox_event", name),
            await rows_about(service, "audit_record", name))


class Abandoned(Exception):
    """Raised inside the outer unit of work to roll it back."""


def term_deposit() -> holding_pb2.Holding:
    return holding_pb2.Holding(
        holding_id="TD-UOW-1", product_code="TD-3Y-CNY", product_type=holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT,
        currency="CNY", balance=money_pb2.Money(currency_code="CNY", units=50_000),
        open_date=date_pb2.Date(year=2024, month=1, day=2), status=holding_pb2.HOLDING_STATUS_ACTIVE,
        source_system="core-banking")


def use_cases(runtime: Any) -> tuple[Customers, Holdings]:
    """The two use cases as the service wires them, sealing with the running service's keys."""
    settings, db = runtime.settings, runtime.db
    vault = PersonalDataVault(
        KeyRing.parse(settings.encryption_keys.get_secret_value(), active_key_id=settings.active_key_id),
        BlindIndex(base64.b64decode(settings.blind_index_key.get_secret_value())))
    customers, attributes = CustomerRepository(vault), AttributeRepository(vault)
    outbox, keys, tokens = Outbox(tables.outbox_event), IdempotencyKeys(tables.idempotency_key), PageTokens(b"k" * 32)
    audit = AuditWriter(db, tables.audit_record)  # never started: these writes audit in their own transaction
    history = FieldHistory(repository=HistoryRepository(vault), customers=customers, attributes=attributes,
                           audit=audit, page_tokens=tokens, enum_names=ENUM_NAMES, core_max_age_days={})
    return (Customers(db=db, repository=customers, outbox=outbox, idempotency=keys, audit=audit, page_tokens=tokens,
                      feed_payload=feed_payload, values=CustomerValues(attributes=attributes, customers=customers),
                      history=history),  # type: ignore[arg-type]
            Holdings(repository=HoldingRepository(), customers=customers, outbox=outbox, idempotency=keys,
                     audit=audit, page_tokens=tokens, feed_payload=holding_messages.to_proto,  # type: ignore[arg-type]
                     customer_payload=feed_payload, history=history, reporting=ReportingCurrency()))  # type: ignore[arg-type]


async def create_both(runtime: Any, customer: Any, holding: Any, *, abandon: bool) -> None:
    customers, holdings = use_cases(runtime)
    async with runtime.db.unit_of_work() as uow:
        created = await customers.create(uow=uow, customer=customer_messages.to_domain(customer), request_id=None,
                                         request=pb.CreateCustomerRequest(customer=customer), actor=ADMIN)
        await holdings.create(
            uow=uow, holding=holding_messages.to_domain(holding, customer_id=created.customer.customer_id),
            request_id=None, request=holding_pb2.CreateHoldingRequest(holding=holding),
            purpose=Purpose("DATA_MANAGEMENT"), actor=ADMIN)
        if abandon:
            raise Abandoned


async def test_a_customer_and_its_holding_created_in_one_unit_of_work_roll_back_together(
        profile_service: tuple[Any, Any], new_customer: Any) -> None:
    _, runtime = profile_service
    customer, holding = new_customer(), term_deposit()
    with pytest.raises(Abandoned):
        await create_both(runtime, customer, holding, abandon=True)
    assert await rows_of(profile_service, customer.customer_id) == (0, 0, 0, 0)

    await create_both(runtime, customer, holding, abandon=False)
    # One customer, one holding, their two feed events and two audit records, all committed together.
    assert await rows_of(profile_service, customer.customer_id) == (1, 1, 2, 2)
