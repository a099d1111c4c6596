"""The workflow's state machine as a pure table: each step from each status, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_feedback.complaints import rules
from crm_feedback.complaints.model import Action, CloseReason, Complaint, Sla, Status
from crmkit.errors import FailedPrecondition

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# The contract's transitions (complaint.proto), written out: step -> {from: to}.
EXPECTED = {
    Action.ACKNOWLEDGED: {Status.OPEN: Status.ACKNOWLEDGED},
    Action.ASSIGNED: {Status.OPEN: Status.OPEN, Status.ACKNOWLEDGED: Status.IN_PROGRESS,
                      Status.IN_PROGRESS: Status.IN_PROGRESS, Status.REOPENED: Status.IN_PROGRESS},
    Action.RESOLVED: {s: Status.RESOLVED for s in (Status.OPEN, Status.ACKNOWLEDGED, Status.IN_PROGRESS,
                                                   Status.REOPENED)},
    Action.REOPENED: {Status.RESOLVED: Status.REOPENED, Status.CLOSED: Status.REOPENED},
}


def complaint(status: Status, assignee: str = "") -> Complaint:
    sla = Sla("slaPolicies/default", NOW + timedelta(hours=48), NOW + timedelta(hours=48))
    return Complaint("CMP-1", "C1", 1, 3, 2, "text", NOW, sla, "rm-1", status=status, assignee=assignee)


@pytest.mark.parametrize("action", list(EXPECTED))
@pytest.mark.parametrize("status", list(Status))
def test_each_step_moves_only_from_the_statuses_the_contract_allows(action: Action, status: Status) -> None:
    allowed = EXPECTED[action]
    if status in allowed:
        assert rules.next_status(action, complaint(status)) == allowed[status]
    else:
        with pytest.raises(FailedPrecondition) as refused:
            rules.next_status(action, complaint(status))
        assert refused.value.reason == "INVALID_TRANSITION"
        assert refused.value.metadata["from_status"] == f"COMPLAINT_STATUS_{status.name}"


def test_an_assigned_complaint_is_in_progress_once_acknowledged() -> None:
    assert rules.next_status(Action.ACKNOWLEDGED, complaint(Status.OPEN, assignee="e1")) == Status.IN_PROGRESS


@pytest.mark.parametrize(("reason", "allowed"), [
    (CloseReason.CUSTOMER_CONFIRMED, {Status.RESOLVED}), (CloseReason.NO_CUSTOMER_REPLY, {Status.RESOLVED}),
    (CloseReason.WITHDRAWN, set(rules.OPEN_STATUSES)), (CloseReason.DUPLICATE, set(rules.OPEN_STATUSES)),
])
def test_the_close_reason_decides_where_a_close_may_start(reason: CloseReason, allowed: set[Status]) -> None:
    for status in Status:
        if status in allowed:
            assert rules.next_status(Action.CLOSED, complaint(status), close_reason=reason) == Status.CLOSED
        else:
            with pytest.raises(FailedPrecondition):
                rules.next_status(Action.CLOSED, complaint(status), close_reason=reason)


def test_acknowledge_stops_only_the_respond_clock_and_resolve_stops_both() -> None:
    change = rules.acknowledge(complaint(Status.OPEN), response_channel=1, note="", actor="e1", now=NOW, note_id=1)
    assert (change.complaint.sla.responded_at, change.complaint.sla.resolved_at, change.note) == (NOW, None, None)
    later = NOW + timedelta(hours=1)
    resolved = rules.resolve(complaint(Status.OPEN), resolution=rules.ResolutionDraft(1, "done"), actor="e1", now=later)
    assert (resolved.complaint.sla.responded_at, resolved.complaint.sla.resolved_at) == (later, later)
    assert resolved.complaint.version == 2 and resolved.step.actor == "e1"


def test_a_reopened_complaint_gets_a_new_resolve_clock_from_now() -> None:
    resolved = rules.resolve(complaint(Status.IN_PROGRESS), resolution=rules.ResolutionDraft(1, "done"), actor="e1",
                             now=NOW).complaint
    later = NOW + timedelta(days=3)
    policy = rules.sla_rules.default_policy(respond_hours=48, resolve_hours=48)
    reopened = rules.reopen(resolved, reason="not fixed", actor="e2", now=later, note_id=1, policy=policy).complaint
    assert (reopened.status, reopened.sla.resolve_by, reopened.sla.resolved_at) == (
        Status.REOPENED, later + timedelta(hours=48), None)
    assert reopened.sla.responded_at == NOW and reopened.reopen_count == 1
