"""SLA clock maths for complaints: which policy applies, the deadlines it sets, breaches, and what
the clock worker does when a running clock reaches its escalation point or deadline. No I/O.

Deadlines count elapsed time, or working time of the policy's business calendar
(`calendar.py`), from when the clock started. A clock is breached when it is still running at
its deadline, or when it was stopped after it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from crm_feedback.sla import calendar as business
from crm_feedback.sla.calendar import BusinessCalendar
from crmkit.resources import ResourceName
from crmkit.validation import Violations

DEFAULT_POLICY_ID = "default"
ANY = 0  # category or priority "unspecified": the policy applies to every value
# Clock modes (SlaClockMode): elapsed time, or working time of the policy's business calendar.
CLOCK_ELAPSED = 1
CLOCK_BUSINESS_CALENDAR = 2
CATEGORIES = range(0, 14)  # ComplaintCategory, 0 = any
PRIORITIES = range(0, 5)  # ComplaintPriority, 0 = any
SLA_POLICY_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
SLA_POLICY_NAME = ResourceName("slaPolicies/{sla_policy_id}", id_pattern=SLA_POLICY_ID.pattern)
MIN_RESPOND = timedelta(minutes=1)
MAX_RESPOND = timedelta(days=30)
MAX_RESOLVE = timedelta(days=90)
UPDATABLE = frozenset({"display_name", "respond_within", "resolve_within", "escalate_on_breach",
                       "pre_breach_escalation_share", "calendar"})


class SlaClock(IntEnum):
    """The two clocks (`SlaClock`)."""

    RESPOND = 1
    RESOLVE = 2


class ClockEvent(IntEnum):
    """What the clock worker does to a running clock: escalate before breach, or record the breach."""

    BEFORE_BREACH = 1
    BREACH = 2


@dataclass(frozen=True)
class SlaPolicy:
    sla_policy_id: str
    # None only in a request that left the target out; stored policies always have both.
    respond_within: timedelta | None
    resolve_within: timedelta | None
    category: int = ANY
    priority: int = ANY
    display_name: str = "Default"
    escalate_on_breach: bool = False
    clock_mode: int = CLOCK_ELAPSED
    pre_breach_escalation_share: float = 0.0
    calendar: BusinessCalendar | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"slaPolicies/{self.sla_policy_id}"

    @property
    def etag(self) -> str:
        return str(self.version)

    @property
    def respond(self) -> timedelta:
        assert self.respond_within is not None, "validated before use"
        return self.respond_within

    @property
    def resolve(self) -> timedelta:
        assert self.resolve_within is not None, "validated before use"
        return self.resolve_within


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime
    resolve_by: datetime
    # When the clock worker escalates a complaint whose clock still runs; None: no early escalation.
    respond_escalate_at: datetime | None = None
    resolve_escalate_at: datetime | None = None


@dataclass(frozen=True)
class ClockState:
    """One clock of one complaint as the complaint's workflow leaves it (what `sla_clock` stores)."""

    complaint_id: str
    clock: SlaClock
    cycle: int  # 0 for the respond clock; the reopen count for the resolve clock
    started_at: datetime
    due_at: datetime
    escalate_at: datetime | None
    escalate_on_breach: bool
    sla_policy: str
    stopped_at: datetime | None = None
    # Stopped by closing the complaint (withdrawn, duplicate) rather than answering it.
    cancelled: bool = False


@dataclass(frozen=True)
class RunningClock:
    """A running clock the worker looks at, with what it already did to it."""

    clock: SlaClock
    cycle: int
    due_at: datetime
    escalate_at: datetime | None
    escalate_on_breach: bool
    warned: bool
    breached: bool


@dataclass(frozen=True)
class Due:
    """One event the worker applies: which clock, which event, and whether it escalates."""

    clock: SlaClock
    cycle: int
    event: ClockEvent
    due_at: datetime
    escalates: bool


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


def after(policy: SlaPolicy, start: datetime, amount: timedelta) -> datetime:
    """The moment `amount` of the policy's time (elapsed or working) has passed since `start`."""
    if policy.clock_mode == CLOCK_BUSINESS_CALENDAR and policy.calendar is not None:
        return business.add_working_time(policy.calendar, start, amount)
    return start + amount


def clock_deadline(policy: SlaPolicy, *, start: datetime, target: timedelta) -> tuple[datetime, datetime | None]:
    """A clock started at `start` with `target`: its deadline and its early-escalation point."""
    share = policy.pre_breach_escalation_share
    return after(policy, start, target), after(policy, start, target * share) if share else None


def deadlines(policy: SlaPolicy, *, received_at: datetime) -> Deadlines:
    """Both clocks start when the bank received the complaint."""
    respond_by, respond_escalate_at = clock_deadline(policy, start=received_at, target=policy.respond)
    resolve_by, resolve_escalate_at = clock_deadline(policy, start=received_at, target=policy.resolve)
    return Deadlines(respond_by, resolve_by, respond_escalate_at, resolve_escalate_at)


def with_tier(d: Deadlines, policy: SlaPolicy, *, received_at: datetime,
              tier_respond: timedelta | None) -> Deadlines:
    """The stricter respond deadline wins: the policy's, or the one the customer's value tier
    promises (segment's `ServiceStandard.max_response_time`, elapsed time). A tier deadline that
    wins brings its own early-escalation point at the policy's share."""
    if tier_respond is None or received_at + tier_respond >= d.respond_by:
        return d
    share = policy.pre_breach_escalation_share
    return dataclasses.replace(d, respond_by=received_at + tier_respond,
                               respond_escalate_at=received_at + tier_respond * share if share else None)


