"""Customer proto <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

from google.type import date_pb2, postal_address_pb2

from crm.profile.v1 import customer_pb2
from crm_profile.api.attribute_messages import value_to_proto, values_to_domain
from crm_profile.customers.model import Customer, CustomerView, ExternalId
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import set_date, to_date
from crmkit.values import set_timestamps


def _date(value: date_pb2.Date, field: str, violations: list[FieldViolation]) -> date | None:
    try:
        return to_date(value)
    except ValueError:
        violations.append(FieldViolation(field, "is not a real calendar date"))
        return None


def to_domain(message: customer_pb2.Customer, *, customer_id: str | None = None,
              paths: Collection[str] | None = None) -> Customer:
    """Domain customer from a request; INVALID_ARGUMENT for values that cannot even be read.
    `paths`: an update's mask. A masked birth date (the year alone) sent back in a read-modify-
    write is no date, but it is ignored unless the mask names `birth_date`."""
    bad: list[FieldViolation] = []
    document = message.id_document
    unread: list[FieldViolation] = [] if paths is not None and "birth_date" not in paths else bad
    customer = Customer(
        customer_id=customer_id if customer_id is not None else message.customer_id,
        customer_type=message.customer_type,
        full_name=message.full_name,
        birth_date=_date(message.birth_date, "customer.birth_date", unread),
        gender=message.gender,
        nationality=message.nationality,
        id_type=document.type,
        id_number=document.number,
        id_issuing_country=document.issuing_country,
        id_expires_on=_date(document.expires_on, "customer.id_document.expires_on", bad),
        mobile_phone=message.mobile_phone,
        email=message.email,
        address=_address_dict(message.address) if message.HasField("address") else {},
        occupation=message.occupation,
        kyc_status=message.kyc_status,
        risk_tolerance=message.risk_tolerance,
        relationship_manager_id=message.relationship_manager_id,
        branch_id=message.branch_id,
        onboarded_on=_date(message.onboarded_on, "customer.onboarded_on", bad),
        closed_on=_date(message.closed_on, "customer.closed_on", bad),
        preferred_language=message.preferred_language,
        attributes=values_to_domain(message.attributes, prefix="customer.", bad=bad),
        external_ids=tuple(ExternalId(e.source_system, e.id) for e in message.external_ids),
    )
    if bad:
        raise InvalidArgument(bad)
    return customer


def to_proto(view: CustomerView, message: customer_pb2.Customer | None = None) -> customer_pb2.Customer:
    """The Customer message of a view, written into `message` when given (a response's own field:
    a message passed to a constructor is copied whole). Built field by field: this runs for every
    read, and `json_format` (for the address) and message-valued constructor arguments cost more
    than the rest of the mapping together."""
    c = view.customer
    if message is None:
        message = customer_pb2.Customer()
    # Proto3 scalars without presence: assigning a default value leaves the field unset, so the
    # bytes are those of a constructor given the same values.
    message.name = c.name
    message.customer_id = c.customer_id
    message.etag = c.etag
    message.customer_type = customer_pb2.CustomerType.ValueType(c.customer_type)
    message.full_name = c.full_name
    message.gender = customer_pb2.Gender.ValueType(c.gender)
    message.nationality = c.nationality
    message.mobile_phone = c.mobile_phone
    message.email = c.email
    message.occupation = c.occupation
    message.kyc_status = customer_pb2.KycStatus.ValueType(c.kyc_status)
    message.risk_tolerance = customer_pb2.RiskTolerance.ValueType(c.risk_tolerance)
    message.relationship_manager_id = c.relationship_manager_id
    message.branch_id = c.branch_id
    message.preferred_language = c.preferred_language
    message.masked_fields.extend(view.masked_fields)
    message.state = customer_pb2.CustomerState.ValueType(c.state)
    message.merged_into = c.merged_into
    if c.id_number or c.id_type:
        document = message.id_document
        document.type = customer_pb2.IdDocumentType.ValueType(c.id_type)
        document.number = c.id_number
        document.issuing_country = c.id_issuing_country
    if c.id_expires_on is not None:
        set_date(message.id_document.expires_on, c.id_expires_on)
    if c.birth_date is not None:
        set_date(message.birth_date, c.birth_date)
    elif view.birth_year:
        message.birth_date.year = view.birth_year  # a masked birth date: the year, month and day 0
    if c.onboarded_on is not None:
        set_date(message.onboarded_on, c.onboarded_on)
    if c.closed_on is not None:
        set_date(message.closed_on, c.closed_on)
    if c.address:
        _set_address(message.address, c.address)
    set_timestamps(message, create_time=c.created_at, update_time=c.updated_at)
    for key, value in c.attributes.items():
        message.attributes[key].CopyFrom(value_to_proto(value))
    for e in c.external_ids:
        message.external_ids.add(source_system=e.source_system, id=e.id)
    return message


# PostalAddress fields by their proto JSON name (the form the domain keeps an address in, from
# `json_format.MessageToDict`) and by their field name, as `json_format.ParseDict` accepts both.
# Each maps to (field name, repeated).
_ADDRESS_FIELDS: dict[str, tuple[str, bool]] = {
    key: (f.name, f.is_repeated)
    for f in postal_address_pb2.PostalAddress.DESCRIPTOR.fields for key in (f.name, f.json_name)
}


def _address_dict(address: postal_address_pb2.PostalAddress) -> dict[str, Any]:
    """`json_format.MessageToDict(address)` for a PostalAddress (scalars and repeated strings only):
    the fields set, in field-number order, by their JSON names; a third of its CPU."""
    return {field.json_name: list(value) if field.is_repeated else value for field, value in address.ListFields()}


def _set_address(target: postal_address_pb2.PostalAddress, address: Mapping[str, Any]) -> None:
    """What `json_format.ParseDict(address, target, ignore_unknown_fields=True)` does for the scalar
    and repeated-string fields a PostalAddress has, without its generic machinery."""
    for key, value in address.items():
        field = _ADDRESS_FIELDS.get(key)
        if field is None:
            continue  # a key a newer PostalAddress may have: ignored, as ParseDict was told to
        name, repeated = field
        if repeated:
            getattr(target, name).extend(value)
        else:
            setattr(target, name, value)
