"""Pure decisions about field history and freshness: what changed, how it reads, what is stale.

Field paths are the contract's: `mobile_phone`, `id_document.number`, `address`,
`attributes.<attribute_id>`, `external_ids`. Values are kept as canonical text (ISO dates, enum
value names, JSON for messages and lists).

A customer's creation is one entry for the whole record (`RECORD`), not one per field: it lists
the paths that had a value and stores none of the values. A field's value at creation is the old
value of its first later change, or its current value if it never changed (`creation_values`),
so the history still answers "what was this field when the customer was created" while each
personal value is kept (sealed) once less -- less personal data to protect, re-key and erase.
The creation also confirms every field it sets: a field without a confirmation row counts as
confirmed at the customer's creation (history.repository's stale query falls back to it).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from crm_profile.attributes.rules import ATTRIBUTE_ID, history_field
from crm_profile.customers.model import ENUM_FIELDS, Customer
from crm_profile.history.model import FieldChangeKind
from crmkit import masking
from crmkit.validation import Violations

# The source system of values written through the API by the bank's own staff and channels.
API_SOURCE_SYSTEM = "crm"

# Domain field of `Customer` -> its field path in history (the request's path).
CORE_FIELDS: dict[str, str] = {
    "customer_type": "customer_type", "full_name": "full_name", "birth_date": "birth_date", "gender": "gender",
    "nationality": "nationality", "id_type": "id_document.type", "id_number": "id_document.number",
    "id_issuing_country": "id_document.issuing_country", "id_expires_on": "id_document.expires_on",
    "mobile_phone": "mobile_phone", "email": "email", "address": "address", "occupation": "occupation",
    "kyc_status": "kyc_status", "risk_tolerance": "risk_tolerance",
    "relationship_manager_id": "relationship_manager_id", "branch_id": "branch_id",
    "onboarded_on": "onboarded_on", "closed_on": "closed_on", "preferred_language": "preferred_language",
    "external_ids": "external_ids",
}
CORE_PATHS = frozenset(CORE_FIELDS.values())
# A customer's core field values as a tuple, in the order of CORE_FIELDS and _CORE_FIELD_PATHS:
# read in one call, as bulk imports do for every row.
_core_values = operator.attrgetter(*CORE_FIELDS)
_CORE_FIELD_PATHS = tuple(CORE_FIELDS.values())
PERSONAL_PATHS = frozenset({"full_name", "id_document.number", "mobile_phone", "email", "address"})
# Paths that only group others: a filter on them selects their sub-fields.
GROUP_PATHS = frozenset({"id_document", "attributes"})
MAX_FILTER_PATHS = 50
MAX_CONFIRM_PATHS = 50

# The field path of the entry that records a customer's creation: the whole record. Never a
# contract path (those are never empty), so it cannot be asked for or confused with a field.
RECORD = ""

# Path -> {enum number: value name as the contract spells it}.
EnumNames = Mapping[str, Mapping[int, str]]
ENUM_NAMES: EnumNames = {path: {m.value: prefix + m.name for m in enum} for path, (enum, prefix) in ENUM_FIELDS.items()}


@dataclass(frozen=True)
class FieldValue:
    text: str
    personal: bool


@dataclass(frozen=True)
class Change:
    field: str
    kind: FieldChangeKind
    old: str
    new: str
    personal: bool


def snapshot(customer: Customer | None, enum_names: EnumNames) -> dict[str, FieldValue]:
    """The customer's filled fields as canonical text, by field path."""
    if customer is None:
        return {}
    values: dict[str, FieldValue] = {}
    for field, path in CORE_FIELDS.items():
        text = _canonical(getattr(customer, field), enum_names.get(path))
        if text:
            values[path] = FieldValue(text, path in PERSONAL_PATHS)
    for key, value in customer.attributes.items():
        values[history_field(key)] = FieldValue(value.canonical(), value.personal)
    return values


def _is_empty(value: object) -> bool:
    """What `_canonical` renders as "" (no value): None, "", {}, (), and 0 -- every integer field of
    a customer is an enum, and 0 means not given. Each of those is falsy, so a truthy value (the
    usual filled field) is settled by one test; False, [] or 0.0 are falsy and still a value."""
    if value:
        return False
    if value is None or value == "" or value == {} or value == ():
        return True
    return isinstance(value, int) and not isinstance(value, bool)


def _canonical(value: object, names: Mapping[int, str] | None) -> str:
    if _is_empty(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return names.get(value, str(value)) if names is not None else str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, tuple):  # external ids
        return json.dumps([{"sourceSystem": e.source_system, "id": e.id} for e in sorted(value)],
                          separators=(",", ":"))
    return str(value)


def diff(before: Mapping[str, FieldValue], after: Mapping[str, FieldValue], *,
         cleared: FieldChangeKind = FieldChangeKind.CLEARED) -> list[Change]:
    """The changes from `before` to `after`, in field order: SET for new or different values,
    `cleared` (CLEARED, or ERASED for erasures) for values that went away."""
    changes = []
    for field in sorted(before.keys() | after.keys()):
        old, new = before.get(field), after.get(field)
        if new is not None and (old is None or old.text != new.text):
            changes.append(Change(field, FieldChangeKind.SET, old.text if old else "", new.text,
                                  new.personal or bool(old and old.personal)))
        elif new is None and old is not None:
            changes.append(Change(field, cleared, old.text, "", old.personal))
    return changes


