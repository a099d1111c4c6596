"""Pure decisions about the attribute catalogue and attribute values. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

from crm_profile.attributes.model import (
    ENCRYPTED_CLASSES,
    AttributeDefinition,
    AttributeValue,
    DataClass,
    Validation,
    ValueType,
)
from crmkit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from crmkit.validation import NO_CONTROL_CHARACTERS, Violations, bounds_rule, has_control_characters

ATTRIBUTE_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")
SOURCE_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
ALLOWED_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Field names of the `Customer` message: an attribute must not shadow one (a test keeps this
# list equal to the message's fields).
CORE_FIELD_NAMES = frozenset({
    "name", "customer_id", "etag", "customer_type", "full_name", "birth_date", "gender", "nationality",
    "id_document", "mobile_phone", "email", "address", "occupation", "kyc_status", "risk_tolerance",
    "relationship_manager_id", "branch_id", "onboarded_on", "closed_on", "preferred_language", "create_time",
    "update_time", "masked_fields", "attributes", "state", "merged_into", "external_ids",
})
UPDATABLE_PATHS = frozenset({
    "display_name", "description", "value_type", "validation", "data_class", "source_system",
    "completeness_expected", "max_age",
})
MAX_VALUES_PER_CUSTOMER = 200
DEFAULT_MAX_LENGTH = 1024
MAX_STRING_LENGTH = 4096
MAX_PATTERN_LENGTH = 500
MAX_ALLOWED_VALUES = 500
MAX_AGE_DAYS = 3650

# Reasons of INVALID_ARGUMENT for attribute values, as the contract names them.
UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
TYPE_MISMATCH = "ATTRIBUTE_TYPE_MISMATCH"
VALIDATION_FAILED = "ATTRIBUTE_VALIDATION_FAILED"

# Rule names of the data-quality report (`RuleViolationCount.rule`).
RULE_PATTERN = "PATTERN"
RULE_LENGTH = "LENGTH"
RULE_RANGE = "RANGE"
RULE_FRACTION_DIGITS = "FRACTION_DIGITS"
RULE_DATE_RANGE = "DATE_RANGE"
RULE_NOT_IN_FUTURE = "DATE_NOT_IN_FUTURE"
RULE_ALLOWED_VALUES = "ALLOWED_VALUES"

_MEMBERS_BY_TYPE: dict[ValueType, frozenset[str]] = {
    ValueType.STRING: frozenset({"pattern", "min_length", "max_length"}),
    ValueType.INT: frozenset({"min_value", "max_value"}),
    ValueType.DECIMAL: frozenset({"min_value", "max_value", "max_fraction_digits"}),
    ValueType.BOOL: frozenset(),
    ValueType.DATE: frozenset({"min_date", "max_date", "not_in_future"}),
    ValueType.ENUM: frozenset({"allowed_values"}),
}
_INT64 = (-(2**63), 2**63 - 1)


def value_field(key: str, prefix: str = "customer.") -> str:
    """The request path of one attribute value, as the contract names it: `attributes["key"]`."""
    return f'{prefix}attributes["{key}"]'


def history_field(attribute_id: str) -> str:
    """The field path of an attribute in history, staleness and quality: `attributes.<id>`."""
    return f"attributes.{attribute_id}"


# --- the catalogue -------------------------------------------------------------------------------


def validate_definition(definition: AttributeDefinition, *, prefix: str = "attribute_definition.",
                        violations: Violations | None = None, creating: bool = True) -> Violations:
    """Every rule the definition breaks, each under the request's field path."""
    v = violations or Violations()
    if creating and v.required(definition.attribute_id, prefix + "attribute_id") and v.pattern(
            definition.attribute_id, prefix + "attribute_id", ATTRIBUTE_ID,
            "must be 1 to 63 characters matching ^[a-z][a-z0-9_]{0,62}$"):
        v.check(definition.attribute_id not in CORE_FIELD_NAMES, prefix + "attribute_id",
                f"'{definition.attribute_id}' is the name of a core Customer field")
    display = definition.display_name.strip()
    if v.required(display, prefix + "display_name"):
        v.max_length(display, prefix + "display_name", 100)
        v.text(display, prefix + "display_name")
    v.max_length(definition.description, prefix + "description", 1000)
    v.text(definition.description, prefix + "description", multiline=True)
    type_known = definition.value_type in _MEMBERS_BY_TYPE
    v.check(type_known, prefix + "value_type", "is required: one of STRING, INT, DECIMAL, BOOL, DATE, ENUM")
    v.check(definition.data_class in set(DataClass) - {DataClass.UNSPECIFIED}, prefix + "data_class",
            "is required: a known DataClass")
    if v.required(definition.source_system, prefix + "source_system"):
        v.pattern(definition.source_system, prefix + "source_system", SOURCE_SYSTEM,
                  "must be 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$")
    if definition.max_age is not None:
        days = definition.max_age / timedelta(days=1)
        v.check(days == int(days) and 1 <= days <= MAX_AGE_DAYS, prefix + "max_age",
                f"must be whole days, 1 to {MAX_AGE_DAYS}")
    if type_known:
        _validate_validation(definition.value_type, definition.validation, prefix + "validation.", v)
    return v


