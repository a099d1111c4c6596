"""Alerts as the service's code sees them: plain values, no protos. Enum values are the proto's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class AlertStatus(IntEnum):
    """crm.risk.v1.AlertStatus."""

    OPEN = 1
    ACKNOWLEDGED = 2
    INVESTIGATING = 3
    RESOLVED = 4
    DISMISSED = 5
    ESCALATED = 6


OPEN_STATUSES = frozenset({AlertStatus.OPEN, AlertStatus.ESCALATED, AlertStatus.ACKNOWLEDGED,
                           AlertStatus.INVESTIGATING})
# The response clock runs in these: nobody has acknowledged the alert yet.
UNANSWERED = frozenset({AlertStatus.OPEN, AlertStatus.ESCALATED})


class Outcome(IntEnum):
    """crm.risk.v1.AlertOutcome."""

    LEGITIMATE_ACTIVITY = 1
    RETENTION_ACTION_TAKEN = 2
    FRAUD_CONFIRMED = 3
    REFERRED_TO_COMPLIANCE = 4
    OTHER = 5


class DismissReason(IntEnum):
    """crm.risk.v1.DismissReason."""

    FALSE_POSITIVE = 1
    DUPLICATE = 2
    ALREADY_HANDLED = 3
    OTHER = 4


@dataclass(frozen=True)
class Evidence:
    """One event behind an alert, without personal data; `amount` as (currency, units, nanos)."""

    description: str
    resource: str = ""
    occur_time: datetime | None = None
    currency_code: str = ""
    units: int = 0
    nanos: int = 0


@dataclass(frozen=True)
class Alert:
    alert_id: str
    alert_rule_id: str
    kind: int
    severity: int
    customer_id: str
    relationship_manager_id: str
    branch_id: str
    summary: str
    evidence: tuple[Evidence, ...]
    status: AlertStatus
    assignee: str
    trigger_time: datetime
    due_time: datetime
    respond_time: datetime | None = None
    escalate_time: datetime | None = None
    outcome: int = 0
    dismiss_reason: int = 0
    close_note: str = ""
    close_time: datetime | None = None
    decision_audit: str = ""
    version: int = 1
    update_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"alerts/{self.alert_id}"

    @property
    def etag(self) -> str:
        return str(self.version)

    def breached(self, now: datetime) -> bool:
        """The response SLA was missed: answered after the deadline, or not answered and it passed."""
        if self.respond_time is not None:
            return self.respond_time > self.due_time
        return now >= self.due_time


@dataclass(frozen=True)
class AlertFilter:
    """ListAlerts' filters, already parsed (empty or 0: no filter)."""

    statuses: tuple[int, ...] = ()
    kinds: tuple[int, ...] = ()
    min_severity: int = 0
    alert_rule_id: str = ""
    customer_id: str = ""
    assignee: str = ""
    relationship_manager_id: str = ""
    branch_id: str = ""
    breached_only: bool = False
    due_from: datetime | None = None
    due_before: datetime | None = None
    trigger_from: datetime | None = None
    trigger_before: datetime | None = None


@dataclass(frozen=True)
class ResponseCounts:
    """Alerts raised in a period, by how their response SLA went (see rules.response_report)."""

    raised: int
    handled_in_time: int
    handled_late: int
    unhandled_breached: int
    pending: int


@dataclass(frozen=True)
class ResponseReport:
    counts: ResponseCounts
    handled_in_time_share: float
    target_share: float
    interval_start: datetime
    interval_end: datetime
    compute_time: datetime

    @property
    def meets_target(self) -> bool:
        return self.handled_in_time_share >= self.target_share
