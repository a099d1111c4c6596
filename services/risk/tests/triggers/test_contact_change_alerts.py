"""Contact-detail-changes rules fire as profile's Customer events are applied by the customer
follower (its `after_apply`, in the consumer's transaction): exactly one alert per firing, none
on a replay of the same events (to the same consumer or to a fresh one), and no contact detail
in the alert or risk's tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.duration_pb2 import Duration
from google.type import postal_address_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2
from crm.risk.v1 import alert_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk import tables
from crm_risk.alerting.tables import alert
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.customers.follower import follow_profile
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.rules import AttributeNames
from crm_risk.customers.service import CustomerReadModel
from crm_risk.triggers.service import AlertTriggers
from crm_risk.triggers.tables import contact_change, contact_digest
from crmkit.auth import Role
from crmkit.peer_feed import PeerFeedFollower
from crmkit.testing import bearer

OFFICER = bearer(Role.RISK_OFFICER, subject="ro-1")
DAY = 86400
PHONES = ["+8613800000001", "+8613800000002", "+8613800000003"]


class ProfileFeed:
    """Profile's Customer events as its outbox publishes them, one day apart, ending yesterday."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.seq = 0
        self.start = datetime.now(UTC) - timedelta(days=10)

    def customer(self, *, phone: str, email: str = "li@example.com", city: str = "Shanghai"
                 ) -> change_event_pb2.ChangeEvent:
        self.seq += 1
        packed = any_pb2.Any()
        packed.Pack(customer_pb2.Customer(
            name=f"customers/{self.customer_id}", customer_id=self.customer_id,
            state=customer_pb2.CUSTOMER_STATE_ACTIVE, relationship_manager_id="rm-7", branch_id="b-7",
            mobile_phone=phone, email=email,
            address=postal_address_pb2.PostalAddress(region_code="CN", locality=city, address_lines=["1 Road"])))
        occurred = timestamp_pb2.Timestamp()
        occurred.FromDatetime(self.start + timedelta(days=self.seq))
        return change_event_pb2.ChangeEvent(
            cursor=f"{5000 + self.seq}.{self.seq}", event_id=str(uuid.uuid4()), resource_type="crm.profile.v1.Customer",
            resource_name=f"customers/{self.customer_id}", change_type=change_event_pb2.CHANGE_TYPE_UPDATED,
            occurred_at=occurred, payload=packed, actor="system:test")


@pytest.fixture
async def follow(risk_service: tuple[Any, Any], alerts_of: Any, movable_clock: Any) -> AsyncIterator[Any]:
    """A profile follower on its own cursor with the alert triggers, driven without a stream."""
    _, runtime = risk_service
    followers: list[PeerFeedFollower] = []

    def make() -> PeerFeedFollower:
        triggers = AlertTriggers(alerts=alerts_of(runtime, movable_clock()), alert_rules=AlertRuleRepository(),
                                 customers=CustomerRepository(), digest_key=b"test-key" * 4)
        follower = follow_profile(
            db=runtime.db, model=CustomerReadModel(repository=CustomerRepository(), attributes=AttributeNames()),
            settings=runtime.settings, target="127.0.0.1:9", deadline_seconds=1.0,
            after_apply=triggers.after_apply, feed_name=f"test-{uuid.uuid4().hex}")
        followers.append(follower)
        return follower

    yield make
    for follower in followers:
        await follower.close()


async def contact_rule(risk: Any, **parameters: Any) -> alert_pb2.AlertRule:
    return (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=alert_pb2.AlertRule(
        alert_rule_id=f"contact-{uuid.uuid4().hex[:8]}", display_name="Frequent contact changes",
        kind=alert_pb2.ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES, severity=alert_pb2.ALERT_SEVERITY_MEDIUM,
        window=Duration(seconds=30 * DAY), enabled=True,
        contact_detail_changes=alert_pb2.ContactDetailChangeParameters(**parameters))), metadata=OFFICER)).alert_rule


