"""Pure decisions of the data-quality report: which fields, which thresholds, which flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crm_profile.attributes.rules import ATTRIBUTE_ID
from crm_profile.quality.model import QualityFlag
from crmkit.validation import Violations

# Core fields the report covers, in report order (the `Customer` message's order).
CORE_FIELDS = (
    "customer_type", "full_name", "birth_date", "gender", "nationality", "id_document.type", "id_document.number",
    "id_document.issuing_country", "id_document.expires_on", "mobile_phone", "email", "address", "occupation",
    "kyc_status", "risk_tolerance", "relationship_manager_id", "branch_id", "onboarded_on", "closed_on",
    "preferred_language",
)
# Identifier fields: duplicates are counted through their blind indexes.
IDENTIFIER_FIELDS = ("id_document.number", "mobile_phone", "email")
MAX_FIELDS = 300
MAX_VIOLATIONS_LISTED = 10

COMPLETENESS_BELOW_THRESHOLD = QualityFlag.COMPLETENESS_BELOW_THRESHOLD
ERROR_RATE_ABOVE_THRESHOLD = QualityFlag.ERROR_RATE_ABOVE_THRESHOLD


@dataclass(frozen=True)
class FieldThreshold:
    field: str
    min_completeness_percent: float | None = None
    max_error_rate_percent: float | None = None


@dataclass(frozen=True)
class Thresholds:
    min_completeness_percent: float | None = None
    max_error_rate_percent: float | None = None
    field_thresholds: tuple[FieldThreshold, ...] = ()


@dataclass
class FieldCounts:
    """Counts of one field over one population (all sources, or one source system)."""

    filled: int = 0
    invalid: int = 0
    duplicates: int = 0
    violations: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldQuality:
    field: str
    source_system: str
    population: int
    filled: int
    completeness_percent: float
    completeness_expected: bool
    invalid: int
    error_rate_percent: float
    duplicates: int
    violations: tuple[tuple[str, int], ...]
    min_completeness_percent: float
    max_error_rate_percent: float
    flags: tuple[int, ...]


def is_known_field(path: str, attribute_ids: Sequence[str] | frozenset[str]) -> bool:
    if path in CORE_FIELDS:
        return True
    prefix, _, key = path.partition(".")
    return prefix == "attributes" and bool(ATTRIBUTE_ID.fullmatch(key)) and key in attribute_ids


def check_request(fields: Sequence[str], thresholds: Thresholds, attribute_ids: frozenset[str]) -> None:
    """INVALID_ARGUMENT naming every unknown field and every threshold outside 0 to 100."""
    v = Violations()
    v.check(len(fields) <= MAX_FIELDS, "fields", f"must have at most {MAX_FIELDS} entries")
    for i, path in enumerate(fields):
        v.check(is_known_field(path, attribute_ids), f"fields[{i}]",
                f"'{path}' is not a core field or a declared attribute (attributes.<id>)")
    _check_percent(thresholds.min_completeness_percent, "thresholds.min_completeness_percent", v)
    _check_percent(thresholds.max_error_rate_percent, "thresholds.max_error_rate_percent", v)
    seen: set[str] = set()
    for i, entry in enumerate(thresholds.field_thresholds):
        prefix = f"thresholds.field_thresholds[{i}]"
        if v.required(entry.field, prefix + ".field"):
            v.check(is_known_field(entry.field, attribute_ids), prefix + ".field",
                    f"'{entry.field}' is not a core field or a declared attribute")
            v.check(entry.field not in seen, prefix + ".field", f"'{entry.field}' has an earlier entry")
            seen.add(entry.field)
        _check_percent(entry.min_completeness_percent, prefix + ".min_completeness_percent", v)
        _check_percent(entry.max_error_rate_percent, prefix + ".max_error_rate_percent", v)
    v.raise_if_any()


def _check_percent(value: float | None, path: str, v: Violations) -> None:
    if value is not None:
        v.check(0 <= value <= 100, path, "must be between 0 and 100")


def effective(defaults: Thresholds, overrides: Thresholds) -> Thresholds:
    """The request's overrides on top of the configured defaults (field entries from the request)."""
    return Thresholds(
        min_completeness_percent=_first(overrides.min_completeness_percent, defaults.min_completeness_percent),
        max_error_rate_percent=_first(overrides.max_error_rate_percent, defaults.max_error_rate_percent),
        field_thresholds=overrides.field_thresholds or defaults.field_thresholds,
    )


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def assess(field: str, source_system: str, population: int, counts: FieldCounts, *, expected: bool,
           thresholds: Thresholds) -> FieldQuality:
    """One report row: the percentages, the thresholds that apply to the field, and what it missed."""
    own = next((t for t in thresholds.field_thresholds if t.field == field), FieldThreshold(field))
    min_completeness = _first(own.min_completeness_percent, thresholds.min_completeness_percent) or 0.0
    max_error_rate = _first(own.max_error_rate_percent, thresholds.max_error_rate_percent)
    max_error_rate = 100.0 if max_error_rate is None else max_error_rate
    completeness = percent(counts.filled, population) if population else 100.0
    error_rate = percent(counts.invalid, counts.filled)
    flags = []
    if expected and population and completeness < min_completeness:
        flags.append(COMPLETENESS_BELOW_THRESHOLD)
    if error_rate > max_error_rate:
        flags.append(ERROR_RATE_ABOVE_THRESHOLD)
    ranked = sorted(((rule, n) for rule, n in counts.violations.items() if n), key=lambda item: (-item[1], item[0]))
    return FieldQuality(
        field=field, source_system=source_system, population=population, filled=counts.filled,
        completeness_percent=completeness, completeness_expected=expected, invalid=counts.invalid,
        error_rate_percent=error_rate, duplicates=counts.duplicates,
        violations=tuple(ranked[:MAX_VIOLATIONS_LISTED]), min_completeness_percent=min_completeness,
        max_error_rate_percent=max_error_rate, flags=tuple(flags))


def order_fields(requested: Sequence[str], attribute_ids: Sequence[str]) -> list[str]:
    """The report's fields in field order: core fields, then attributes by id."""
    every = [*CORE_FIELDS, *(f"attributes.{key}" for key in sorted(attribute_ids))]
    if not requested:
        return every
    wanted = set(requested)
    return [f for f in every if f in wanted]


def counts_of(table: Mapping[tuple[str, str], FieldCounts], field: str, source: str) -> FieldCounts:
    return table.get((field, source), FieldCounts())
