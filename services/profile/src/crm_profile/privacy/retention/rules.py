"""Pure decisions about retention: the default policies, what a valid policy is, when data is due.

Default policies (created by migration 0006; the bank changes them with UpdateRetentionPolicy):

| class            | period   | counted from        | then      | overrides erasure | legal floor (default) |
|------------------|----------|---------------------|-----------|-------------------|-----------------------|
| IDENTITY         | 5 years  | relationship end    | anonymise | no                | 5 years (AML/CFT)     |
| CONTACT          | 5 years  | relationship end    | anonymise | no                |                       |
| DEMOGRAPHIC      | 5 years  | relationship end    | anonymise | no                |                       |
| FINANCIAL        | 10 years | relationship end    | anonymise | no                | 5 years               |
| TRANSACTION      | 10 years | record time         | delete    | yes (AML/CFT)     | 5 years (AML/CFT)     |
| BEHAVIOUR        | 3 years  | record time         | delete    | no                |                       |
| CONSENT          | 5 years  | relationship end    | delete    | no                |                       |
| SPECIAL_CATEGORY | 1 year   | relationship end    | anonymise | no                |                       |
| AUDIT            | 10 years | record time         | delete    | no                | 5 years               |

(A year here is 365 days, the unit the event store's own acceptance window uses.) The legal
floors come from `CRM_PROFILE_RETENTION_MINIMUM_DAYS`; a policy below its floor is refused, and
the purge never applies less than the floor even if the configuration was raised later.

What each class allows follows from where its data lives: values on the customer record and the
consent ledger have no time of their own, so they count from the end of the relationship; the
record on the customer stays as an anonymous tombstone, so they are anonymised, never deleted;
audit records count from their own time and are only ever deleted whole (an edited record would
break the hash chain), and a chain's newest record is always kept so the chain goes on from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from crm_profile.attributes.model import DataClass
from crm_profile.privacy.data_subject.model import ErasureSpec
from crm_profile.privacy.data_subject.rules import CUSTOMER_CLASSES, EVENT_CLASSES, PERSONAL_CLASSES
from crm_profile.privacy.retention.model import PolicyChanges, RetentionAction, RetentionAnchor, RetentionPolicy
from crmkit.errors import NotFound
from crmkit.validation import Violations

YEAR = timedelta(days=365)
MAX_RETENTION = timedelta(days=36525)  # 100 years
MAX_LEGAL_BASIS = 500
UPDATABLE_PATHS = ("retention_period", "anchor", "action", "overrides_erasure", "legal_basis")

RECORD, END = RetentionAnchor.RECORD_TIME, RetentionAnchor.RELATIONSHIP_END
DELETE, ANONYMISE = RetentionAction.DELETE, RetentionAction.ANONYMISE

DEFAULT_POLICIES: dict[DataClass, RetentionPolicy] = {p.data_class: p for p in (
    RetentionPolicy(DataClass.IDENTITY, 5 * YEAR, END, ANONYMISE, False,
                    "Customer due diligence records: kept 5 years after the relationship ends (AML/CFT)"),
    RetentionPolicy(DataClass.CONTACT, 5 * YEAR, END, ANONYMISE, False,
                    "Kept as long as the identity data they belong to"),
    RetentionPolicy(DataClass.DEMOGRAPHIC, 5 * YEAR, END, ANONYMISE, False,
                    "Kept as long as the identity data they belong to"),
    RetentionPolicy(DataClass.FINANCIAL, 10 * YEAR, END, ANONYMISE, False,
                    "Accounting records: 10 years after the relationship ends"),
    RetentionPolicy(DataClass.TRANSACTION, 10 * YEAR, RECORD, DELETE, True,
                    "Transaction records: at least 5 years (AML/CFT), kept 10 for accounting"),
    RetentionPolicy(DataClass.BEHAVIOUR, 3 * YEAR, RECORD, DELETE, False,
                    "Legitimate interest in service analytics: 3 years"),
    RetentionPolicy(DataClass.CONSENT, 5 * YEAR, END, DELETE, False,
                    "Proof of consent: the limitation period after the relationship ends"),
    RetentionPolicy(DataClass.SPECIAL_CATEGORY, YEAR, END, ANONYMISE, False,
                    "Special-category data: kept no longer than the relationship needs, plus one year"),
    RetentionPolicy(DataClass.AUDIT, 10 * YEAR, RECORD, DELETE, False,
                    "Access records: 10 years, for internal and regulatory audit"),
)}
DEFAULT_MINIMUM_DAYS = {"identity": 5 * 365, "financial": 5 * 365, "transaction": 5 * 365, "audit": 5 * 365}

# What each class's data allows (see the module's docstring).
ALLOWED_ANCHORS: dict[DataClass, frozenset[RetentionAnchor]] = {
    **{c: frozenset({END}) for c in (*CUSTOMER_CLASSES, DataClass.FINANCIAL, DataClass.CONSENT)},
    DataClass.TRANSACTION: frozenset({RECORD, END}),
    DataClass.BEHAVIOUR: frozenset({RECORD, END}),
    DataClass.AUDIT: frozenset({RECORD}),
}
ALLOWED_ACTIONS: dict[DataClass, frozenset[RetentionAction]] = {
    **{c: frozenset({ANONYMISE}) for c in CUSTOMER_CLASSES},
    DataClass.FINANCIAL: frozenset({DELETE, ANONYMISE}),
    DataClass.TRANSACTION: frozenset({DELETE, ANONYMISE}),
    DataClass.BEHAVIOUR: frozenset({DELETE, ANONYMISE}),
    DataClass.CONSENT: frozenset({DELETE}),
    DataClass.AUDIT: frozenset({DELETE}),
}


def slug_of(data_class: DataClass) -> str:
    return data_class.name.lower().replace("_", "-")


def class_of(slug: str) -> DataClass:
    """The class in `retentionPolicies/{slug}`; NOT_FOUND for a class without a policy."""
    for data_class in PERSONAL_CLASSES:
        if slug_of(data_class) == slug:
            return data_class
    raise NotFound(f"retention policy {slug} not found: policies exist for "
                   f"{', '.join(slug_of(c) for c in PERSONAL_CLASSES)}", reason="RETENTION_POLICY_NOT_FOUND")


def minimums(configured: Mapping[str, int]) -> dict[DataClass, timedelta]:
    """The legal floors by class, from the configuration's `{slug: days}`."""
    known = {slug_of(c): c for c in PERSONAL_CLASSES}
    unknown = sorted(set(configured) - set(known))
    if unknown:
        raise ValueError(f"retention minimums name unknown data classes: {', '.join(unknown)}")
    return {known[slug]: timedelta(days=days) for slug, days in configured.items()}


