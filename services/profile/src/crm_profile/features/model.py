"""A customer's derived features as the service's code sees them: plain values, money as integer
minor units of `reporting_currency`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

# What the change feed says about a recomputed customer.
CREATED, UPDATED, DELETED = "created", "updated", "deleted"


@dataclass(frozen=True)
class CustomerFeatures:
    customer_id: str
    computed_at: datetime
    changed_at: datetime
    reporting_currency: str
    rfm_window_days: int
    last_transaction_at: datetime | None
    recency_days: int | None
    frequency: int
    monetary_minor: int
    aum_minor: int
    average_aum_90d_minor: int
    product_count: int
    product_type_count: int
    onboarded_on: date
    tenure_days: int
    last_activity_at: datetime | None
    login_count_30d: int
    visit_count_30d: int
    transaction_count_30d: int
    transaction_count_90d: int
    active_channel_count_90d: int
    days_since_last_activity: int | None
    next_maturity_date: date | None
    days_to_next_maturity: int | None
    next_maturing_holding_id: str | None
    age_years: int | None
    holdings_opened_90d: int
    holdings_closed_90d: int
    aum_change_90d_minor: int
    payroll_active: bool
    closed_on: date | None

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/features"

    @property
    def next_maturing_holding(self) -> str:
        if self.next_maturing_holding_id is None:
            return ""
        return f"customers/{self.customer_id}/holdings/{self.next_maturing_holding_id}"

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> CustomerFeatures:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Change:
    """One customer's recomputation: its features now (None once deleted) and what the feed says
    (`CREATED`, `UPDATED`, `DELETED`, or None when nothing material changed)."""

    customer_id: str
    features: CustomerFeatures | None
    published: str | None


@dataclass(frozen=True)
class RecomputeOutcome:
    """What one recomputation did: customers recomputed, and those whose change was published."""

    customer_count: int
    changed_count: int
