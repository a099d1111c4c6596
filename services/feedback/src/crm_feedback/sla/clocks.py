"""SLA clocks as stored values: breaches and report rows, and the filters that select them. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_feedback.sla.rules import SlaClock


@dataclass(frozen=True)
class BreachSnapshot:
    """The complaint's triage when a clock breached (what `SlaBreach` reports)."""

    category: int
    priority: int
    branch_id: str
    assignee: str
    escalation_level: int


@dataclass(frozen=True)
class Breach:
    complaint_id: str
    customer_id: str
    clock: SlaClock
    cycle: int
    due_at: datetime
    stopped_at: datetime | None
    channel: int
    sla_policy: str
    snapshot: BreachSnapshot
    overdue: timedelta = timedelta(0)


@dataclass(frozen=True)
class BreachFilter:
    due_start: datetime | None = None
    due_end: datetime | None = None
    clock: int = 0
    category: int = 0
    priority: int = 0
    branch_id: str = ""
    assignee: str = ""
    customer: str = ""
    running_only: bool = False


@dataclass(frozen=True)
class ReportFilter:
    start: datetime
    end: datetime
    group_by: int = 0
    category: int = 0
    priority: int = 0
    channel: int = 0
    branch_id: str = ""
    product: str = ""


@dataclass(frozen=True)
class ReportRow:
    # The group's value: an enum number, a branch or assignee id, or a period's first day; None in totals.
    key: object
    respond_due: int
    respond_breached: int
    resolve_due: int
    resolve_breached: int
    median_overdue: timedelta | None
    max_overdue: timedelta | None

    @property
    def breach_rate(self) -> float:
        due = self.respond_due + self.resolve_due
        return (self.respond_breached + self.resolve_breached) / due if due else 0.0

    @property
    def respond_met_share(self) -> float | None:
        return 1 - self.respond_breached / self.respond_due if self.respond_due else None

    @property
    def resolve_met_share(self) -> float | None:
        return 1 - self.resolve_breached / self.resolve_due if self.resolve_due else None


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    group_by: int
    rows: tuple[ReportRow, ...]
    total: ReportRow
    computed_at: datetime