async def alerts_of_rule(runtime: Any, rule_id: str) -> list[dict[str, Any]]:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        rows = await uow.execute(sa.select(alert).where(alert.c.alert_rule_id == rule_id))
        return [dict(r) for r in rows.mappings()]


async def test_three_changes_raise_one_alert_and_a_replay_raises_none(risk: Any, risk_service: Any,
                                                                       follow: Any) -> None:
    _, runtime = risk_service
    rule = await contact_rule(risk, min_changes=3)
    cid = f"C{uuid.uuid4().hex[:10].upper()}"
    feed = ProfileFeed(cid)
    events = [feed.customer(phone=PHONES[0]),                       # baseline: no change
              feed.customer(phone=PHONES[1]),                       # 1: phone
              feed.customer(phone=PHONES[1], email="li2@example.com"),  # 2: email
              feed.customer(phone=PHONES[1], email="li2@example.com", city="Beijing")]  # 3: address -> fires
    later = [feed.customer(phone=PHONES[2], email="li2@example.com", city="Beijing")]  # 4: in the cooldown
    follower = follow()

    assert await follower.consumer.apply_batch(events[:3]) == 3
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    assert await follower.consumer.apply_batch(events[3:]) == 1
    [raised] = await alerts_of_rule(runtime, rule.alert_rule_id)
    assert raised["customer_id"] == cid and raised["relationship_manager_id"] == "rm-7"
    assert raised["branch_id"] == "b-7" and raised["severity"] == alert_pb2.ALERT_SEVERITY_MEDIUM
    assert raised["trigger_time"] == events[3].occurred_at.ToDatetime(tzinfo=UTC)
    assert [e["description"] for e in raised["evidence"]] == ["mobile_phone changed", "email changed",
                                                              "address changed"]
    assert await follower.consumer.apply_batch(later) == 1
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1  # within the cooldown

    # The alert is on risk's feed, as the workflow's other changes are.
    async with runtime.db.unit_of_work(read_only=True) as uow:
        published = await uow.scalar(sa.select(sa.func.count()).select_from(tables.outbox_event)
                                     .where(tables.outbox_event.c.resource_name == f"alerts/{raised['alert_id']}"))
    assert published == 1

    # Replays: to this consumer (its cursor skips them) and to a fresh one (the model's positions refuse them).
    assert await follower.consumer.apply_batch(events + later) == 0
    await follow().consumer.apply_batch(events + later)  # consumed; the model applies none of them
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1

    # Nothing about the details themselves is kept: digests and field names only.
    async with runtime.db.unit_of_work(read_only=True) as uow:
        stored = [str(v) for row in (await uow.execute(sa.select(contact_digest).where(
            contact_digest.c.customer_id == cid))).all() for v in row]
        changes = (await uow.execute(sa.select(contact_change.c.field).where(contact_change.c.customer_id == cid)
                                     .order_by(contact_change.c.changed_at))).scalars().all()
    assert changes == ["mobile_phone", "email", "address", "mobile_phone"]
    text = " ".join(stored) + str(raised)
    assert not any(secret in text for secret in [*PHONES, "li2@example.com", "Beijing", "Shanghai"])


async def test_a_rule_counting_phones_only_ignores_email_changes(risk: Any, risk_service: Any, follow: Any) -> None:
    _, runtime = risk_service
    rule = await contact_rule(risk, min_changes=2, fields=["mobile_phone"])
    feed = ProfileFeed(f"C{uuid.uuid4().hex[:10].upper()}")
    follower = follow()
    await follower.consumer.apply_batch([feed.customer(phone=PHONES[0]), feed.customer(phone=PHONES[1]),
                                         feed.customer(phone=PHONES[1], email="other@example.com")])
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    await follower.consumer.apply_batch([feed.customer(phone=PHONES[2], email="other@example.com")])
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1