def _validate_validation(value_type: ValueType, rules: Validation, prefix: str, v: Violations) -> None:
    applicable = _MEMBERS_BY_TYPE[value_type]
    defaults = Validation()
    for member in dataclasses.fields(Validation):
        if getattr(rules, member.name) != getattr(defaults, member.name) and member.name not in applicable:
            v.add(prefix + member.name, f"does not apply to {value_type.name} attributes")
    if value_type is ValueType.STRING:
        if v.max_length(rules.pattern, prefix + "pattern", MAX_PATTERN_LENGTH) and rules.pattern:
            try:
                re.compile(rules.pattern)
            except re.error as exc:
                v.add(prefix + "pattern", f"does not compile: {exc.msg}")
        v.check(0 <= rules.min_length <= MAX_STRING_LENGTH, prefix + "min_length", f"must be 0 to {MAX_STRING_LENGTH}")
        if v.check(0 <= rules.max_length <= MAX_STRING_LENGTH, prefix + "max_length",
                   f"must be 0 to {MAX_STRING_LENGTH}"):
            v.check(effective_max_length(rules) >= rules.min_length, prefix + "max_length",
                    "must be at least min_length")
    if value_type in (ValueType.INT, ValueType.DECIMAL):
        for name in ("min_value", "max_value"):
            bound = getattr(rules, name)
            finite = bound is not None and v.check(bound.is_finite(), prefix + name, "must be a finite decimal number")
            if finite and value_type is ValueType.INT:
                v.check(bound == bound.to_integral_value(), prefix + name, "must be a whole number for INT")
        if rules.min_value is not None and rules.max_value is not None and rules.min_value.is_finite() \
                and rules.max_value.is_finite():
            v.check(rules.max_value >= rules.min_value, prefix + "max_value", "must be at least min_value")
        v.check(0 <= rules.max_fraction_digits <= 18, prefix + "max_fraction_digits", "must be 0 to 18")
    if value_type is ValueType.DATE and rules.min_date and rules.max_date:
        v.check(rules.max_date >= rules.min_date, prefix + "max_date", "must not be before min_date")
    if value_type is ValueType.ENUM:
        count = len(rules.allowed_values)
        if v.check(1 <= count <= MAX_ALLOWED_VALUES, prefix + "allowed_values",
                   f"is required for ENUM: 1 to {MAX_ALLOWED_VALUES} entries"):
            seen: set[str] = set()
            for i, allowed in enumerate(rules.allowed_values):
                path = f"{prefix}allowed_values[{i}]"
                v.pattern(allowed.value, path + ".value", ALLOWED_VALUE,
                          "must be 1 to 64 characters matching ^[A-Za-z0-9_.-]+$")
                v.check(allowed.value not in seen, path + ".value", f"'{allowed.value}' is listed twice")
                v.max_length(allowed.display_name, path + ".display_name", 100)
                v.text(allowed.display_name, path + ".display_name")
                seen.add(allowed.value)


