"""SLA clock maths for complaints: which policy applies, the deadlines it sets, breaches. No I/O.

Deadlines are elapsed time from when the bank received the complaint, not business hours
(see `ComplaintSla` in complaint.proto). A clock is breached when it is still running at its
deadline, or when it was stopped after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_POLICY_ID = "default"
ANY = 0  # category or priority "unspecified": the policy applies to every value


@dataclass(frozen=True)
class SlaPolicy:
    sla_policy_id: str
    respond_within: timedelta
    resolve_within: timedelta
    category: int = ANY
    priority: int = ANY

    @property
    def name(self) -> str:
        return f"slaPolicies/{self.sla_policy_id}"


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime
    resolve_by: datetime


def default_policy(*, respond_hours: int, resolve_hours: int) -> SlaPolicy:
    """The built-in fallback, `slaPolicies/default` (48 h and 48 h unless configured)."""
    return SlaPolicy(DEFAULT_POLICY_ID, timedelta(hours=respond_hours), timedelta(hours=resolve_hours))


def select_policy(policies: Iterable[SlaPolicy], *, category: int, priority: int, default: SlaPolicy) -> SlaPolicy:
    """The most specific policy: (category, priority), then (category, any), then (any, priority),
    then the default. At most one policy exists per pair, so the first match per rank decides."""
    by_pair = {(p.category, p.priority): p for p in policies if p.sla_policy_id != DEFAULT_POLICY_ID}
    for pair in ((category, priority), (category, ANY), (ANY, priority)):
        found = by_pair.get(pair)
        if found is not None:
            return found
    return default


def deadlines(policy: SlaPolicy, *, received_at: datetime) -> Deadlines:
    """Both clocks start when the bank received the complaint."""
    return Deadlines(respond_by=received_at + policy.respond_within, resolve_by=received_at + policy.resolve_within)


def is_breached(*, due: datetime, stopped_at: datetime | None, now: datetime) -> bool:
    """Stopped after its deadline, or still running at (or past) it."""
    if stopped_at is not None:
        return stopped_at > due
    return now >= due
