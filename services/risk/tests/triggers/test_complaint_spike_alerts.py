"""Complaints-spike rules fire as feedback's complaints are recorded by the complaint follower (its
`on_new_complaint`, in the consumer's transaction): one alert when a customer's complaints within
the window reach the rule's count, with each complaint as evidence; none within the cooldown, for
a later update of a complaint already counted, or on a replay (to the same consumer or a fresh one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.duration_pb2 import Duration

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import complaint_pb2
from crm.risk.v1 import alert_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.alerting.tables import alert
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.customers.repository import CustomerRepository
from crm_risk.reports.complaints import follow_feedback
from crm_risk.triggers.service import AlertTriggers
from crmkit.auth import Role
from crmkit.peer_feed import PeerFeedFollower
from crmkit.peer_payloads import COMPLAINT_TYPE
from crmkit.testing import bearer

OFFICER = bearer(Role.RISK_OFFICER, subject="ro-1")
DAY = 86400


class FeedbackFeed:
    """Feedback's complaint events as its outbox publishes them, in feed order."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.seq = 0
        self.start = datetime.now(UTC) - timedelta(days=20)

    def complaint(self, number: int, *, days: float, change: int = change_event_pb2.CHANGE_TYPE_CREATED,
                  status: int = complaint_pb2.COMPLAINT_STATUS_OPEN) -> change_event_pb2.ChangeEvent:
        self.seq += 1
        name = f"complaints/{self.customer_id}-{number}"
        filed = complaint_pb2.Complaint(name=name, customer=f"customers/{self.customer_id}", status=status)
        filed.create_time.FromDatetime(self.start + timedelta(days=days))
        packed = any_pb2.Any()
        packed.Pack(filed)
        occurred = timestamp_pb2.Timestamp()
        occurred.FromDatetime(self.start + timedelta(days=days))
        return change_event_pb2.ChangeEvent(
            cursor=f"{7000 + self.seq}.{self.seq}", event_id=str(uuid.uuid4()), resource_type=COMPLAINT_TYPE,
            resource_name=name, change_type=change, occurred_at=occurred, payload=packed, actor="system:test")


@pytest.fixture
async def follow(risk_service: tuple[Any, Any], alerts_of: Any, movable_clock: Any) -> AsyncIterator[Any]:
    """A feedback follower on its own cursor with the alert triggers, driven without a stream."""
    _, runtime = risk_service
    followers: list[PeerFeedFollower] = []

    def make() -> PeerFeedFollower:
        triggers = AlertTriggers(alerts=alerts_of(runtime, movable_clock()), alert_rules=AlertRuleRepository(),
                                 customers=CustomerRepository(), digest_key=b"test-key" * 4)
        follower = follow_feedback(db=runtime.db, settings=runtime.settings, target="127.0.0.1:9",
                                   deadline_seconds=1.0, max_backoff_seconds=1.0,
                                   feed_name=f"test-{uuid.uuid4().hex}", on_new_complaint=triggers.on_new_complaint)
        followers.append(follower)
        return follower

    yield make
    for follower in followers:
        await follower.close()


async def spike_rule(risk: Any, *, min_complaints: int, days: int = 30, enabled: bool = True
                     ) -> alert_pb2.AlertRule:
    return (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=alert_pb2.AlertRule(
        alert_rule_id=f"complaints-{uuid.uuid4().hex[:8]}", display_name="Complaint spike",
        kind=alert_pb2.ALERT_RULE_KIND_COMPLAINTS_SPIKE, severity=alert_pb2.ALERT_SEVERITY_HIGH,
        window=Duration(seconds=days * DAY), enabled=enabled,
        complaints_spike=alert_pb2.ComplaintsSpikeParameters(min_complaints=min_complaints))),
        metadata=OFFICER)).alert_rule


async def alerts_of_rule(runtime: Any, rule_id: str) -> list[dict[str, Any]]:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        rows = await uow.execute(sa.select(alert).where(alert.c.alert_rule_id == rule_id))
        return [dict(r) for r in rows.mappings()]


async def test_three_complaints_in_thirty_days_raise_one_alert_once(risk: Any, risk_service: Any, follow: Any,
                                                                    ) -> None:
    _, runtime = risk_service
    rule = await spike_rule(risk, min_complaints=3)
    quiet = await spike_rule(risk, min_complaints=3, enabled=False)
    cid = f"C{uuid.uuid4().hex[:10].upper()}"
    feed = FeedbackFeed(cid)
    first = [feed.complaint(1, days=1), feed.complaint(2, days=5)]
    # An update of complaint 1 is not a new complaint; complaint 3 makes three -> fires.
    third = [feed.complaint(1, days=1, change=change_event_pb2.CHANGE_TYPE_UPDATED,
                            status=complaint_pb2.COMPLAINT_STATUS_CLOSED), feed.complaint(3, days=9)]
    later = [feed.complaint(4, days=10)]  # four now, but within the cooldown (the window)
    follower = follow()

    assert await follower.consumer.apply_batch(first) == 2
    assert await follower.consumer.apply_batch(third[:1]) == 1
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    assert await follower.consumer.apply_batch(third[1:]) == 1
    [raised] = await alerts_of_rule(runtime, rule.alert_rule_id)
    assert raised["customer_id"] == cid and raised["severity"] == alert_pb2.ALERT_SEVERITY_HIGH
    assert raised["kind"] == alert_pb2.ALERT_RULE_KIND_COMPLAINTS_SPIKE
    assert raised["trigger_time"] == feed.start + timedelta(days=9)
    assert raised["summary"] == "3 complaints within 30 days"
    assert [e["resource"] for e in raised["evidence"]] == [f"complaints/{cid}-{n}" for n in (1, 2, 3)]
    assert {e["description"] for e in raised["evidence"]} == {"complaint filed"}
    assert await follower.consumer.apply_batch(later) == 1
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1
    assert await alerts_of_rule(runtime, quiet.alert_rule_id) == []

    # Replays: to this consumer (its cursor skips them) and to a fresh one (the rows' positions refuse them).
    everything = first + third + later
    assert await follower.consumer.apply_batch(everything) == 0
    await follow().consumer.apply_batch(everything)  # consumed; the rows refuse every one of them
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1


async def test_complaints_spread_beyond_the_window_do_not_fire(risk: Any, risk_service: Any, follow: Any) -> None:
    _, runtime = risk_service
    rule = await spike_rule(risk, min_complaints=2, days=7)
    feed = FeedbackFeed(f"C{uuid.uuid4().hex[:10].upper()}")
    other = FeedbackFeed(f"C{uuid.uuid4().hex[:10].upper()}")
    follower = follow()
    await follower.consumer.apply_batch([feed.complaint(1, days=0), feed.complaint(2, days=8),
                                         other.complaint(1, days=9)])
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    await follower.consumer.apply_batch([feed.complaint(3, days=12)])  # 2 and 3 are 4 days apart
    [raised] = await alerts_of_rule(runtime, rule.alert_rule_id)
    assert [e["resource"] for e in raised["evidence"]] == [f"complaints/{feed.customer_id}-{n}" for n in (2, 3)]
