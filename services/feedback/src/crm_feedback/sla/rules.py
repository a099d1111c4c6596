"""SLA clock maths for complaints: which policy applies, the deadlines it sets, breaches. No I/O.

Deadlines are elapsed time from when the bank received the complaint, not business hours
(see `ComplaintSla` in complaint.proto). A clock is breached when it is still running at its
deadline, or when it was stopped after it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmkit.resources import ResourceName
from crmkit.validation import Violations

DEFAULT_POLICY_ID = "default"
ANY = 0  # category or priority "unspecified": the policy applies to every value
# Clock modes (SlaClockMode): only elapsed time is served; a business calendar comes later.
CLOCK_ELAPSED = 1
CLOCK_BUSINESS_CALENDAR = 2
CATEGORIES = range(0, 14)  # ComplaintCategory, 0 = any
PRIORITIES = range(0, 5)  # ComplaintPriority, 0 = any
SLA_POLICY_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
SLA_POLICY_NAME = ResourceName("slaPolicies/{sla_policy_id}", id_pattern=SLA_POLICY_ID.pattern)
MIN_RESPOND = timedelta(minutes=1)
MAX_RESPOND = timedelta(days=30)
MAX_RESOLVE = timedelta(days=90)
UPDATABLE = frozenset({"display_name", "respond_within", "resolve_within", "escalate_on_breach"})


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
    return Deadlines(respond_by=received_at + policy.respond, resolve_by=received_at + policy.resolve)


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
    v.check(policy.clock_mode in (0, CLOCK_ELAPSED), f"{field}.clock_mode",
            "must be SLA_CLOCK_MODE_ELAPSED (or unspecified); business-calendar clocks are not supported yet")
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
