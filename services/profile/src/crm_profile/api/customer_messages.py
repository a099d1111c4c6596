"""Customer proto <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from google.protobuf import json_format

from crm.profile.v1 import customer_pb2
from crm_profile.api.attribute_messages import value_to_proto, values_to_domain
from crm_profile.customers.model import Customer, CustomerView, ExternalId
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import from_date, to_date
from crmkit.values import set_timestamps


def _date(value: object, field: str, violations: list[FieldViolation]):  # type: ignore[no-untyped-def]
    try:
        return to_date(value)  # type: ignore[arg-type]
    except ValueError:
        violations.append(FieldViolation(field, "is not a real calendar date"))
        return None


def to_domain(message: customer_pb2.Customer, *, customer_id: str | None = None) -> Customer:
    """Domain customer from a request; INVALID_ARGUMENT for values that cannot even be read."""
    bad: list[FieldViolation] = []
    document = message.id_document
    customer = Customer(
        customer_id=customer_id if customer_id is not None else message.customer_id,
        customer_type=message.customer_type,
        full_name=message.full_name,
        birth_date=_date(message.birth_date, "customer.birth_date", bad),
        gender=message.gender,
        nationality=message.nationality,
        id_type=document.type,
        id_number=document.number,
        id_issuing_country=document.issuing_country,
        id_expires_on=_date(document.expires_on, "customer.id_document.expires_on", bad),
        mobile_phone=message.mobile_phone,
        email=message.email,
        address=json_format.MessageToDict(message.address) if message.HasField("address") else {},
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


def to_proto(view: CustomerView) -> customer_pb2.Customer:
    c = view.customer
    message = customer_pb2.Customer(
        name=c.name, customer_id=c.customer_id, etag=c.etag, customer_type=c.customer_type,  # type: ignore[arg-type]
        full_name=c.full_name, gender=c.gender, nationality=c.nationality,  # type: ignore[arg-type]
        mobile_phone=c.mobile_phone, email=c.email, occupation=c.occupation,
        kyc_status=c.kyc_status, risk_tolerance=c.risk_tolerance,  # type: ignore[arg-type]
        relationship_manager_id=c.relationship_manager_id, branch_id=c.branch_id,
        preferred_language=c.preferred_language, masked_fields=list(view.masked_fields),
        state=c.state, merged_into=c.merged_into,  # type: ignore[arg-type]
    )
    if c.id_number or c.id_type:
        message.id_document.type = c.id_type  # type: ignore[assignment]
        message.id_document.number = c.id_number
        message.id_document.issuing_country = c.id_issuing_country
    for field, value in (("birth_date", c.birth_date), ("onboarded_on", c.onboarded_on),
                         ("closed_on", c.closed_on)):
        if value is not None:
            getattr(message, field).CopyFrom(from_date(value))
    if c.id_expires_on is not None:
        message.id_document.expires_on.CopyFrom(from_date(c.id_expires_on))
    if c.address:
        json_format.ParseDict(c.address, message.address, ignore_unknown_fields=True)
    set_timestamps(message, create_time=c.created_at, update_time=c.updated_at)
    for key, value in c.attributes.items():
        message.attributes[key].CopyFrom(value_to_proto(value))
    message.external_ids.extend(customer_pb2.ExternalId(source_system=e.source_system, id=e.id)
                                for e in c.external_ids)
    return message