def effective_max_length(rules: Validation) -> int:
    return rules.max_length or DEFAULT_MAX_LENGTH


def check_update_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    v.raise_if_any()


def apply_update(current: AttributeDefinition, changes: AttributeDefinition,
                 paths: Sequence[str]) -> AttributeDefinition:
    return dataclasses.replace(current, **{p: getattr(changes, p) for p in paths})


def check_change_allowed(current: AttributeDefinition, updated: AttributeDefinition, *, values_held: int,
                         held_enum_values: Iterable[str]) -> None:
    """Changes that would strand stored values: FAILED_PRECONDITION while any customer holds one."""
    if not values_held:
        return
    if updated.value_type != current.value_type:
        raise FailedPrecondition(
            f"value_type cannot change while {values_held} customers hold a value", reason="ATTRIBUTE_IN_USE",
            metadata={"field": "value_type"})
    if (current.data_class in ENCRYPTED_CLASSES) != (updated.data_class in ENCRYPTED_CLASSES):
        raise FailedPrecondition(
            "data_class cannot move to or from an encrypted class while values exist (it needs a re-encryption)",
            reason="ATTRIBUTE_IN_USE", metadata={"field": "data_class"})
    if updated.value_type is ValueType.ENUM:
        allowed = {a.value for a in updated.validation.allowed_values}
        stranded = sorted(set(held_enum_values) - allowed)
        if stranded:
            raise FailedPrecondition(
                f"allowed values still held by customers cannot be removed: {', '.join(stranded[:10])}",
                reason="ATTRIBUTE_IN_USE", metadata={"field": "validation.allowed_values"})


# --- values --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ValueProblem:
    reason: str  # UNKNOWN_ATTRIBUTE, ATTRIBUTE_TYPE_MISMATCH, ATTRIBUTE_VALIDATION_FAILED
    rule: str  # the quality report's rule name; "" for unknown attributes and type mismatches
    description: str


def check_value(definition: AttributeDefinition, value: AttributeValue, *, today: date) -> ValueProblem | None:
    """The first rule `value` breaks, or None when it is a valid value of the attribute."""
    if value.type is not definition.value_type:
        member = f"{definition.value_type.name.lower()}_value"
        return ValueProblem(TYPE_MISMATCH, "", f"must be given as {member} ({definition.value_type.name} attribute)")
    rules, raw = definition.validation, value.value
    if definition.value_type is ValueType.STRING:
        assert isinstance(raw, str)
        if has_control_characters(raw):
            return ValueProblem(VALIDATION_FAILED, RULE_PATTERN, NO_CONTROL_CHARACTERS)
        length = len(raw)
        if not rules.min_length <= length <= effective_max_length(rules):
            return ValueProblem(VALIDATION_FAILED, RULE_LENGTH,
                                f"must be {rules.min_length} to {effective_max_length(rules)} characters")
        if rules.pattern and re.fullmatch(rules.pattern, raw) is None:
            return ValueProblem(VALIDATION_FAILED, RULE_PATTERN, f"must match the pattern {rules.pattern}")
    elif definition.value_type in (ValueType.INT, ValueType.DECIMAL):
        return _check_number(definition, raw, rules)
    elif definition.value_type is ValueType.DATE:
        assert isinstance(raw, date)
        if (rules.min_date and raw < rules.min_date) or (rules.max_date and raw > rules.max_date):
            return ValueProblem(VALIDATION_FAILED, RULE_DATE_RANGE,
                                bounds_rule(rules.min_date, rules.max_date))
        if rules.not_in_future and raw > today:
            return ValueProblem(VALIDATION_FAILED, RULE_NOT_IN_FUTURE, "must not be in the future")
    elif definition.value_type is ValueType.ENUM:
        allowed = [a.value for a in rules.allowed_values]
        if raw not in allowed:
            shown = ", ".join(allowed[:20]) + (", ..." if len(allowed) > 20 else "")
            return ValueProblem(VALIDATION_FAILED, RULE_ALLOWED_VALUES, f"must be one of {shown}")
    return None


