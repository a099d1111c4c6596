"""Relationship protos <-> domain. Nothing else: no rules, no I/O."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation

from google.type import decimal_pb2

from crm.profile.v1 import relationship_pb2
from crm_profile.api.consent_messages import stamp
from crm_profile.relationships.model import Relationship
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import ResourceName
from crmkit.validation import from_date, to_date

CUSTOMER = ResourceName("customers/{customer_id}")
RELATIONSHIP = ResourceName("customers/{customer_id}/relationships/{relationship_id}")


def to_domain(message: relationship_pb2.Relationship, *, customer_id: str) -> Relationship:
    bad: list[FieldViolation] = []
    related = ""
    if not message.related_customer:
        bad.append(FieldViolation("relationship.related_customer", "is required: customers/{customer_id}"))
    elif not CUSTOMER.matches(message.related_customer):
        bad.append(FieldViolation("relationship.related_customer", "must be a resource name like customers/{id}"))
    else:
        related = CUSTOMER.parse_one(message.related_customer)
    percent = None
    if message.HasField("ownership_percent"):
        try:
            percent = Decimal(message.ownership_percent.value)
        except InvalidOperation:
            bad.append(FieldViolation("relationship.ownership_percent", "is not a decimal number, e.g. 25.5"))
    start = None
    try:
        start = to_date(message.start_date) if message.HasField("start_date") else None
    except ValueError:
        bad.append(FieldViolation("relationship.start_date", "is not a real calendar date"))
    if bad:
        raise InvalidArgument(bad)
    return Relationship(customer_id=customer_id, related_customer_id=related, type=message.type,
                        ownership_percent=percent, guaranteed_holding=message.guaranteed_holding,
                        start_date=start, source_system=message.source_system)


def to_proto(relationship: Relationship) -> relationship_pb2.Relationship:
    return relationship_pb2.Relationship(
        name=relationship.name, relationship_id=str(relationship.relationship_id),
        related_customer=relationship.related_customer,
        type=relationship_pb2.RelationshipType.ValueType(relationship.type),
        ownership_percent=None if relationship.ownership_percent is None
        else decimal_pb2.Decimal(value=str(relationship.ownership_percent.normalize())),
        guaranteed_holding=relationship.guaranteed_holding, start_date=from_date(relationship.start_date),
        source_system=relationship.source_system, mirror=relationship.mirror_name,
        create_time=stamp(relationship.created_at), etag=relationship.etag,
    )


def parse_name(name: str) -> tuple[str, uuid.UUID]:
    customer_id, relationship_id = RELATIONSHIP.parse(name)
    try:
        return customer_id, uuid.UUID(relationship_id)
    except ValueError:
        raise InvalidArgument([FieldViolation("name", "names no relationship: the id must be a UUID")]) from None
