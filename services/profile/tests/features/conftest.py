"""Fixtures of the derived-feature tests: a helper that makes customers, holdings and events
through the real RPCs and reads features back."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from google.type import date_pb2, money_pb2

from crm.common.v1 import audit_pb2, change_event_pb2, operation_pb2
from crm.profile.v1 import customer_pb2, event_pb2, features_pb2, holding_pb2, operations_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, read_changes

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
ADMIN = bearer(Role.ADMIN)
CORE_BANKING = bearer(Role.SERVICE, subject="core-banking")
CHANNEL_APP = bearer(Role.CHANNEL_APP, subject="mobile-banking")
FEED_READER = bearer(Role.SERVICE, subject="segment")
FEATURES_TYPE = "crm.profile.v1.CustomerFeatures"


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(moment.timestamp()), nanos=moment.microsecond * 1000)


def money(units: int, nanos: int = 0, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)


class World:
    """Customers, holdings and events made through the service's own RPCs."""

    def __init__(self, profile: Any, service: Any, new_customer: Callable[..., Any]) -> None:
        self.profile = profile
        self.service = service
        self._new_customer = new_customer

    @property
    def db(self) -> Any:
        return self.service[1].db

    async def customer(self, **overrides: object) -> str:
        """A new customer onboarded 1,000 days ago, with identifiers no match rule could pair."""
        overrides.setdefault("onboarded_on", day(datetime.now(UTC).date() - timedelta(days=1000)))
        overrides.setdefault("id_document", customer_pb2.IdDocument(
            type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT, number=f"E{random.randint(10**7, 10**8 - 1)}",
            issuing_country="CN"))
        overrides.setdefault("mobile_phone", f"+86139{random.randint(10**7, 10**8 - 1)}")
        overrides.setdefault("email", f"{uuid.uuid4().hex[:12]}@example.com")
        created = await self.profile.CreateCustomer(pb.CreateCustomerRequest(customer=self._new_customer(**overrides)),
                                                    metadata=ADMIN)
        return str(created.customer.name)

    async def holding(self, customer: str, *, product_type: int, balance: money_pb2.Money, open_date: date,
                      status: int = holding_pb2.HOLDING_STATUS_ACTIVE, maturity_date: date | None = None,
                      close_date: date | None = None) -> holding_pb2.Holding:
        holding = holding_pb2.Holding(
            holding_id=f"H{uuid.uuid4().hex[:10].upper()}", product_code="P-1", product_type=product_type,
            currency=balance.currency_code, balance=balance, open_date=day(open_date), status=status,
            source_system="core-banking")
        if maturity_date is not None:
            holding.maturity_date.CopyFrom(day(maturity_date))
        if close_date is not None:
            holding.close_date.CopyFrom(day(close_date))
        response = await self.profile.CreateHolding(
            holding_pb2.CreateHoldingRequest(parent=customer, holding=holding, audit=AUDIT), metadata=CORE_BANKING)
        return response.holding

    async def ingest(self, *events: event_pb2.CustomerEvent) -> event_pb2.IngestEventsResponse:
        batches = [event_pb2.IngestEventsRequest(events=list(events[i:i + 1000])) for i in range(0, len(events), 1000)]
        response = await self.profile.IngestEvents(batches, metadata=CHANNEL_APP)
        assert response.rejected_count == 0, response.rejections
        return response

    async def features(self, customer: str, *, metadata: Any = ADMIN) -> features_pb2.CustomerFeatures:
        response = await self.profile.GetCustomerFeatures(
            features_pb2.GetCustomerFeaturesRequest(name=f"{customer}/features", audit=AUDIT), metadata=metadata)
        return response.features

    async def features_when(self, customer: str, ready: Callable[[features_pb2.CustomerFeatures], bool],
                            seconds: float = 15.0) -> features_pb2.CustomerFeatures:
        """The customer's features once `ready` holds (the refresher runs every second)."""
        return await eventually(lambda: self.features(customer), until=ready, seconds=seconds, interval=0.1,
                                what=f"{customer}'s features ready")

    async def marks_drained(self, customer_ids: list[str], seconds: float = 30.0) -> None:
        """Wait until the refresher has taken every mark of these customers."""
        async def marks_left() -> int:
            async with self.db.raw() as connection:
                return await connection.fetchval(
                    "SELECT count(*) FROM customer_feature_mark WHERE customer_ids && $1", customer_ids)

        await eventually(marks_left, until=lambda left: left == 0, seconds=seconds, interval=0.1,
                         what="the refresher took every mark")

    async def feed_tail(self) -> str:
        """The cursor of the newest change-feed event now (exact, unlike reading the feed for a while)."""
        async with self.db.raw() as connection:
            return str(await connection.fetchval('SELECT coalesce(max("cursor"), 0) FROM outbox_event'))

    async def published(self, after: str, resource_names: set[str], wanted: int,
                        seconds: float = 10.0) -> list[change_event_pb2.ChangeEvent]:
        """The feature changes of these resources on the change feed after `after`, once `wanted`
        have come (or `seconds` passed)."""
        call = self.profile.WatchChanges(pb.WatchChangesRequest(after_cursor=after, resource_types=[FEATURES_TYPE]),
                                         metadata=FEED_READER)
        events = await read_changes(
            call, seconds=seconds,
            until=lambda seen: sum(e.resource_name in resource_names for e in seen) >= wanted)
        return [e for e in events if e.resource_name in resource_names]

    async def recompute(self, *, customers: list[str] = (), request_id: str = "",  # type: ignore[assignment]
                        changed_since: datetime | None = None, metadata: Any = ADMIN) -> operation_pb2.Operation:
        request = features_pb2.RecomputeFeaturesRequest(customers=list(customers), request_id=request_id)
        if changed_since is not None:
            request.changed_since.CopyFrom(stamp(changed_since))
        return (await self.profile.RecomputeFeatures(request, metadata=metadata)).operation

    async def finished(self, operation: operation_pb2.Operation) -> operation_pb2.Operation:
        seen = [update.operation async for update in self.profile.WatchOperation(
            operations_pb2.WatchOperationRequest(name=operation.name), metadata=ADMIN, timeout=120)]
        return seen[-1]


