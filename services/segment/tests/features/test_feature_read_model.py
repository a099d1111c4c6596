"""The read model applies profile's change events (built as profile publishes them) idempotently:
a replay changes nothing, an older event never overwrites a newer one, unknown types are skipped."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.type import date_pb2, money_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import consent_pb2, customer_pb2, features_pb2, holding_pb2
from crm_segment.features import rules
from crm_segment.features.feed import ChangeEvent
from crm_segment.features.repository import FeatureRepository
from crm_segment.features.service import FeatureReadModel
from crm_segment.features.tables import customer_feature

CREATED, UPDATED, DELETED = (change_event_pb2.CHANGE_TYPE_CREATED, change_event_pb2.CHANGE_TYPE_UPDATED,
                             change_event_pb2.CHANGE_TYPE_DELETED)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Feed:
    """Profile's feed as a test writes it: cursors in feed order, payloads packed as profile's outbox does."""

    def __init__(self) -> None:
        self.seq = 0

    def event(self, resource_name: str, payload: Message | None, *, change_type: int = UPDATED,
              resource_type: str = "", at: datetime = T0) -> ChangeEvent:
        self.seq += 1
        packed = any_pb2.Any()
        if payload is not None:
            packed.Pack(payload)
        occurred = timestamp_pb2.Timestamp()
        occurred.FromDatetime(at + timedelta(seconds=self.seq))
        return ChangeEvent(cursor=f"{1000 + self.seq}.{self.seq}", event_id=str(uuid.uuid4()),
                           resource_type=resource_type or (payload.DESCRIPTOR.full_name if payload else ""),
                           resource_name=resource_name, change_type=change_type, occurred_at=occurred,
                           payload=packed, actor="system:test")


def customer(customer_id: str, **fields: Any) -> customer_pb2.Customer:
    message = customer_pb2.Customer(
        name=f"customers/{customer_id}", customer_id=customer_id, customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
        birth_date=date_pb2.Date(year=1990), gender=customer_pb2.GENDER_FEMALE,
        kyc_status=customer_pb2.KYC_STATUS_VERIFIED,
        relationship_manager_id="rm-7", branch_id="br-1", onboarded_on=date_pb2.Date(year=2020, month=3, day=1),
        state=customer_pb2.CUSTOMER_STATE_ACTIVE)
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def features(customer_id: str, *, aum: int, payroll: bool = False) -> features_pb2.CustomerFeatures:
    cny = money_pb2.Money(currency_code="CNY", units=aum, nanos=500_000_000)
    return features_pb2.CustomerFeatures(
        name=f"customers/{customer_id}/features", aum=cny, average_aum_90d=cny, product_count=2, tenure_days=400,
        rfm=features_pb2.RfmInputs(window_days=365, frequency=12, recency_days=3, monetary=cny),
        activity=features_pb2.ActivityInputs(login_count_30d=4),
        lifecycle=features_pb2.LifecycleInputs(age_years=36, payroll_active=payroll, aum_change_90d=cny))


def holding(customer_id: str, holding_id: str, product_type: int, *, status: int = holding_pb2.HOLDING_STATUS_ACTIVE,
            maturity: date | None = None) -> holding_pb2.Holding:
    h = holding_pb2.Holding(name=f"customers/{customer_id}/holdings/{holding_id}", holding_id=holding_id,
                            product_type=product_type, status=status)
    if maturity:
        h.maturity_date.CopyFrom(date_pb2.Date(year=maturity.year, month=maturity.month, day=maturity.day))
    return h


def consent(customer_id: str, channel: int, decision: int, effective: datetime) -> consent_pb2.ConsentRecord:
    record = consent_pb2.ConsentRecord(name=f"customers/{customer_id}/consentRecords/{uuid.uuid4()}",
                                       purpose=consent_pb2.CONSENT_PURPOSE_MARKETING, channel=channel,
                                       decision=decision)
    record.evidence.effective_time.FromDatetime(effective)
    return record


@pytest.fixture
def model() -> FeatureReadModel:
    return FeatureReadModel(repository=FeatureRepository())


@pytest.fixture
def apply(segment_service: tuple[Any, Any], model: FeatureReadModel) -> Any:
    _, runtime = segment_service

    async def applying(*events: ChangeEvent) -> list[bool]:
        async with runtime.db.unit_of_work() as connection:
            return [await model.apply(connection, event) for event in events]

    return applying


@pytest.fixture
def row(segment_service: tuple[Any, Any]) -> Any:
    _, runtime = segment_service

    async def read(customer_id: str) -> dict[str, Any]:
        async with runtime.db.unit_of_work(read_only=True) as connection:
            found = (await connection.execute(sa.select(customer_feature)
                                              .where(customer_feature.c.customer_id == customer_id))).mappings().one()
        return dict(found)

    return read


def new_id() -> str:
    return f"C{uuid.uuid4().hex[:10].upper()}"


async def test_a_customer_and_its_features_fill_one_row_and_a_replay_changes_nothing(apply: Any, row: Any) -> None:
    feed, cid = Feed(), new_id()
    events = [feed.event(f"customers/{cid}", customer(cid), change_type=CREATED),
              feed.event(f"customers/{cid}/features", features(cid, aum=600_000, payroll=True),
                         change_type=CREATED, resource_type=rules.FEATURES_TYPE),
              feed.event(f"customers/{cid}/holdings/h1", holding(cid, "h1", holding_pb2.PRODUCT_TYPE_FUND)),
              feed.event(f"customers/{cid}/contactPreferences",
                         consent_pb2.ContactPreferences(name=f"customers/{cid}/contactPreferences",
                                                        do_not_contact=True))]
    assert await apply(*events) == [True, True, True, True]
    first = await row(cid)
    assert (first["birth_year"], first["kyc_status"], first["relationship_manager_id"]) == (
        1990, customer_pb2.KYC_STATUS_VERIFIED, "rm-7")
    assert first["aum"] == Decimal("600000.5") and first["age_years"] == 36 and first["recency_days"] == 3
    assert first["product_categories"] == ["FUND", "PAYROLL"]
    assert first["do_not_contact"] is True and first["removed"] is False
    assert first["features_as_of"] == events[-1].occurred_at.ToDatetime(tzinfo=UTC)

    assert await apply(*events) == [False, False, False, False]
    again = await row(cid)
    del again["updated_at"], first["updated_at"]
    assert again == first


async def test_an_older_event_never_overwrites_a_newer_one(apply: Any, row: Any) -> None:
    feed, cid = Feed(), new_id()
    old = feed.event(f"customers/{cid}", customer(cid, branch_id="br-old"))
    old_features = feed.event(f"customers/{cid}/features", features(cid, aum=1), resource_type=rules.FEATURES_TYPE)
    new = feed.event(f"customers/{cid}", customer(cid, branch_id="br-new"))
    new_features = feed.event(f"customers/{cid}/features", features(cid, aum=2), resource_type=rules.FEATURES_TYPE)
    opened = feed.event(f"customers/{cid}/holdings/h1", holding(cid, "h1", holding_pb2.PRODUCT_TYPE_MORTGAGE))
    closed = feed.event(f"customers/{cid}/holdings/h1", None, change_type=DELETED, resource_type=rules.HOLDING_TYPE)

    assert await apply(new, new_features, closed) == [True, True, True]
    assert await apply(old, old_features, opened) == [False, False, False]
    stored = await row(cid)
    assert (stored["branch_id"], stored["aum"], stored["product_categories"]) == ("br-new", Decimal("2.5"), [])
    assert stored["features_as_of"] == closed.occurred_at.ToDatetime(tzinfo=UTC)


async def test_marketing_channels_follow_the_latest_decision_and_a_deletion_removes_the_customer(
    apply: Any, row: Any,
) -> None:
    feed, cid = Feed(), new_id()
    sms, email = consent_pb2.CONTACT_CHANNEL_SMS, consent_pb2.CONTACT_CHANNEL_EMAIL
    opt_in, opt_out = consent_pb2.CONSENT_DECISION_OPT_IN, consent_pb2.CONSENT_DECISION_OPT_OUT
    await apply(feed.event(f"customers/{cid}", customer(cid), change_type=CREATED),
                feed.event(f"customers/{cid}/consentRecords/a", consent(cid, sms, opt_in, T0), change_type=CREATED),
                feed.event(f"customers/{cid}/consentRecords/b", consent(cid, email, opt_in, T0), change_type=CREATED),
                # Recorded later but effective earlier than the opt-in: the opt-in stands.
                feed.event(f"customers/{cid}/consentRecords/c", consent(cid, sms, opt_out, T0 - timedelta(days=1)),
                           change_type=CREATED),
                feed.event(f"customers/{cid}/consentRecords/d", consent(cid, email, opt_out, T0 + timedelta(days=1)),
                           change_type=CREATED))
    assert (await row(cid))["marketing_channels"] == ["SMS"]

    await apply(feed.event(f"customers/{cid}", None, change_type=DELETED, resource_type=rules.CUSTOMER_TYPE))
    assert (await row(cid))["removed"] is True


async def test_events_the_model_does_not_follow_are_skipped(apply: Any, segment_service: tuple[Any, Any]) -> None:
    feed, cid = Feed(), new_id()
    unknown = feed.event(f"customers/{cid}/events/e1", customer(cid), resource_type="crm.profile.v1.Event")
    not_a_customer = feed.event("attributeDefinitions/tier", customer(cid))
    other_purpose = consent(cid, consent_pb2.CONTACT_CHANNEL_SMS, consent_pb2.CONSENT_DECISION_OPT_IN, T0)
    other_purpose.purpose = consent_pb2.CONSENT_PURPOSE_SURVEYS
    survey = feed.event(f"customers/{cid}/consentRecords/s", other_purpose, change_type=CREATED)
    assert await apply(unknown, not_a_customer, survey) == [False, False, False]
    _, runtime = segment_service
    async with runtime.db.unit_of_work(read_only=True) as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(customer_feature)
                                       .where(customer_feature.c.customer_id == cid)) == 0


def test_positions_sort_as_the_feed_does() -> None:
    assert rules.position_key("5.9") < rules.position_key("6.1") < rules.position_key("6.2")
    assert rules.position_key("") == 0
