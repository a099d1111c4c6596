"""A customer as risk's read model holds it, and the changes profile's feed brings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from crm_risk.suitability.model import CustomerFacts


@dataclass(frozen=True)
class CustomerRecord:
    customer_id: str
    facts: CustomerFacts
    relationship_manager_id: str
    branch_id: str
    # When the newest profile event applied to this customer happened (the contract's `data_as_of`).
    data_as_of: datetime
    # What churn models score on, by feature name (the table's comment), `age_years` included.
    feature_values: dict[str, str | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stamp:
    """Which customer an event is about, where it sits in profile's feed, and when it happened."""

    customer_id: str
    position: int
    occurred_at: datetime


@dataclass(frozen=True)
class CustomerChange:
    """The customer record part (a service reader's masked view: the birth date is its year)."""

    stamp: Stamp
    removed: bool = False
    risk_tolerance: int = 0
    kyc_status: int = 0
    birth_year: int | None = None
    relationship_manager_id: str = ""
    branch_id: str = ""
    assessment_expiry: date | None = None
    vulnerable: bool = False
    credit_overdue: bool = False
    feature_values: dict[str, str | float] = field(default_factory=dict)
    onboarded_on: date | None = None
    # The last account closed: the relationship ended (full attrition).
    closed_on: date | None = None


@dataclass(frozen=True)
class AgeChange:
    """Profile's derived features risk keeps: the exact age, with the day it was computed, and the
    assets, product count and last activity (amounts in the reporting currency; None when
    profile gave none in it)."""

    stamp: Stamp
    age_years: int | None
    age_on: date | None
    computed_at: datetime | None = None
    aum: Decimal | None = None
    average_aum_90d: Decimal | None = None
    aum_change_90d: Decimal | None = None
    product_count: int | None = None
    last_activity_at: datetime | None = None


@dataclass(frozen=True)
class HoldingChange:
    """One of profile's holdings (an account or product held), as the reports count it."""

    stamp: Stamp
    holding_id: str
    removed: bool = False
    product_code: str = ""
    product_type: int = 0
    status: int = 0
    open_date: date | None = None
    close_date: date | None = None
    reporting_balance: Decimal | None = None
    maturity_date: date | None = None


@dataclass(frozen=True)
class ReadModelStatus:
    newest_event_at: datetime | None
    customer_count: int
    needs_rebuild: bool
