"""The customer as the service's code sees it: plain values, personal data in clear.

Only `vault.py` turns these into stored (encrypted) rows and back; only `api/` turns them
into protos and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import IntEnum
from typing import Any

from crm_profile.attributes.model import AttributeValue


class CustomerState(IntEnum):
    """Live, merged into another (`merged_into`), erased."""
    UNSPECIFIED = 0
    ACTIVE = 1
    MERGED = 2
    ERASED = 3


class CustomerType(IntEnum):
    UNSPECIFIED = 0
    INDIVIDUAL = 1
    ORGANISATION = 2


class Gender(IntEnum):
    UNSPECIFIED = 0
    FEMALE = 1
    MALE = 2
    OTHER = 3


class IdDocumentType(IntEnum):
    UNSPECIFIED = 0
    NATIONAL_ID = 1
    PASSPORT = 2
    RESIDENCE_PERMIT = 3
    BUSINESS_REGISTRATION = 4


class KycStatus(IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    VERIFIED = 2
    EXPIRED = 3
    REJECTED = 4


class RiskTolerance(IntEnum):
    UNSPECIFIED = 0
    CONSERVATIVE = 1
    MODERATELY_CONSERVATIVE = 2
    BALANCED = 3
    MODERATELY_AGGRESSIVE = 4
    AGGRESSIVE = 5


ACTIVE, MERGED, ERASED = CustomerState.ACTIVE, CustomerState.MERGED, CustomerState.ERASED

# Field path -> the enum it holds and the prefix of that enum's names in the contract, so history
# shows `GENDER_MALE` rather than `2` and an import file may say `MALE` or `GENDER_MALE`.
ENUM_FIELDS: dict[str, tuple[type[IntEnum], str]] = {
    "customer_type": (CustomerType, "CUSTOMER_TYPE_"), "gender": (Gender, "GENDER_"),
    "id_document.type": (IdDocumentType, "ID_DOCUMENT_TYPE_"), "kyc_status": (KycStatus, "KYC_STATUS_"),
    "risk_tolerance": (RiskTolerance, "RISK_TOLERANCE_"),
}

# Fields holding personal data: encrypted at rest, masked by role on the way out.
PERSONAL_FIELDS = ("full_name", "id_number", "mobile_phone", "email", "address")


@dataclass(frozen=True, order=True)
class ExternalId:
    """The customer's identifier in another system of the bank (clear: not a personal value)."""

    source_system: str
    id: str


@dataclass
class Customer:
    customer_id: str
    customer_type: int
    full_name: str
    birth_date: date | None = None
    gender: int = 0
    nationality: str = ""
    id_type: int = 0
    id_number: str = ""
    id_issuing_country: str = ""
    id_expires_on: date | None = None
    mobile_phone: str = ""
    email: str = ""
    # google.type.PostalAddress as a dict of its proto JSON form; empty when unknown.
    address: dict[str, Any] = field(default_factory=dict)
    occupation: str = ""
    kyc_status: int = 0
    risk_tolerance: int = 0
    relationship_manager_id: str = ""
    branch_id: str = ""
    onboarded_on: date | None = None
    closed_on: date | None = None
    preferred_language: str = ""
    # Custom attribute values by attribute id, and identifiers in other systems of the bank
    # (stored beside the customer row: attributes/tables.py, customer_external_id).
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    external_ids: tuple[ExternalId, ...] = ()
    # The system that created the customer; `crm` for API calls.
    source_system: str = ""
    # Set by identity resolution (MergeCustomers / UnmergeCustomers); `merged_into` is the
    # survivor's resource name while `state` is MERGED.
    state: int = ACTIVE
    merged_into: str = ""
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}"

    @property
    def etag(self) -> str:
        return str(self.version)

    def replace(self, **changes: Any) -> Customer:
        """A copy with `changes` applied: `dataclasses.replace(self, **changes)` without its
        generic machinery (it rebuilds the whole record through `__init__`, field by field), which
        cost a bulk import more than validating the row. Shallow, like `dataclasses.replace`."""
        if not _CUSTOMER_FIELDS.issuperset(changes):
            raise TypeError(f"Customer has no field {', '.join(sorted(changes.keys() - _CUSTOMER_FIELDS))}")
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__, **changes)
        return copy


_CUSTOMER_FIELDS = frozenset(f.name for f in fields(Customer))


@dataclass(frozen=True)
class CustomerView:
    """A customer as one caller may see it: `masked_fields` lists what was masked or left out,
    `clear_fields` the protected values shown in clear (what a read's audit record names)."""

    customer: Customer
    masked_fields: tuple[str, ...] = ()
    clear_fields: tuple[str, ...] = ()
    # The birth year alone, when the date is masked (`customer.birth_date` is then None).
    birth_year: int = 0
