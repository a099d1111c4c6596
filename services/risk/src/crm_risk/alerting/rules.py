"""The alert workflow's decisions, pure: which step is allowed from which status, what each step
changes, request shapes, escalation and the response report's share.

Transitions (the contract's `Alert` comment): acknowledge from OPEN or ESCALATED (stops the
response clock); assign from any open status (ACKNOWLEDGED becomes INVESTIGATING); resolve or
dismiss from any open status (ending an unanswered alert also stops the clock); the clock
worker escalates an OPEN alert at its due time. RESOLVED and DISMISSED are final.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from crm_risk.alerting.model import (
    OPEN_STATUSES,
    UNANSWERED,
    Alert,
    AlertFilter,
    AlertStatus,
    DismissReason,
    Outcome,
    ResponseCounts,
)
from crm_risk.alerts.model import Kind, Severity
from crmkit.errors import FailedPrecondition
from crmkit.resources import ResourceName
from crmkit.validation import Violations

ALERT_NAME = ResourceName("alerts/{alert_id}")
MAX_NOTE = 4000
MAX_ASSIGNEE = 64
EMPLOYEE_ID = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MAX_REPORT_SPAN = timedelta(days=400)
ORDERS = ("due_time", "trigger_time desc", "severity desc")


def check_open(alert: Alert) -> None:
    """FAILED_PRECONDITION `ALERT_CLOSED` for a resolved or dismissed alert."""
    if alert.status not in OPEN_STATUSES:
        raise FailedPrecondition(f"{alert.name} is {alert.status.name.lower()}: a closed alert cannot change",
                                 reason="ALERT_CLOSED", metadata={"alert": alert.name, "status": alert.status.name})


def check_acknowledgeable(alert: Alert) -> None:
    check_open(alert)
    if alert.status not in UNANSWERED:
        raise FailedPrecondition(f"{alert.name} is already acknowledged ({alert.status.name.lower()})",
                                 reason="ALERT_ALREADY_ACKNOWLEDGED",
                                 metadata={"alert": alert.name, "status": alert.status.name})


def acknowledge(alert: Alert, *, now: datetime) -> Alert:
    status = AlertStatus.INVESTIGATING if alert.assignee else AlertStatus.ACKNOWLEDGED
    return replace(alert, status=status, respond_time=now)


def assign(alert: Alert, *, assignee: str) -> Alert:
    status = AlertStatus.INVESTIGATING if alert.status == AlertStatus.ACKNOWLEDGED else alert.status
    return replace(alert, status=status, assignee=assignee)


def resolve(alert: Alert, *, outcome: int, note: str, now: datetime) -> Alert:
    return replace(alert, status=AlertStatus.RESOLVED, outcome=outcome, close_note=note, close_time=now,
                   respond_time=alert.respond_time or now)


def dismiss(alert: Alert, *, reason: int, note: str, now: datetime) -> Alert:
    return replace(alert, status=AlertStatus.DISMISSED, dismiss_reason=reason, close_note=note, close_time=now,
                   respond_time=alert.respond_time or now)


def due_for_escalation(alert: Alert, *, now: datetime) -> bool:
    return alert.status == AlertStatus.OPEN and now >= alert.due_time


def validate_assignee(assignee: str, v: Violations) -> None:
    if v.check(bool(assignee), "assignee", "is required: the employee id of a risk officer"):
        v.check(bool(EMPLOYEE_ID.fullmatch(assignee)), "assignee",
                f"must be 1 to {MAX_ASSIGNEE} characters from A-Z a-z 0-9 . _ @ -")


def validate_resolution(outcome: int, note: str, v: Violations) -> None:
    v.enum(outcome, "outcome", frozenset(Outcome), "AlertOutcome",
           required="is required: say what the investigation found")
    if v.check(bool(note.strip()), "note", "is required: say what was found and done") and v.max_length(
            note, "note", MAX_NOTE):
        v.text(note, "note", multiline=True)


def validate_dismissal(reason: int, note: str, v: Violations) -> None:
    v.enum(reason, "reason", frozenset(DismissReason), "DismissReason", required="is required: say why")
    if reason == DismissReason.OTHER:
        v.check(bool(note.strip()), "note", "is required when reason is DISMISS_REASON_OTHER")
    if v.max_length(note, "note", MAX_NOTE):
        v.text(note, "note", multiline=True)


def validate_filter(where: AlertFilter, v: Violations) -> None:
    for i, status in enumerate(where.statuses):
        v.enum(status, f"statuses[{i}]", frozenset(AlertStatus), "AlertStatus", required="must not be unspecified")
    for i, kind in enumerate(where.kinds):
        v.enum(kind, f"kinds[{i}]", frozenset(Kind), "AlertRuleKind", required="must not be unspecified")
    v.enum(where.min_severity, "min_severity", frozenset(Severity), "AlertSeverity")
    v.check(len(where.assignee) <= MAX_ASSIGNEE, "assignee", f"must be at most {MAX_ASSIGNEE} characters")


def validate_order(order_by: str, v: Violations) -> str:
    order = " ".join(order_by.split()) or ORDERS[0]
    v.check(order in ORDERS, "order_by", f"must be one of: {', '.join(ORDERS)}")
    return order


def validate_report_interval(start: datetime | None, end: datetime | None, v: Violations) -> None:
    if not v.check(start is not None and end is not None, "interval",
                   "is required with both start_time and end_time set"):
        return
    assert start is not None and end is not None
    if v.check(start < end, "interval", "must end after it starts"):
        v.check(end - start <= MAX_REPORT_SPAN, "interval", f"must span at most {MAX_REPORT_SPAN.days} days")


def handled_in_time_share(counts: ResponseCounts) -> float:
    """Alerts answered by their deadline over the alerts that can be judged (answered, or past due);
    1.0 while none can be judged yet."""
    judged = counts.raised - counts.pending
    return counts.handled_in_time / judged if judged else 1.0
