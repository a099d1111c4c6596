"""What the read model receives from profile's change feed, as plain values: no protos.

Each change names the customer it is about and carries its feed position (`position`, an integer
ordered as the feed is, see `rules.position_key`) and the time profile wrote it (`occurred_at`).
Enums keep profile's contract numbers; `rules` names them for the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class Stamp:
    """Where a change sits in profile's feed and when profile wrote it."""

    customer_id: str
    position: int
    occurred_at: datetime


@dataclass(frozen=True)
class CustomerRecord:
    """A customer as a service reader sees it: personal data masked, the birth date a year."""

    stamp: Stamp
    removed: bool
    customer_type: int = 0
    birth_year: int | None = None
    gender: int = 0
    nationality: str = ""
    kyc_status: int = 0
    risk_tolerance: int = 0
    relationship_manager_id: str = ""
    branch_id: str = ""
    onboarded_on: date | None = None
    closed_on: date | None = None


@dataclass(frozen=True)
class DerivedFeatures:
    """Profile's derived features; `None` for a deletion (the customer has none any more)."""

    stamp: Stamp
    values: dict[str, object] | None


@dataclass(frozen=True)
class HoldingRecord:
    stamp: Stamp
    holding_id: str
    product_type: int = 0
    open: bool = False
    maturity_on: date | None = None


@dataclass(frozen=True)
class ConsentDecision:
    """One recorded marketing decision for one channel (other purposes are not kept)."""

    stamp: Stamp
    channel: int
    opted_in: bool
    effective_at: datetime
    expire_at: datetime | None


@dataclass(frozen=True)
class ContactPreferences:
    stamp: Stamp
    do_not_contact: bool
    do_not_contact_until: date | None


@dataclass(frozen=True)
class TransactionRecord:
    """One customer-initiated transaction from profile's event feed: its UTC day and amount (as
    sent, in the holding's currency)."""

    stamp: Stamp
    day: date
    amount: Decimal


Change = CustomerRecord | DerivedFeatures | HoldingRecord | ConsentDecision | ContactPreferences | TransactionRecord


@dataclass(frozen=True)
class ReadModelStatus:
    """How current the model is: what health details and the lag metric report."""

    newest_event_at: datetime | None
    lag_seconds: float | None
    needs_rebuild: bool
    customer_count: int