def event(customer: str, event_type: int, channel: int, at: datetime, **fields: object) -> event_pb2.CustomerEvent:
    message = event_pb2.CustomerEvent(event_id=str(uuid.uuid4()), customer=customer, event_type=event_type,
                                      channel=channel, occur_time=stamp(at), source_system="test-feed")
    for field, value in fields.items():
        if isinstance(value, (event_pb2.TransactionDetail, event_pb2.LoginDetail)):
            getattr(message, field).CopyFrom(value)
        else:
            setattr(message, field, value)
    return message


def transaction(customer: str, at: datetime, amount: money_pb2.Money, *, kind: int, channel: int,
                event_type: int = event_pb2.EVENT_TYPE_TRANSACTION,
                direction: int = event_pb2.TRANSACTION_DIRECTION_DEBIT) -> event_pb2.CustomerEvent:
    detail = event_pb2.TransactionDetail(amount=amount, direction=direction, kind=kind)
    return event(customer, event_type, channel, at, transaction=detail)


def login(customer: str, at: datetime, *, success: bool = True) -> event_pb2.CustomerEvent:
    return event(customer, event_pb2.EVENT_TYPE_LOGIN, event_pb2.EVENT_CHANNEL_MOBILE_BANKING, at,
                 login=event_pb2.LoginDetail(success=success, method="password"))


World.day = staticmethod(day)  # type: ignore[attr-defined]
World.money = staticmethod(money)  # type: ignore[attr-defined]
World.event = staticmethod(event)  # type: ignore[attr-defined]
World.transaction = staticmethod(transaction)  # type: ignore[attr-defined]
World.login = staticmethod(login)  # type: ignore[attr-defined]


@pytest.fixture
def world(profile: Any, profile_service: Any, new_customer: Any) -> World:
    return World(profile, profile_service, new_customer)
