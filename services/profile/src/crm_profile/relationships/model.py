"""A link between two customers, as the service's code sees it (types are the proto numbers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum


class RelationshipType(IntEnum):
    UNSPECIFIED = 0
    SPOUSE = 1
    HOUSEHOLD_MEMBER = 2
    GUARANTOR = 3
    GUARANTEED_PARTY = 4
    COMPANY_OWNER = 5
    OWNED_COMPANY = 6


SPOUSE, HOUSEHOLD_MEMBER, GUARANTOR, GUARANTEED_PARTY, COMPANY_OWNER, OWNED_COMPANY = (
    RelationshipType.SPOUSE, RelationshipType.HOUSEHOLD_MEMBER, RelationshipType.GUARANTOR,
    RelationshipType.GUARANTEED_PARTY, RelationshipType.COMPANY_OWNER, RelationshipType.OWNED_COMPANY)
MIRROR_TYPE: dict[int, RelationshipType] = {
    SPOUSE: SPOUSE, HOUSEHOLD_MEMBER: HOUSEHOLD_MEMBER, GUARANTOR: GUARANTEED_PARTY,
    GUARANTEED_PARTY: GUARANTOR, COMPANY_OWNER: OWNED_COMPANY, OWNED_COMPANY: COMPANY_OWNER}


@dataclass(frozen=True)
class Relationship:
    """What `related_customer_id` is to `customer_id`."""

    customer_id: str
    related_customer_id: str
    type: int
    ownership_percent: Decimal | None = None
    guaranteed_holding: str = ""
    start_date: date | None = None
    source_system: str = ""
    relationship_id: uuid.UUID | None = None
    mirror_id: uuid.UUID | None = None
    created_by: str = ""
    created_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/relationships/{self.relationship_id}"

    @property
    def etag(self) -> str:
        """A link never changes once created, so its creation instant tags it: a delete carrying
        another link's tag (or a tag read before a delete and re-link) cannot remove this one."""
        return f"{self.created_at.timestamp():.6f}" if self.created_at else ""

    @property
    def mirror_name(self) -> str:
        return f"customers/{self.related_customer_id}/relationships/{self.mirror_id}"

    @property
    def related_customer(self) -> str:
        return f"customers/{self.related_customer_id}"