def _check_number(definition: AttributeDefinition, raw: int | object, rules: Validation) -> ValueProblem | None:
    from decimal import Decimal

    number = Decimal(raw) if isinstance(raw, int) else raw
    assert isinstance(number, Decimal)
    if not number.is_finite():
        return ValueProblem(TYPE_MISMATCH, "", "must be a finite decimal number")
    if definition.value_type is ValueType.INT and not _INT64[0] <= number <= _INT64[1]:
        return ValueProblem(TYPE_MISMATCH, "", "must fit a signed 64-bit integer")
    if (rules.min_value is not None and number < rules.min_value) or (
            rules.max_value is not None and number > rules.max_value):
        return ValueProblem(VALIDATION_FAILED, RULE_RANGE, bounds_rule(rules.min_value, rules.max_value))
    exponent = number.as_tuple().exponent
    fraction_digits = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if rules.max_fraction_digits and fraction_digits > rules.max_fraction_digits:
        return ValueProblem(VALIDATION_FAILED, RULE_FRACTION_DIGITS,
                            f"must have at most {rules.max_fraction_digits} digits after the decimal point")
    return None


def check_values(
    values: Mapping[str, AttributeValue], definitions: Mapping[str, AttributeDefinition], *, today: date,
    prefix: str = "customer.",
) -> list[tuple[FieldViolation, str]]:
    """Every bad value as (violation naming `attributes["key"]`, reason), in key order."""
    found: list[tuple[FieldViolation, str]] = []
    if len(values) > MAX_VALUES_PER_CUSTOMER:
        found.append((FieldViolation(prefix + "attributes", f"must have at most {MAX_VALUES_PER_CUSTOMER} entries"),
                      VALIDATION_FAILED))
    for key in sorted(values):
        definition = definitions.get(key)
        if definition is None:
            found.append((FieldViolation(value_field(key, prefix), f"'{key}' is not a declared attribute"),
                          UNKNOWN_ATTRIBUTE))
            continue
        problem = check_value(definition, values[key], today=today)
        if problem is not None:
            found.append((FieldViolation(value_field(key, prefix), problem.description), problem.reason))
    return found


def check_removals(values: Mapping[str, AttributeValue], remove: Sequence[str],
                   definitions: Mapping[str, AttributeDefinition]) -> list[tuple[FieldViolation, str]]:
    """Problems of SetCustomerAttributes' `remove_attributes`: undeclared ids, ids also being set."""
    found: list[tuple[FieldViolation, str]] = []
    if len(remove) > MAX_VALUES_PER_CUSTOMER:
        found.append((FieldViolation("remove_attributes", f"must have at most {MAX_VALUES_PER_CUSTOMER} entries"),
                      VALIDATION_FAILED))
    for i, key in enumerate(remove):
        if key not in definitions:
            found.append((FieldViolation(f"remove_attributes[{i}]", f"'{key}' is not a declared attribute"),
                          UNKNOWN_ATTRIBUTE))
        elif key in values:
            found.append((FieldViolation(f"remove_attributes[{i}]", f"'{key}' is also set in attributes"),
                          VALIDATION_FAILED))
    return found


def raise_if_invalid(core: Violations, attribute_problems: Sequence[tuple[FieldViolation, str]]) -> None:
    """One INVALID_ARGUMENT naming every bad field; its reason is the attribute problem's when
    attribute values are all that is wrong (the contract's UNKNOWN_ATTRIBUTE and friends)."""
    core_items: tuple[FieldViolation, ...] = ()
    try:
        core.raise_if_any()
    except InvalidArgument as error:
        core_items = error.violations
    if not core_items and not attribute_problems:
        return
    reason = attribute_problems[0][1] if attribute_problems and not core_items else "INVALID_ARGUMENT"
    raise InvalidArgument([*core_items, *(violation for violation, _ in attribute_problems)], reason=reason)


def mark_personal(values: Mapping[str, AttributeValue],
                  definitions: Mapping[str, AttributeDefinition]) -> dict[str, AttributeValue]:
    """The values with `personal` set from their definitions (whether the vault seals them)."""
    return {key: dataclasses.replace(value, personal=definitions[key].encrypted) for key, value in values.items()}
