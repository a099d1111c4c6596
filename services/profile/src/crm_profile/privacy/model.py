"""Privacy as the service's code sees it: plain values (enum numbers are the contract's).

`api/privacy_messages.py` turns these into protos and back; the repositories into rows and back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import IntEnum

from crm_profile.attributes.model import DataClass
from crm_profile.consents.model import ConsentRecord, ContactPreferences
from crm_profile.customers.model import Customer
from crm_profile.events.model import Event
from crm_profile.features.model import CustomerFeatures
from crm_profile.history.repository import StoredChange
from crm_profile.holdings.model import Holding
from crm_profile.relationships.model import Relationship


class ErasureOutcome(IntEnum):
    ERASED = 1
    ANONYMISED = 2
    RESTRICTED = 3


class RetentionAnchor(IntEnum):
    RECORD_TIME = 1
    RELATIONSHIP_END = 2


class RetentionAction(IntEnum):
    DELETE = 1
    ANONYMISE = 2


class KeyPurpose(IntEnum):
    FIELD_ENCRYPTION = 1
    BLIND_INDEX = 2


class ChainFailure(IntEnum):
    NONE = 0
    HASH_MISMATCH = 1
    LINK_MISMATCH = 2
    SEQUENCE_GAP = 3
    ANCHOR_MISMATCH = 4


# --- retention ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPolicy:
    data_class: DataClass
    retention: timedelta
    anchor: RetentionAnchor
    action: RetentionAction
    overrides_erasure: bool = False
    legal_basis: str = ""
    # The legal floor from the service's configuration (not stored with the policy).
    minimum: timedelta = timedelta(0)
    version: int = 0
    updated_at: datetime | None = None
    last_purge_at: datetime | None = None

    @property
    def slug(self) -> str:
        """`special-category` for DATA_CLASS_SPECIAL_CATEGORY: the id in the resource name."""
        return self.data_class.name.lower().replace("_", "-")

    @property
    def name(self) -> str:
        return f"retentionPolicies/{self.slug}"

    @property
    def etag(self) -> str:
        return str(self.version)

    @property
    def effective_retention(self) -> timedelta:
        """What the purge applies: never less than the legal floor, whatever the policy says."""
        return max(self.retention, self.minimum)


@dataclass(frozen=True)
class PolicyChanges:
    """The values an UpdateRetentionPolicy request carries (only those in its mask are used)."""

    retention: timedelta | None = None
    anchor: int = 0
    action: int = 0
    overrides_erasure: bool = False
    legal_basis: str = ""


@dataclass(frozen=True)
class PurgeClassResult:
    data_class: DataClass
    cutoff: datetime
    deleted: int = 0
    anonymised: int = 0


@dataclass(frozen=True)
class PurgeResult:
    classes: tuple[PurgeClassResult, ...]
    validate_only: bool


# --- erasure ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasedClass:
    data_class: DataClass
    outcome: ErasureOutcome
    record_count: int
    restricted_until: datetime | None = None


@dataclass(frozen=True)
class ErasureReport:
    customer_id: str
    erase_time: datetime | None  # None for validate_only
    classes: tuple[ErasedClass, ...]

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}"


@dataclass(frozen=True)
class ErasureSpec:
    """What one pass of the erasure path does to a customer (and those merged into it)."""

    # Classes whose values and records are removed (customer classes, CONSENT; FINANCIAL also
    # deletes the holdings).
    erase: frozenset[DataClass]
    # Event classes whose events lose their free-form properties / are deleted.
    anonymise_events: frozenset[DataClass] = frozenset()
    delete_events: frozenset[DataClass] = frozenset()
    # EraseCustomer: the record becomes an ERASED tombstone and earlier feed payloads are emptied.
    tombstone: bool = False


@dataclass
class Inventory:
    """What a customer (with the customers merged into it) holds, counted per data class, and the
    newest record times that decide how long restricted records stay."""

    counts: dict[DataClass, int] = field(default_factory=dict)
    newest: dict[DataClass, datetime] = field(default_factory=dict)
    closed_on: date | None = None

    def add(self, data_class: DataClass, count: int, newest: datetime | None = None) -> None:
        if count:
            self.counts[data_class] = self.counts.get(data_class, 0) + count
        if newest is not None and (data_class not in self.newest or newest > self.newest[data_class]):
            self.newest[data_class] = newest


# --- export -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportManifest:
    export_id: uuid.UUID
    customer_id: str
    snapshot_time: datetime
    data_classes: tuple[DataClass, ...]


@dataclass
class ExportPart:
    """One message of an export: the first carries the manifest and the single records, later
    ones a section of at most `rules.EXPORT_SECTION_ITEMS` items."""

    manifest: ExportManifest | None = None
    customer: Customer | None = None
    preferences: ContactPreferences | None = None
    features: CustomerFeatures | None = None
    holdings: list[Holding] = field(default_factory=list)
    consent_records: list[ConsentRecord] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    field_changes: list[StoredChange] = field(default_factory=list)
    access_records: list[AuditRow] = field(default_factory=list)


# --- audit log ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    """One stored audit record (the kit's `audit_record` row)."""

    seq: int
    chain_id: str
    recorded_at: datetime
    principal: str
    action: str
    resource_name: str
    purpose: str
    justification: str
    trace_id: str
    prev_hash: bytes
    hash: bytes
    actor_roles: tuple[str, ...] = ()
    method: str = ""
    fields: tuple[str, ...] = ()
    outcome: str = "ALLOWED"
    hash_recipe: int = 1


@dataclass(frozen=True)
class AuditFilter:
    customer_id: str = ""
    actor: str = ""
    purpose: str = ""  # AccessPurpose name without its prefix, e.g. `AUDIT`; "" for all
    actions: tuple[int, ...] = ()  # AuditAction numbers
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRow]
    next_page_token: str


@dataclass(frozen=True)
class ChainCheck:
    valid: bool
    start_sequence: int
    end_sequence: int
    end_hash: bytes
    first_invalid_sequence: int = 0
    failure: ChainFailure = ChainFailure.NONE


# --- key rotation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationResult:
    rewritten: int
    retired_key_ids: tuple[str, ...]
