"""Attribute definition and value protos <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from google.type import decimal_pb2

from crm.profile.v1 import attribute_pb2, data_class_pb2
from crm_profile.attributes.model import (
    AllowedValue,
    AttributeDefinition,
    AttributeValue,
    DataClass,
    Validation,
    ValueType,
)
from crm_profile.attributes.rules import value_field
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import from_date, to_date, unknown_enum
from crmkit.values import duration, set_timestamps

_MEMBER_TYPES = {
    "string_value": ValueType.STRING, "int_value": ValueType.INT, "decimal_value": ValueType.DECIMAL,
    "bool_value": ValueType.BOOL, "date_value": ValueType.DATE, "enum_value": ValueType.ENUM,
}
_TYPE_MEMBERS = {kind: member for member, kind in _MEMBER_TYPES.items()}


def _decimal(value: decimal_pb2.Decimal, field: str, bad: list[FieldViolation]) -> Decimal | None:
    try:
        number = Decimal(value.value)
    except InvalidOperation:
        bad.append(FieldViolation(field, "is not a decimal number, e.g. 1200.50"))
        return None
    if not number.is_finite():
        bad.append(FieldViolation(field, "must be a finite decimal number"))
        return None
    return number


def value_to_domain(message: attribute_pb2.AttributeValue, field: str, bad: list[FieldViolation]) -> AttributeValue:
    member = message.WhichOneof("value")
    if member is None:
        return AttributeValue(ValueType.UNSPECIFIED, None)
    kind = _MEMBER_TYPES[member]
    if kind is ValueType.DECIMAL:
        return AttributeValue(kind, _decimal(message.decimal_value, field, bad))
    if kind is ValueType.DATE:
        try:
            return AttributeValue(kind, to_date(message.date_value))
        except ValueError:
            bad.append(FieldViolation(field, "is not a real calendar date"))
            return AttributeValue(kind, None)
    return AttributeValue(kind, getattr(message, member))


def values_to_domain(values: Mapping[str, attribute_pb2.AttributeValue], *, prefix: str,
                     bad: list[FieldViolation]) -> dict[str, AttributeValue]:
    return {key: value_to_domain(value, value_field(key, prefix), bad) for key, value in values.items()}


def value_to_proto(value: AttributeValue) -> attribute_pb2.AttributeValue:
    message = attribute_pb2.AttributeValue()
    if value.type is ValueType.DECIMAL:
        message.decimal_value.value = value.canonical()
    elif value.type is ValueType.DATE and isinstance(value.value, date):  # a DATE value holds a date
        message.date_value.CopyFrom(from_date(value.value))
    elif value.type in _TYPE_MEMBERS:
        setattr(message, _TYPE_MEMBERS[value.type], value.value)
    return message


def definition_to_domain(message: attribute_pb2.AttributeDefinition, *, attribute_id: str | None = None,
                         prefix: str = "attribute_definition.") -> AttributeDefinition:
    """Domain definition from a request; INVALID_ARGUMENT for values that cannot even be read."""
    bad: list[FieldViolation] = []
    rules = message.validation
    dates = {}
    for name in ("min_date", "max_date"):
        try:
            dates[name] = to_date(getattr(rules, name)) if rules.HasField(name) else None
        except ValueError:
            bad.append(FieldViolation(f"{prefix}validation.{name}", "is not a real calendar date"))
            dates[name] = None
    numbers = {name: _decimal(getattr(rules, name), f"{prefix}validation.{name}", bad) if rules.HasField(name)
               else None for name in ("min_value", "max_value")}
    max_age = None
    if message.HasField("max_age"):
        max_age = message.max_age.ToTimedelta()
        if message.max_age.nanos or message.max_age.seconds % 86400:
            bad.append(FieldViolation(f"{prefix}max_age", "must be whole days"))
    for name, enum in (("value_type", ValueType), ("data_class", DataClass)):
        number = getattr(message, name)
        if number not in enum._value2member_map_:
            bad.append(FieldViolation(prefix + name, unknown_enum(number, enum.__name__)))
    if bad:
        raise InvalidArgument(bad)
    return AttributeDefinition(
        attribute_id=attribute_id if attribute_id is not None else message.attribute_id,
        display_name=message.display_name, description=message.description,
        value_type=ValueType(message.value_type), data_class=DataClass(message.data_class),
        source_system=message.source_system, completeness_expected=message.completeness_expected, max_age=max_age,
        validation=Validation(
            pattern=rules.pattern, min_length=rules.min_length, max_length=rules.max_length,
            min_value=numbers["min_value"], max_value=numbers["max_value"],
            max_fraction_digits=rules.max_fraction_digits, min_date=dates["min_date"], max_date=dates["max_date"],
            not_in_future=rules.not_in_future,
            allowed_values=tuple(AllowedValue(a.value, a.display_name) for a in rules.allowed_values)),
    )


def definition_to_proto(definition: AttributeDefinition) -> attribute_pb2.AttributeDefinition:
    rules = definition.validation
    message = attribute_pb2.AttributeDefinition(
        name=definition.name, attribute_id=definition.attribute_id, etag=definition.etag,
        display_name=definition.display_name, description=definition.description,
        value_type=attribute_pb2.AttributeValueType.ValueType(definition.value_type),
        data_class=data_class_pb2.DataClass.ValueType(definition.data_class),
        source_system=definition.source_system, completeness_expected=definition.completeness_expected,
        validation=attribute_pb2.AttributeValidation(
            pattern=rules.pattern, min_length=rules.min_length, max_length=rules.max_length,
            max_fraction_digits=rules.max_fraction_digits, not_in_future=rules.not_in_future,
            allowed_values=[attribute_pb2.AllowedValue(value=a.value, display_name=a.display_name or a.value)
                            for a in rules.allowed_values]),
    )
    for name in ("min_value", "max_value"):
        if getattr(rules, name) is not None:
            getattr(message.validation, name).value = format(getattr(rules, name), "f")
    for name in ("min_date", "max_date"):
        if getattr(rules, name) is not None:
            getattr(message.validation, name).CopyFrom(from_date(getattr(rules, name)))
    if definition.max_age is not None:
        message.max_age.CopyFrom(duration(definition.max_age))
    set_timestamps(message, create_time=definition.created_at, update_time=definition.updated_at)
    return message
