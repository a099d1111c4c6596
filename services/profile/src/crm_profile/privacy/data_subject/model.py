"""The data subject's requests as the service's code sees them: an erasure's plan and report, an
export's parts; plain values (enum numbers are the contract's).

`api/privacy_messages.py` turns these into protos and back; the repository into rows and back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum

from crm_profile.attributes.model import DataClass
from crm_profile.consents.model import ConsentRecord, ContactPreferences
from crm_profile.customers.model import Customer
from crm_profile.events.model import Event
from crm_profile.features.model import CustomerFeatures
from crm_profile.history.repository import StoredChange
from crm_profile.holdings.model import Holding
from crm_profile.privacy.audit_log.model import AuditRow
from crm_profile.relationships.model import Relationship


class ErasureOutcome(IntEnum):
    UNSPECIFIED = 0
    ERASED = 1
    ANONYMISED = 2
    RESTRICTED = 3


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