def check_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    v.raise_if_any()


def updated(current: RetentionPolicy, changes: PolicyChanges, paths: Sequence[str]) -> RetentionPolicy:
    """The policy with the masked fields changed; INVALID_ARGUMENT naming every bad field."""
    prefix = "retention_policy."
    v = Violations()
    values: dict[str, Any] = {}
    if "retention_period" in paths:
        period = changes.retention
        if v.check(period is not None and period > timedelta(0) and period % timedelta(days=1) == timedelta(0),
                   prefix + "retention_period", "must be a positive whole number of days"):
            assert period is not None
            v.check(period >= current.minimum, prefix + "retention_period",
                    f"must be at least the legal minimum of {current.minimum.days} days for this class")
            v.check(period <= MAX_RETENTION, prefix + "retention_period", "must be at most 100 years (36525 days)")
            values["retention"] = period
    if "anchor" in paths:
        allowed = ALLOWED_ANCHORS[current.data_class]
        known = v.enum(changes.anchor, prefix + "anchor", RetentionAnchor._value2member_map_, "RetentionAnchor")
        if known and v.check(changes.anchor in {int(a) for a in allowed}, prefix + "anchor",
                             f"must be {' or '.join('RETENTION_ANCHOR_' + a.name for a in sorted(allowed))}"
                             " for this class"):
            values["anchor"] = RetentionAnchor(changes.anchor)
    if "action" in paths:
        allowed_actions = ALLOWED_ACTIONS[current.data_class]
        known = v.enum(changes.action, prefix + "action", RetentionAction._value2member_map_, "RetentionAction")
        if known and v.check(changes.action in {int(a) for a in allowed_actions}, prefix + "action",
                             f"must be {' or '.join('RETENTION_ACTION_' + a.name for a in sorted(allowed_actions))}"
                             " for this class"):
            values["action"] = RetentionAction(changes.action)
    if "overrides_erasure" in paths:
        v.check(not changes.overrides_erasure or current.data_class != DataClass.AUDIT, prefix + "overrides_erasure",
                "is always kept for audit records")
        values["overrides_erasure"] = changes.overrides_erasure
    if "legal_basis" in paths:
        v.max_length(changes.legal_basis, prefix + "legal_basis", MAX_LEGAL_BASIS)
        v.text(changes.legal_basis, prefix + "legal_basis", multiline=True)
        values["legal_basis"] = changes.legal_basis
    v.raise_if_any()
    return dataclasses.replace(current, **values)


def check_purge_classes(values: Sequence[int], violations: Violations) -> tuple[DataClass, ...]:
    """The classes a purge covers: those asked for (each a class with a policy), or all."""
    classes = []
    for i, value in enumerate(values):
        known = violations.enum(value, f"data_classes[{i}]", DataClass._value2member_map_, "DataClass")
        known = known and violations.check(
            value in {int(c) for c in PERSONAL_CLASSES}, f"data_classes[{i}]",
            "must be a DataClass with a retention policy (not UNSPECIFIED or NON_PERSONAL)")
        if known and DataClass(value) not in classes:
            classes.append(DataClass(value))
    return tuple(classes) or PERSONAL_CLASSES


def cutoff(policy: RetentionPolicy, now: datetime) -> datetime:
    """Data anchored before this time is due."""
    return now - policy.effective_retention


def cutoff_date(policy: RetentionPolicy, now: datetime) -> date:
    """Relationship-end anchors are dates: customers closed before this date are due."""
    return cutoff(policy, now).astimezone(UTC).date()


def month_end(month: date) -> datetime:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return datetime(following.year, following.month, 1, tzinfo=UTC)


def due_months(months: Sequence[date], before: datetime) -> list[date]:
    """Event partitions (one per month) wholly older than `before`."""
    return sorted(m for m in months if month_end(m) <= before)


def purge_spec(due: Sequence[DataClass], policies: dict[DataClass, RetentionPolicy], *, erased: bool) -> ErasureSpec:
    """What the erasure path does for the classes due on one closed customer (an erased one has
    nothing left on its record, only what EraseCustomer restricted or kept)."""
    wanted = set(due)
    erase = {c for c in wanted if (c in CUSTOMER_CLASSES and not erased) or c == DataClass.CONSENT}
    if DataClass.FINANCIAL in wanted and policies[DataClass.FINANCIAL].action == RetentionAction.DELETE:
        erase.add(DataClass.FINANCIAL)
    events = wanted & EVENT_CLASSES
    return ErasureSpec(
        erase=frozenset(erase),
        anonymise_events=frozenset(c for c in events if policies[c].action == RetentionAction.ANONYMISE),
        delete_events=frozenset(c for c in events if policies[c].action == RetentionAction.DELETE),
        tombstone=not erased and wanted >= CUSTOMER_CLASSES)