def due_events(clocks: Iterable[RunningClock], *, now: datetime) -> list[Due]:
    """What the worker does now to a complaint's running clocks: a clock past its deadline breaches
    (its early escalation, if not done, is folded into the breach); a clock past its escalation
    point escalates before breach. Each event happens once per clock (the worker records it)."""
    found = []
    for c in clocks:
        if not c.breached and c.due_at <= now:
            found.append(Due(c.clock, c.cycle, ClockEvent.BREACH, c.due_at, escalates=c.escalate_on_breach))
        elif not c.warned and not c.breached and c.escalate_at is not None and c.escalate_at <= now:
            found.append(Due(c.clock, c.cycle, ClockEvent.BEFORE_BREACH, c.due_at, escalates=True))
    return found


def escalation_reason(events: Sequence[Due]) -> str:
    """The note of an automatic escalation: which clocks, which events, their deadlines."""
    parts = []
    for e in events:
        what = "breached" if e.event is ClockEvent.BREACH else "about to breach"
        parts.append(f"{e.clock.name.lower()} SLA {what} (due {e.due_at:%Y-%m-%d %H:%M} UTC)")
    return "; ".join(parts)


def is_breached(*, due: datetime, stopped_at: datetime | None, now: datetime) -> bool:
    """Stopped after its deadline, or still running at (or past) it."""
    if stopped_at is not None:
        return stopped_at > due
    return now >= due


def normalise(policy: SlaPolicy) -> SlaPolicy:
    """Unspecified clock mode reads as elapsed time."""
    return dataclasses.replace(policy, clock_mode=policy.clock_mode or CLOCK_ELAPSED)


def validate_new(policy: SlaPolicy, v: Violations) -> None:
    """Create: the id, the (category, priority) pair, then every value rule."""
    field = "sla_policy"
    if policy.sla_policy_id:
        v.pattern(policy.sla_policy_id, f"{field}.sla_policy_id", SLA_POLICY_ID,
                  "must be 1 to 63 characters from a-z 0-9 -, starting with a letter")
        v.check(policy.sla_policy_id != DEFAULT_POLICY_ID, f"{field}.sla_policy_id",
                "'default' is reserved for the built-in fallback policy; update slaPolicies/default instead")
    v.enum(policy.category, f"{field}.category", CATEGORIES, "ComplaintCategory")
    v.enum(policy.priority, f"{field}.priority", PRIORITIES, "ComplaintPriority")
    v.check(policy.category != ANY or policy.priority != ANY, f"{field}.category",
            "category or priority must be set; slaPolicies/default covers every complaint")
    v.enum(policy.clock_mode, f"{field}.clock_mode", (CLOCK_ELAPSED, CLOCK_BUSINESS_CALENDAR), "SlaClockMode")
    validate_values(policy, v)


def validate_values(policy: SlaPolicy, v: Violations) -> None:
    """The rules of the updatable fields, on the policy as it would be stored."""
    field = "sla_policy"
    if v.required(policy.display_name, f"{field}.display_name"):
        v.max_length(policy.display_name, f"{field}.display_name", 100)
        v.text(policy.display_name, f"{field}.display_name")
    respond_ok = _target(policy.respond_within, f"{field}.respond_within", MAX_RESPOND, v)
    if _target(policy.resolve_within, f"{field}.resolve_within", MAX_RESOLVE, v) and respond_ok:
        v.check(policy.resolve >= policy.respond, f"{field}.resolve_within", "must be at least respond_within")
    share = policy.pre_breach_escalation_share
    v.check(share == 0 or 0 < share < 1, f"{field}.pre_breach_escalation_share",
            "must be greater than 0 and less than 1 (e.g. 0.75), or 0 for no escalation before breach")
    if policy.clock_mode == CLOCK_BUSINESS_CALENDAR:
        if policy.calendar is None:
            v.add(f"{field}.calendar", "is required when clock_mode is SLA_CLOCK_MODE_BUSINESS_CALENDAR")
        else:
            business.validate(policy.calendar, f"{field}.calendar", v)
    elif policy.calendar is not None:
        v.add(f"{field}.calendar", "must be unset unless clock_mode is SLA_CLOCK_MODE_BUSINESS_CALENDAR")


def _target(value: timedelta | None, field: str, most: timedelta, v: Violations) -> bool:
    if value is None:
        v.add(field, "is required")
        return False
    if value <= timedelta(0):
        v.add(field, "must be positive")
        return False
    return v.check(MIN_RESPOND <= value <= most, field, f"must be between 1 minute and {most.days} days")


def validate_mask(paths: Sequence[str], v: Violations) -> None:
    v.update_mask(paths, UPDATABLE)


def apply(current: SlaPolicy, changes: SlaPolicy, paths: Sequence[str]) -> SlaPolicy:
    """`current` with the masked fields taken from `changes`."""
    return dataclasses.replace(current, **{path: getattr(changes, path) for path in paths})


def effective_default(stored: SlaPolicy | None, configured: SlaPolicy) -> SlaPolicy:
    """The stored default once someone updated it, else the configured one (from settings)."""
    return stored if stored is not None else configured
