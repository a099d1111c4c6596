"""Pure decisions about relationships: valid links, the mirror of a link, what a merge does with
the merged-away customer's links. No I/O here."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from crm_profile.customers.model import CustomerType
from crm_profile.relationships.model import (
    COMPANY_OWNER,
    GUARANTOR,
    HOUSEHOLD_MEMBER,
    MIRROR_TYPE,
    OWNED_COMPANY,
    SPOUSE,
    Relationship,
    RelationshipType,
)
from crmkit.errors import FailedPrecondition
from crmkit.resources import ResourceName
from crmkit.validation import Violations

SOURCE_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
HOLDING = ResourceName("customers/{customer_id}/holdings/{holding_id}")
TYPES = frozenset(RelationshipType) - {RelationshipType.UNSPECIFIED}
OWNERSHIP_TYPES = frozenset({COMPANY_OWNER, OWNED_COMPANY})
HUNDRED = Decimal(100)

INDIVIDUAL, ORGANISATION = CustomerType.INDIVIDUAL, CustomerType.ORGANISATION


def validate(relationship: Relationship, *, today: date, prefix: str = "relationship.") -> Violations:
    v = Violations()
    v.check(relationship.related_customer_id != relationship.customer_id, f"{prefix}related_customer",
            "must be another customer than the parent")
    v.enum(relationship.type, f"{prefix}type", TYPES, "RelationshipType",
           required="is required: a known RelationshipType")
    percent = relationship.ownership_percent
    if relationship.type in OWNERSHIP_TYPES:
        if v.check(percent is not None, f"{prefix}ownership_percent",
                   "is required for COMPANY_OWNER and OWNED_COMPANY"):
            assert percent is not None
            v.check(percent.is_finite() and 0 < percent <= HUNDRED, f"{prefix}ownership_percent",
                    "must be greater than 0 and at most 100")
            exponent = percent.as_tuple().exponent  # a letter for NaN and infinity, refused above
            v.check(not isinstance(exponent, int) or -exponent <= 4,
                    f"{prefix}ownership_percent", "must have at most 4 fraction digits")
    else:
        v.check(percent is None, f"{prefix}ownership_percent", "is only allowed for COMPANY_OWNER and OWNED_COMPANY")
    holding = relationship.guaranteed_holding
    if holding and v.check(relationship.type == GUARANTOR, f"{prefix}guaranteed_holding",
                           "is only allowed for GUARANTOR"):
        ok = HOLDING.matches(holding) and holding.startswith(f"customers/{relationship.customer_id}/holdings/")
        v.check(ok, f"{prefix}guaranteed_holding",
                "must name a holding of the parent: customers/{customer_id}/holdings/{holding_id}")
    if relationship.start_date is not None:
        v.check(relationship.start_date <= today, f"{prefix}start_date", "must not be in the future")
    v.pattern(relationship.source_system, f"{prefix}source_system", SOURCE_SYSTEM,
              "is required: 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$, e.g. branch-counter")
    return v


def check_types(relationship_type: int, *, parent_type: int, related_type: int) -> None:
    """FAILED_PRECONDITION (`RELATIONSHIP_TYPE_MISMATCH`) when the customers cannot be so related."""
    if relationship_type in (SPOUSE, HOUSEHOLD_MEMBER):
        ok, rule = parent_type == related_type == INDIVIDUAL, "both customers must be individuals"
    elif relationship_type == COMPANY_OWNER:
        ok, rule = parent_type == ORGANISATION, "the parent must be an organisation"
    elif relationship_type == OWNED_COMPANY:
        ok, rule = related_type == ORGANISATION, "the related customer must be an organisation"
    else:
        ok, rule = True, ""
    if not ok:
        raise FailedPrecondition(f"relationship type does not suit these customers: {rule}",
                                 reason="RELATIONSHIP_TYPE_MISMATCH")


def with_mirror(relationship: Relationship, *, actor: str) -> tuple[Relationship, Relationship]:
    """The link with fresh ids, and its mirror on the related customer."""
    link_id, mirror_id = uuid.uuid4(), uuid.uuid4()
    link = dataclasses.replace(relationship, relationship_id=link_id, mirror_id=mirror_id, created_by=actor)
    mirror = dataclasses.replace(
        link, customer_id=relationship.related_customer_id, related_customer_id=relationship.customer_id,
        type=MIRROR_TYPE[relationship.type], guaranteed_holding="", relationship_id=mirror_id, mirror_id=link_id)
    return link, mirror


@dataclass(frozen=True)
class MergePlan:
    # Links of the merged-away customer that move to the survivor (their mirrors follow).
    move: tuple[Relationship, ...]
    # Links that cannot: to the survivor itself, already held by the survivor, or a second
    # spouse. They are set aside (with their mirrors) and put back by an unmerge.
    park: tuple[Relationship, ...]


def plan_merge(survivor: Sequence[Relationship], source: Sequence[Relationship], *, survivor_id: str) -> MergePlan:
    held = {(r.related_customer_id, r.type) for r in survivor}
    has_spouse = any(r.type == SPOUSE for r in survivor)
    move: list[Relationship] = []
    park: list[Relationship] = []
    for link in source:
        clash = (link.related_customer_id == survivor_id or (link.related_customer_id, link.type) in held
                 or (link.type == SPOUSE and has_spouse))
        (park if clash else move).append(link)
    return MergePlan(tuple(move), tuple(park))
