"""The alert workflow's pure rules: transitions, the breach judgement, escalation and the share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm.risk.v1 import alert_pb2
from crm_risk.alerting import rules
from crm_risk.alerting.model import Alert, AlertStatus, DismissReason, Outcome, ResponseCounts
from crmkit.errors import FailedPrecondition
from crmkit.testing import assert_enum_mirrors

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
DAY = timedelta(hours=24)


def alert(**overrides: object) -> Alert:
    values: dict[str, object] = dict(
        alert_id="a-1", alert_rule_id="r-1", kind=3, severity=3, customer_id="c-1", relationship_manager_id="",
        branch_id="", summary="s", evidence=(), status=AlertStatus.OPEN, assignee="", trigger_time=T0,
        due_time=T0 + DAY)
    values.update(overrides)
    return Alert(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (AlertStatus, alert_pb2.AlertStatus, "ALERT_STATUS_"),
    (Outcome, alert_pb2.AlertOutcome, "ALERT_OUTCOME_"),
    (DismissReason, alert_pb2.DismissReason, "DISMISS_REASON_"),
])
def test_enums_mirror_the_contract(domain, proto, prefix) -> None:  # type: ignore[no-untyped-def]
    assert_enum_mirrors(domain, proto, prefix=prefix)


def test_acknowledging_stops_the_clock_and_investigates_when_assigned() -> None:
    assert rules.acknowledge(alert(), now=T0 + DAY / 2).status == AlertStatus.ACKNOWLEDGED
    acked = rules.acknowledge(alert(assignee="ro-1", status=AlertStatus.ESCALATED), now=T0 + 2 * DAY)
    assert acked.status == AlertStatus.INVESTIGATING and acked.respond_time == T0 + 2 * DAY
    assert acked.breached(T0 + 3 * DAY) and not rules.acknowledge(alert(), now=T0 + DAY).breached(T0 + 9 * DAY)


def test_assigning_an_acknowledged_alert_starts_the_investigation_and_keeps_an_open_one_open() -> None:
    assert rules.assign(alert(status=AlertStatus.ACKNOWLEDGED), assignee="x").status == AlertStatus.INVESTIGATING
    assert rules.assign(alert(), assignee="x").status == AlertStatus.OPEN


def test_closed_alerts_refuse_every_step_and_answered_ones_refuse_acknowledgement() -> None:
    for status in (AlertStatus.RESOLVED, AlertStatus.DISMISSED):
        with pytest.raises(FailedPrecondition) as closed:
            rules.check_open(alert(status=status))
        assert closed.value.reason == "ALERT_CLOSED"
    with pytest.raises(FailedPrecondition) as answered:
        rules.check_acknowledgeable(alert(status=AlertStatus.INVESTIGATING))
    assert answered.value.reason == "ALERT_ALREADY_ACKNOWLEDGED"


def test_ending_an_unanswered_alert_stops_its_clock_and_only_open_alerts_past_due_escalate() -> None:
    ended = rules.dismiss(alert(), reason=DismissReason.DUPLICATE, note="", now=T0 + DAY / 4)
    assert ended.respond_time == T0 + DAY / 4 and ended.close_time == T0 + DAY / 4
    assert not rules.due_for_escalation(alert(), now=T0 + DAY - timedelta(seconds=1))
    assert rules.due_for_escalation(alert(), now=T0 + DAY)
    assert not rules.due_for_escalation(alert(status=AlertStatus.ACKNOWLEDGED), now=T0 + 2 * DAY)


def test_the_share_counts_only_judged_alerts() -> None:
    assert rules.handled_in_time_share(ResponseCounts(10, 6, 1, 1, 2)) == pytest.approx(0.75)
    assert rules.handled_in_time_share(ResponseCounts(2, 0, 0, 0, 2)) == 1.0
