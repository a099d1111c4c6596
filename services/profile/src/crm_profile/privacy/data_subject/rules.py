"""Pure decisions of erasure and export: which data class each value belongs to, what an erasure
does to each class, what is left of a customer afterwards. No I/O here.

Erasure works class by class, so EraseCustomer (every class) and the retention purge (the
classes whose period has ended for a closed customer) share one path:

| class            | held in                                                           | on erasure            |
|------------------|-------------------------------------------------------------------|-----------------------|
| IDENTITY         | name, ID document, birth date, external ids, name keys, candidates | erased                |
| CONTACT          | mobile phone, e-mail, address                                       | erased                |
| DEMOGRAPHIC      | gender ... relationship manager, relationships to other customers   | erased                |
| SPECIAL_CATEGORY | attribute values of the class                                       | erased                |
| CONSENT          | consent ledger, contact preferences                                 | erased                |
| FINANCIAL        | holdings, attribute values of the class                             | kept: anonymous totals |
| TRANSACTION      | transaction and payroll events                                      | anonymised            |
| BEHAVIOUR        | every other event                                                   | anonymised            |
| AUDIT            | audit records naming the customer                                   | restricted (kept)     |

Attribute values and field history follow the class of their field. A class whose retention
policy `overrides_erasure` is restricted instead: kept as is until the purge removes it.
Anonymising an event drops its free-form `properties` (the only place a source could have put
personal text); type, channel, time and amounts stay for aggregates.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from crm_profile.attributes.model import DataClass
from crm_profile.customers.model import ERASED, Customer
from crm_profile.events.rules import TRANSACTION_TYPES
from crm_profile.privacy.data_subject.model import ErasedClass, ErasureOutcome, ErasureReport, Inventory
from crm_profile.privacy.retention.model import RetentionAnchor, RetentionPolicy
from crmkit.errors import FailedPrecondition
from crmkit.resources import Purpose
from crmkit.validation import Violations

# Classes whose values sit on the customer record itself (and its attribute values).
CUSTOMER_CLASSES = frozenset({DataClass.IDENTITY, DataClass.CONTACT, DataClass.DEMOGRAPHIC,
                              DataClass.SPECIAL_CATEGORY})
EVENT_CLASSES = frozenset({DataClass.TRANSACTION, DataClass.BEHAVIOUR})
# Classes whose erasure changes the customer record (its columns or attribute values).
RECORD_CLASSES = CUSTOMER_CLASSES | {DataClass.FINANCIAL}
# Every class a customer's data can be in (NON_PERSONAL is never erased, nor reported).
PERSONAL_CLASSES = tuple(c for c in DataClass if c not in (DataClass.UNSPECIFIED, DataClass.NON_PERSONAL))

# Field path (as history records it) -> class, for the core fields of a customer.
CORE_FIELD_CLASSES: dict[str, DataClass] = {
    "full_name": DataClass.IDENTITY, "birth_date": DataClass.IDENTITY, "id_document.type": DataClass.IDENTITY,
    "id_document.number": DataClass.IDENTITY, "id_document.issuing_country": DataClass.IDENTITY,
    "id_document.expires_on": DataClass.IDENTITY, "external_ids": DataClass.IDENTITY,
    "mobile_phone": DataClass.CONTACT, "email": DataClass.CONTACT, "address": DataClass.CONTACT,
    "gender": DataClass.DEMOGRAPHIC, "nationality": DataClass.DEMOGRAPHIC, "occupation": DataClass.DEMOGRAPHIC,
    "kyc_status": DataClass.DEMOGRAPHIC, "risk_tolerance": DataClass.DEMOGRAPHIC,
    "relationship_manager_id": DataClass.DEMOGRAPHIC, "preferred_language": DataClass.DEMOGRAPHIC,
    "customer_type": DataClass.NON_PERSONAL, "branch_id": DataClass.NON_PERSONAL,
    "onboarded_on": DataClass.NON_PERSONAL, "closed_on": DataClass.NON_PERSONAL,
}
# The value an erased core field is left with, by domain field of `Customer`.
_BLANK: dict[DataClass, dict[str, Any]] = {
    DataClass.IDENTITY: {"full_name": "", "birth_date": None, "id_type": 0, "id_number": "",
                         "id_issuing_country": "", "id_expires_on": None, "external_ids": ()},
    DataClass.CONTACT: {"mobile_phone": "", "email": "", "address": {}},
    DataClass.DEMOGRAPHIC: {"gender": 0, "nationality": "", "occupation": "", "kyc_status": 0, "risk_tolerance": 0,
                            "relationship_manager_id": "", "preferred_language": ""},
    DataClass.SPECIAL_CATEGORY: {},
}
# An attribute whose definition is gone (its history stays) has no known class: treat it as the
# strictest personal class, so it is erased with any of them.
UNKNOWN_ATTRIBUTE_CLASS = DataClass.SPECIAL_CATEGORY

DATA_SUBJECT_REQUEST = "DATA_SUBJECT_REQUEST"
EXPORT_SECTION_ITEMS = 1000
MAX_CASE_REFERENCE = 200


def check_request_purpose(purpose: Purpose, violations: Violations, *, case_reference: bool) -> None:
    """A data-subject request names that purpose, and an erasure its case reference."""
    violations.check(purpose.purpose == DATA_SUBJECT_REQUEST, "audit.purpose",
                     "must be ACCESS_PURPOSE_DATA_SUBJECT_REQUEST")
    if case_reference:
        violations.check(bool(purpose.justification.strip()), "audit.justification",
                         "is required: the request's case reference, e.g. DSR-2026-00042")
    violations.max_length(purpose.justification, "audit.justification", MAX_CASE_REFERENCE)


def check_data_classes(values: Iterable[int], field: str, violations: Violations) -> tuple[DataClass, ...]:
    """Known classes (not UNSPECIFIED), each once, in the order given."""
    classes: list[DataClass] = []
    for i, value in enumerate(values):
        known = violations.enum(value, f"{field}[{i}]", frozenset(DataClass) - {DataClass.UNSPECIFIED}, "DataClass",
                                required="must be a DataClass other than DATA_CLASS_UNSPECIFIED")
        if known and DataClass(value) not in classes:
            classes.append(DataClass(value))
    return tuple(classes)


def field_class(path: str, attribute_classes: Mapping[str, DataClass]) -> DataClass:
    """The class of a field path as history records it (`mobile_phone`, `attributes.<id>`)."""
    prefix, _, attribute_id = path.partition(".")
    if prefix == "attributes" and attribute_id:
        return attribute_classes.get(attribute_id, UNKNOWN_ATTRIBUTE_CLASS)
    return CORE_FIELD_CLASSES.get(path, DataClass.IDENTITY)


def fields_of(classes: Iterable[DataClass]) -> list[str]:
    """The core field paths of these classes (for history and confirmations)."""
    wanted = set(classes)
    return sorted(path for path, c in CORE_FIELD_CLASSES.items() if c in wanted)


def outcome_of(data_class: DataClass, policy: RetentionPolicy | None) -> ErasureOutcome:
    """What EraseCustomer does to a class, given its retention policy."""
    if data_class == DataClass.AUDIT or (policy is not None and policy.overrides_erasure):
        return ErasureOutcome.RESTRICTED
    if data_class in CUSTOMER_CLASSES or data_class == DataClass.CONSENT:
        return ErasureOutcome.ERASED
    return ErasureOutcome.ANONYMISED


def erasure_plan(policies: Mapping[DataClass, RetentionPolicy]) -> dict[DataClass, ErasureOutcome]:
    return {c: outcome_of(c, policies.get(c)) for c in PERSONAL_CLASSES}


def erased_classes(plan: Mapping[DataClass, ErasureOutcome]) -> frozenset[DataClass]:
    return frozenset(c for c, outcome in plan.items() if outcome == ErasureOutcome.ERASED)


def anonymised_event_classes(plan: Mapping[DataClass, ErasureOutcome]) -> frozenset[DataClass]:
    return frozenset(c for c in EVENT_CLASSES if plan.get(c) == ErasureOutcome.ANONYMISED)


def erased_customer(customer: Customer, classes: Iterable[DataClass], attribute_classes: Mapping[str, DataClass],
                    *, today: date, tombstone: bool) -> Customer:
    """The customer as it is after its values of `classes` are erased. A tombstone (EraseCustomer)
    is ERASED and its relationship ends today unless it had ended already."""
    wanted = set(classes)
    blank: dict[str, Any] = {}
    for c in wanted & CUSTOMER_CLASSES:
        blank.update(_BLANK[c])
    kept = {key: value for key, value in customer.attributes.items()
            if attribute_classes.get(key, UNKNOWN_ATTRIBUTE_CLASS) not in wanted}
    erased = dataclasses.replace(customer, **blank, attributes=kept)
    if tombstone:
        erased = dataclasses.replace(erased, state=ERASED, merged_into="", closed_on=customer.closed_on or today)
    return erased


def restricted_until(policy: RetentionPolicy | None, *, closed_on: date | None,
                     newest: datetime | None) -> datetime | None:
    """When the purge will remove restricted data: the end of its period from its anchor."""
    if policy is None:
        return None
    if policy.anchor == RetentionAnchor.RELATIONSHIP_END:
        if closed_on is None:
            return None
        return datetime.combine(closed_on, time(), tzinfo=UTC) + policy.effective_retention
    return newest + policy.effective_retention if newest is not None else None


def report(customer_id: str, *, inventory: Inventory, plan: Mapping[DataClass, ErasureOutcome],
           policies: Mapping[DataClass, RetentionPolicy], erase_time: datetime | None) -> ErasureReport:
    """One entry per class the customer had data in, in class order."""
    entries = []
    for data_class in PERSONAL_CLASSES:
        count = inventory.counts.get(data_class, 0)
        if not count:
            continue
        outcome = plan[data_class]
        until = (restricted_until(policies.get(data_class), closed_on=inventory.closed_on,
                                  newest=inventory.newest.get(data_class))
                 if outcome == ErasureOutcome.RESTRICTED else None)
        entries.append(ErasedClass(data_class, outcome, count, until))
    return ErasureReport(customer_id, erase_time, tuple(entries))


def report_to_json(erasure: ErasureReport) -> list[dict[str, Any]]:
    return [{"data_class": int(c.data_class), "outcome": int(c.outcome), "record_count": c.record_count,
             "restricted_until": c.restricted_until.isoformat() if c.restricted_until else None}
            for c in erasure.classes]


def report_from_json(customer_id: str, erase_time: datetime, value: Iterable[Mapping[str, Any]]) -> ErasureReport:
    return ErasureReport(customer_id, erase_time, tuple(
        ErasedClass(DataClass(item["data_class"]), ErasureOutcome(item["outcome"]), int(item["record_count"]),
                    datetime.fromisoformat(item["restricted_until"]) if item.get("restricted_until") else None)
        for item in value))


def check_erasable(*, open_holdings: int) -> None:
    if open_holdings:
        raise FailedPrecondition(
            f"the customer has {open_holdings} holding(s) not CLOSED; close them before erasing the customer",
            reason="CUSTOMER_HAS_OPEN_HOLDINGS", metadata={"open_holdings": str(open_holdings)})


# --- merges ---------------------------------------------------------------------------------------


def scrub_merge_undo(undo: Mapping[str, Any], classes: Iterable[DataClass]) -> dict[str, Any]:
    """A merge's undo data without the erased classes' values: the survivor snapshots lose their
    sealed values and the plain fields of those classes; preferences go with CONSENT. The shape
    stays, so an unmerge reads blanks instead of failing."""
    wanted = set(classes)
    scrubbed = copy.deepcopy(dict(undo))
    plain_fields = {f for c in wanted & CUSTOMER_CLASSES for f in _BLANK[c]}
    for key in ("survivor_before", "survivor_after"):
        snapshot = scrubbed.get(key)
        if not isinstance(snapshot, dict):
            continue
        if wanted & {DataClass.IDENTITY, DataClass.CONTACT}:
            sealed = snapshot.get("sealed") or {}
            snapshot["sealed"] = {name: (value if _sealed_class(name) not in wanted else None)
                                  for name, value in sealed.items()}
        snapshot["plain"] = {name: value for name, value in (snapshot.get("plain") or {}).items()
                             if name not in plain_fields}
    if DataClass.CONSENT in wanted and "preferences_before" in scrubbed:
        scrubbed["preferences_before"] = None
    return scrubbed


def _sealed_class(column: str) -> DataClass:
    """`mobile_phone_sealed` -> CONTACT."""
    return CORE_FIELD_CLASSES.get(column.removesuffix("_sealed").replace("id_number", "id_document.number"),
                                  DataClass.IDENTITY)


# --- export ---------------------------------------------------------------------------------------


def customer_for_export(customer: Customer, classes: Iterable[DataClass],
                        attribute_classes: Mapping[str, DataClass]) -> Customer | None:
    """The customer with only the values of the requested classes (None when none of its classes
    is requested); identifiers and lifecycle dates always stay."""
    wanted = set(classes)
    record_classes = CUSTOMER_CLASSES | {DataClass.NON_PERSONAL, DataClass.FINANCIAL}
    if not wanted & record_classes:
        return None
    unwanted = [c for c in CUSTOMER_CLASSES if c not in wanted]
    blank: dict[str, Any] = {}
    for c in unwanted:
        blank.update(_BLANK[c])
    attributes = {key: value for key, value in customer.attributes.items()
                  if attribute_classes.get(key, UNKNOWN_ATTRIBUTE_CLASS) in wanted}
    return dataclasses.replace(customer, **blank, attributes=attributes)


def event_class(event_type: int) -> DataClass:
    return DataClass.TRANSACTION if event_type in TRANSACTION_TYPES else DataClass.BEHAVIOUR


def sections(items: list[Any], size: int = EXPORT_SECTION_ITEMS) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