def changes(before: Customer, after: Customer, enum_names: EnumNames, *,
            cleared: FieldChangeKind = FieldChangeKind.CLEARED) -> list[Change]:
    """`diff(snapshot(before), snapshot(after))`, rendering only the fields whose values differ
    (an update usually changes a few of twenty; bulk imports call this once per row)."""
    before_values: dict[str, FieldValue] = {}
    after_values: dict[str, FieldValue] = {}
    for path, old, new in zip(_CORE_FIELD_PATHS, _core_values(before), _core_values(after), strict=True):
        if old == new:
            continue
        names = enum_names.get(path)
        personal = path in PERSONAL_PATHS
        if old_text := _canonical(old, names):
            before_values[path] = FieldValue(old_text, personal)
        if new_text := _canonical(new, names):
            after_values[path] = FieldValue(new_text, personal)
    if before.attributes or after.attributes:
        for key in before.attributes.keys() | after.attributes.keys():
            old_value, new_value = before.attributes.get(key), after.attributes.get(key)
            if old_value == new_value:
                continue
            if old_value is not None:
                before_values[history_field(key)] = FieldValue(old_value.canonical(), old_value.personal)
            if new_value is not None:
                after_values[history_field(key)] = FieldValue(new_value.canonical(), new_value.personal)
    return diff(before_values, after_values, cleared=cleared)


# --- creation ------------------------------------------------------------------------------------

def filled_paths(customer: Customer) -> list[str]:
    """The paths of the customer's fields that have a value, sorted: the keys of `snapshot`,
    without rendering the values."""
    paths = [path for path, value in zip(_CORE_FIELD_PATHS, _core_values(customer), strict=True)
             if not _is_empty(value)]
    paths.extend(history_field(key) for key in customer.attributes)
    paths.sort()
    return paths


def creation(customer: Customer) -> Change:
    """The one entry that records a customer's creation: the paths it set, as a JSON list."""
    return Change(RECORD, FieldChangeKind.SET, "", created_text(filled_paths(customer)), False)


def created_text(paths: Sequence[str]) -> str:
    return json.dumps(list(paths), separators=(",", ":"))


def created_paths(text: str) -> list[str]:
    """The paths a creation entry lists (its new value)."""
    return list(json.loads(text)) if text else []


def creation_values(paths: Iterable[str], *, first_olds: Mapping[str, FieldValue],
                    current: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """Each created path's value at creation: the old value of its first later change (`first_olds`),
    else its current value (`current`: the record's snapshot when this is its latest creation,
    empty otherwise). Empty text where neither is known, e.g. an erased personal value."""
    values = {}
    for path in paths:
        found = first_olds.get(path) or current.get(path)
        values[path] = found if found is not None else FieldValue("", path in PERSONAL_PATHS)
    return values


def is_known_path(path: str) -> bool:
    """A field path history knows: a core path, a group, or `attributes.<id>` of any attribute
    (also deleted ones, whose history stays)."""
    if path in CORE_PATHS or path in GROUP_PATHS:
        return True
    prefix, _, attribute_id = path.partition(".")
    return prefix == "attributes" and bool(ATTRIBUTE_ID.fullmatch(attribute_id))


def check_paths(paths: Sequence[str], *, field: str, limit: int, required: bool = False) -> None:
    v = Violations()
    if required:
        v.check(bool(paths), field, "is required: name at least one field path")
    v.check(len(paths) <= limit, field, f"must have at most {limit} entries")
    for i, path in enumerate(paths):
        v.check(is_known_path(path), f"{field}[{i}]",
                f"'{path}' is not a customer field path (e.g. mobile_phone, address, attributes.<id>)")
    v.raise_if_any()


def expand(paths: Iterable[str], filled: Iterable[str]) -> list[str]:
    """Paths with each group replaced by its filled sub-fields, in request order, without repeats."""
    filled = list(filled)
    out: list[str] = []
    for path in paths:
        members = [f for f in filled if f.startswith(path + ".")] if path in GROUP_PATHS else [path]
        out.extend(m for m in members if m not in out)
    return out


def selects(filters: Sequence[str], field: str) -> bool:
    return not filters or any(field == f or field.startswith(f + ".") for f in filters)


# --- masking -------------------------------------------------------------------------------------

_COARSE_ADDRESS_KEYS = ("regionCode", "administrativeArea", "locality")


def mask(field: str, text: str) -> str:
    """A personal value as a caller who may not see it reads it, like the customer's own masks."""
    if not text:
        return ""
    if field == "full_name":
        return masking.mask_name(text)
    if field == "id_document.number":
        return masking.mask_identifier(text)
    if field == "mobile_phone":
        return masking.mask_digits(text)
    if field == "email":
        return masking.mask_email(text)
    if field == "address":
        try:
            address = json.loads(text)
        except ValueError:
            return masking.mask_text(text)
        coarse = {k: address[k] for k in _COARSE_ADDRESS_KEYS if k in address}
        return json.dumps(coarse, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return masking.mask_text(text)


# --- freshness -----------------------------------------------------------------------------------

def max_ages(core: Mapping[str, int], attribute_ages: Mapping[str, timedelta | None]) -> dict[str, timedelta]:
    """Maximum age per field path: configured days for core paths, `max_age` for attributes."""
    ages = {path: timedelta(days=days) for path, days in core.items() if days > 0}
    ages.update({history_field(key): age for key, age in attribute_ages.items() if age is not None})
    return ages


def overdue(confirmed_at: datetime, max_age: timedelta, now: datetime) -> timedelta:
    return now - confirmed_at - max_age
