"""Pydantic models derived from proto descriptors: the JSON shape of a contract message.

The gateway speaks the proto3 JSON mapping with the proto field names (`full_name`, enum
values by name, 64-bit integers as strings), exactly what `json_format.MessageToDict(...,
preserving_proto_field_name=True)` writes. Deriving the models from the descriptors keeps the
OpenAPI document and the request validation in step with `protos/` without a hand-kept copy:
a request body is checked for shape here (unknown fields, wrong JSON types, unknown enum values,
each named by its path); a request body's model adds the service's requirements that a JSON
Schema can state (input_rules.py), and the owning service checks the rest.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    create_model,
    model_validator,
)

from crm_gateway.input_rules import DEPENDENT_RULES, INPUT_RULES, FieldRule

_INT32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
_UINT32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
# proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision past 2**53);
# a number is accepted too. One type, not a union, so that an error names the field once.
_INT64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1), WithJsonSchema(
    {"type": "string", "format": "int64", "description": "64-bit integer, written as a string"})]
_UINT64 = Annotated[int, Field(ge=0, le=2**64 - 1), WithJsonSchema(
    {"type": "string", "format": "uint64", "description": "64-bit unsigned integer, written as a string"})]

_SCALARS: dict[int, Any] = {
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_BYTES: Annotated[str, Field(description="base64")],
    FieldDescriptor.TYPE_BOOL: StrictBool,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}

# Well-known types have their own JSON forms.
_WELL_KNOWN: dict[str, Any] = {
    "google.protobuf.Timestamp": AwareDatetime,
    "google.protobuf.Duration": Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]{1,9})?s$", examples=["3.5s"])],
    "google.protobuf.FieldMask": Annotated[str, Field(examples=["full_name,mobile_phone"])],
    "google.protobuf.Struct": dict[str, Any],
    "google.protobuf.Value": Any,
    "google.protobuf.ListValue": list[Any],
    "google.protobuf.Empty": dict[str, Any],
    "google.protobuf.Any": dict[str, Any],
    "google.protobuf.StringValue": str,
    "google.protobuf.BytesValue": str,
    "google.protobuf.BoolValue": StrictBool,
    "google.protobuf.DoubleValue": float,
    "google.protobuf.FloatValue": float,
    "google.protobuf.Int32Value": _INT32,
    "google.protobuf.UInt32Value": _UINT32,
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
}

_BUILDING: set[tuple[str, bool]] = set()


@cache
def proto_model(descriptor: Descriptor, *, for_input: bool = False) -> type[BaseModel]:
    """The model of one message; named after its full proto name (`crm.profile.v1.Customer`).

    `for_input`: the model of a request body (`CustomerInput`), which adds what the owning
    service requires (input_rules.py) to the shape, in the document and in validation alike.
    """
    _BUILDING.add((descriptor.full_name, for_input))
    try:
        rules = INPUT_RULES.get(descriptor.full_name, {}) if for_input else {}
        fields: dict[str, Any] = {
            field.name: _field(field, rules.get(field.name), for_input=for_input) for field in descriptor.fields
        }
        validators: dict[str, Any] = {}
        oneofs = [tuple(f.name for f in oneof.fields) for oneof in descriptor.oneofs if len(oneof.fields) > 1]
        if oneofs:
            validators["_at_most_one_of_each_oneof"] = model_validator(mode="after")(_oneof_check(oneofs))
        dependent = DEPENDENT_RULES.get(descriptor.full_name) if for_input else None
        extra_schema: dict[str, Any] = {}
        if dependent is not None:
            validators["_dependent_field"] = model_validator(mode="after")(_dependent_check(*dependent))
            given, then, refused = dependent
            extra_schema["dependentSchemas"] = {given: {
                "required": [then], "properties": {then: {"type": "string", "not": {"enum": sorted(refused)}}}}}
        return create_model(
            descriptor.full_name + ("Input" if for_input else ""),
            __config__=ConfigDict(extra="forbid", json_schema_extra=extra_schema or None),
            __doc__=f"`{descriptor.full_name}` in the proto3 JSON mapping, with proto field names"
                    + (", as the service accepts it in a request." if for_input else "."),
            __validators__=validators,
            **fields,
        )
    finally:
        _BUILDING.discard((descriptor.full_name, for_input))


def _field(field: FieldDescriptor, rule: FieldRule | None, *, for_input: bool) -> tuple[Any, Any]:
    """(annotation, default): optional and nullable (null is proto3 JSON for "not given") unless
    a rule requires the field, which then may be neither left out nor null."""
    annotation = _annotation(field, for_input=for_input, rule=rule)
    if rule is not None and rule.constraints:
        annotation = Annotated[annotation, Field(**rule.constraints)]
    if rule is not None and rule.required:
        return annotation, ...
    return annotation | None, None


def to_json(model: BaseModel) -> dict[str, Any]:
    """What `json_format.ParseDict` reads back into the message."""
    return model.model_dump(mode="json", exclude_none=True)


def _annotation(field: FieldDescriptor, *, for_input: bool = False, rule: FieldRule | None = None) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = _single(field.message_type.fields_by_name["value"], for_input=for_input)
        return dict[str, value]  # type: ignore[valid-type]  # a model built at run time from the proto descriptor
    single = _single(field, for_input=for_input, refused=rule.refused if rule else frozenset())
    if rule is not None and rule.item_constraints:
        single = Annotated[single, Field(**rule.item_constraints)]
    return list[single] if field.is_repeated else single  # type: ignore[valid-type]  # a model built at run time from the proto descriptor


def _single(field: FieldDescriptor, *, for_input: bool = False, refused: frozenset[str] = frozenset()) -> Any:
    if field.enum_type is not None:
        return Literal[tuple(value.name for value in field.enum_type.values if value.name not in refused)]
    if field.message_type is None:
        return _SCALARS[field.type]
    name = field.message_type.full_name
    if name in _WELL_KNOWN:
        return _WELL_KNOWN[name]
    if (name, for_input) in _BUILDING:  # a recursive message: documented as an object, checked by the service
        return dict[str, Any]
    return proto_model(field.message_type, for_input=for_input)


def _dependent_check(given: str, then: str, refused: frozenset[str]) -> Any:
    def dependent_field(model: BaseModel) -> BaseModel:
        if getattr(model, given) is not None and getattr(model, then) in (None, *refused):
            raise ValueError(f"{then} is required when {given} is given")
        return model

    return dependent_field


def _oneof_check(oneofs: list[tuple[str, ...]]) -> Any:
    def at_most_one_of_each_oneof(model: BaseModel) -> BaseModel:
        for members in oneofs:
            given = [name for name in members if getattr(model, name) is not None]
            if len(given) > 1:
                raise ValueError(f"at most one of {', '.join(members)} may be set")
        return model

    return at_most_one_of_each_oneof
