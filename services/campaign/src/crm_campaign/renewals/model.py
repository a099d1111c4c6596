"""Renewal tracking: one renewal per maturity of a deposit or investment holding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum


class RenewalState(IntEnum):
    """RenewalState's numbers."""

    UNSPECIFIED = 0
    UPCOMING = 1
    CONTACTED = 2
    RENEWED = 3
    PARTIALLY_RENEWED = 4
    LAPSED = 5


@dataclass(frozen=True)
class Renewal:
    renewal_id: str
    customer_id: str
    holding_id: str
    product_code: str
    currency: str
    maturity_date: date
    maturing_amount: Decimal
    state: RenewalState
    renewed_amount: Decimal | None
    renewed_product_code: str
    relationship_manager_id: str
    last_contact_at: datetime | None
    decide_date: date | None
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return f"renewals/{self.renewal_id}"


@dataclass(frozen=True)
class RenewalFilter:
    customer_id: str = ""
    relationship_manager_id: str = ""
    states: tuple[RenewalState, ...] = ()
    product_code: str = ""
    maturity_from: date | None = None
    maturity_to: date | None = None


@dataclass(frozen=True)
class RenewalSummary:
    count: int
    state_counts: tuple[tuple[RenewalState, int], ...]
    maturing_amount: Decimal
    renewed_amount: Decimal
    retention_rate: float
