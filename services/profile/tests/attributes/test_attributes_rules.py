"""The attribute catalogue's pure rules: no database, no server."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm.profile.v1 import customer_pb2
from crm_profile.attributes import rules
from crm_profile.attributes.model import (
    AllowedValue,
    AttributeDefinition,
    AttributeValue,
    DataClass,
    Validation,
    ValueType,
)
from crmkit.errors import FailedPrecondition, InvalidArgument

TODAY = date(2026, 11, 23)


def definition(value_type: ValueType = ValueType.INT, **validation: object) -> AttributeDefinition:
    return AttributeDefinition(attribute_id="score", display_name="Score", value_type=value_type,
                               data_class=DataClass.FINANCIAL, source_system="crm",
                               validation=Validation(**validation))  # type: ignore[arg-type]


def test_core_field_names_are_the_customer_message_fields() -> None:
    assert {f.name for f in customer_pb2.Customer.DESCRIPTOR.fields} == rules.CORE_FIELD_NAMES


@pytest.mark.parametrize(
    ("value_type", "validation", "value", "rule"),
    [
        (ValueType.INT, {"min_value": Decimal(300), "max_value": Decimal(850)}, 299, "RANGE"),
        (ValueType.INT, {"min_value": Decimal(300), "max_value": Decimal(850)}, 850, None),
        (ValueType.DECIMAL, {"max_fraction_digits": 2}, Decimal("1.005"), "FRACTION_DIGITS"),
        (ValueType.DECIMAL, {"max_fraction_digits": 2}, Decimal("1.05"), None),
        (ValueType.STRING, {"pattern": r"[A-Z]{2}\d{4}"}, "AB12345", "PATTERN"),
        (ValueType.STRING, {"min_length": 2, "max_length": 3}, "abcd", "LENGTH"),
        (ValueType.STRING, {}, "x" * 1025, "LENGTH"),
        (ValueType.DATE, {"not_in_future": True}, TODAY + timedelta(days=1), "DATE_NOT_IN_FUTURE"),
        (ValueType.DATE, {"min_date": date(2000, 1, 1)}, date(1999, 12, 31), "DATE_RANGE"),
        (ValueType.ENUM, {"allowed_values": (AllowedValue("A"),)}, "B", "ALLOWED_VALUES"),
        (ValueType.ENUM, {"allowed_values": (AllowedValue("A"),)}, "A", None),
        (ValueType.BOOL, {}, False, None),
    ],
)
def test_check_value_names_the_broken_rule(value_type, validation, value, rule) -> None:  # type: ignore[no-untyped-def]
    problem = rules.check_value(definition(value_type, **validation), AttributeValue(value_type, value), today=TODAY)
    assert (problem.rule if problem else None) == rule
    if problem:
        assert problem.reason == rules.VALIDATION_FAILED


def test_a_value_of_another_type_is_a_type_mismatch() -> None:
    problem = rules.check_value(definition(), AttributeValue(ValueType.STRING, "720"), today=TODAY)
    assert problem is not None and problem.reason == rules.TYPE_MISMATCH
    assert "int_value" in problem.description


def test_check_values_names_unknown_keys_with_the_contract_path() -> None:
    found = rules.check_values({"nope": AttributeValue(ValueType.INT, 1)}, {}, today=TODAY)
    assert [(v.field, reason) for v, reason in found] == [('customer.attributes["nope"]', "UNKNOWN_ATTRIBUTE")]


def test_the_reason_is_the_attribute_problem_only_when_nothing_else_is_wrong() -> None:
    from crmkit.validation import Violations

    problems = rules.check_values({"nope": AttributeValue(ValueType.INT, 1)}, {}, today=TODAY)
    with pytest.raises(InvalidArgument) as alone:
        rules.raise_if_invalid(Violations(), problems)
    assert alone.value.reason == "UNKNOWN_ATTRIBUTE"
    core = Violations()
    core.add("customer.email", "bad")
    with pytest.raises(InvalidArgument) as mixed:
        rules.raise_if_invalid(core, problems)
    assert mixed.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in mixed.value.violations] == ["customer.email", 'customer.attributes["nope"]']


def test_definition_validation_names_members_that_do_not_suit_the_type() -> None:
    bad = definition(ValueType.BOOL, pattern="x", min_value=Decimal(1))
    fields = {v.field for v in _violations(bad)}
    assert {"attribute_definition.validation.pattern", "attribute_definition.validation.min_value"} <= fields


def test_int_bounds_must_be_whole_numbers_and_ordered() -> None:
    fields = {v.field for v in _violations(definition(min_value=Decimal("1.5"), max_value=Decimal(0)))}
    assert {"attribute_definition.validation.min_value", "attribute_definition.validation.max_value"} <= fields


def test_enum_values_must_be_distinct() -> None:
    bad = definition(ValueType.ENUM, allowed_values=(AllowedValue("A"), AllowedValue("A")))
    assert "attribute_definition.validation.allowed_values[1].value" in {v.field for v in _violations(bad)}


def test_changes_that_strand_values_are_refused_only_while_values_exist() -> None:
    current = definition(ValueType.ENUM, allowed_values=(AllowedValue("A"), AllowedValue("B")))
    narrower = definition(ValueType.ENUM, allowed_values=(AllowedValue("A"),))
    with pytest.raises(FailedPrecondition):
        rules.check_change_allowed(current, narrower, values_held=3, held_enum_values=["B"])
    rules.check_change_allowed(current, narrower, values_held=3, held_enum_values=["A"])
    rules.check_change_allowed(current, definition(ValueType.STRING), values_held=0, held_enum_values=[])
    sealed = definition(ValueType.ENUM, allowed_values=current.validation.allowed_values)
    sealed.data_class = DataClass.CONTACT
    with pytest.raises(FailedPrecondition):
        rules.check_change_allowed(current, sealed, values_held=1, held_enum_values=["A"])


def test_canonical_text_of_values() -> None:
    assert AttributeValue(ValueType.DECIMAL, Decimal("1E+3")).canonical() == "1000"
    assert AttributeValue(ValueType.BOOL, True).canonical() == "true"
    assert AttributeValue(ValueType.DATE, date(2020, 1, 2)).canonical() == "2020-01-02"
    assert AttributeValue(ValueType.INT, 5, personal=True) == AttributeValue(ValueType.INT, 5)


def _violations(bad: AttributeDefinition):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as error:
        rules.validate_definition(bad).raise_if_any()
    return error.value.violations


@pytest.mark.parametrize(("value_type", "validation", "value", "description"), [
    (ValueType.INT, {"min_value": Decimal(0)}, -1, "must be at least 0"),
    (ValueType.INT, {"max_value": Decimal(850)}, 851, "must be at most 850"),
    (ValueType.INT, {"min_value": Decimal(300), "max_value": Decimal(850)}, 299, "must be between 300 and 850"),
    (ValueType.DATE, {"min_date": date(2000, 1, 1)}, date(1999, 12, 31), "must be at least 2000-01-01"),
    (ValueType.STRING, {}, "gold\x00", "must not contain control characters"),
])
def test_a_broken_rule_is_described_without_bounds_that_do_not_exist(  # type: ignore[no-untyped-def]
        value_type, validation, value, description) -> None:
    problem = rules.check_value(definition(value_type, **validation), AttributeValue(value_type, value), today=TODAY)
    assert problem is not None and problem.description == description
