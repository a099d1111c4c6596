"""The reports' values. Enum values are the proto's numbers (crm.risk.v1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum


class ChurnType(IntEnum):
    """crm.risk.v1.ChurnType."""

    INVOLUNTARY = 1
    FULL_ATTRITION = 2
    BALANCE_ATTRITION = 3
    DORMANCY = 4


class ChurnCause(IntEnum):
    """crm.risk.v1.ChurnCause: the source study's churn types."""

    NATURAL = 1
    DELIBERATE = 2
    BANK_FAULT = 3
    UNDETERMINED = 4


class Granularity(IntEnum):
    """crm.risk.v1.PeriodGranularity (0, unspecified, means months)."""

    DAY = 1
    WEEK = 2
    MONTH = 3
    QUARTER = 4
    YEAR = 5


@dataclass(frozen=True)
class ChurnSnapshot:
    """What the read model holds about a customer when churn is detected."""

    customer_id: str
    relationship_manager_id: str
    branch_id: str
    onboarded_on: date | None
    closed_on: date | None
    aum: Decimal | None
    aum_change_90d: Decimal | None
    last_activity_at: datetime | None
    features_computed_at: datetime | None
    exit_reason: str
    # The current churn score, if any: its band, top drivers (feature names) and time.
    score_band: int = 0
    score_drivers: tuple[str, ...] = ()
    score_time: datetime | None = None


@dataclass(frozen=True)
class ChurnDetection:
    customer_id: str
    churn_type: ChurnType
    detected_on: date
    relationship_manager_id: str
    branch_id: str
    assets_before: Decimal | None
    tenure_months: int | None
    score_band: int
    score_drivers: tuple[str, ...]


@dataclass(frozen=True)
class ChurnCase:
    """One detected churn with the evidence the report attributes its cause from."""

    customer_id: str
    churn_type: ChurnType
    detected_on: date
    assets_before: Decimal | None
    assets_now: Decimal | None
    tenure_months: int | None
    score_band: int
    score_drivers: tuple[str, ...]
    exit_reason: str
    # Alerts about abnormal transactions or large outflows raised in the 90 days before.
    outflow_alerts: int
    # Complaints filed in the 90 days before.
    complaints: int = 0


@dataclass(frozen=True)
class CauseShare:
    cause: ChurnCause
    customers: int
    share: float


@dataclass(frozen=True)
class DriverShare:
    feature: str
    share: float


@dataclass(frozen=True)
class ChurnTypeRow:
    churn_type: ChurnType
    customers: int
    share: float
    assets_lost: Decimal
    median_tenure_months: int
    top_drivers: tuple[DriverShare, ...]
    predicted_share: float
    causes: tuple[CauseShare, ...]
    dissatisfied_share: float


@dataclass(frozen=True)
class ChurnReport:
    start: datetime
    end: datetime
    churned_customers: int
    rows: tuple[ChurnTypeRow, ...]
    causes: tuple[CauseShare, ...]
    compute_time: datetime


@dataclass(frozen=True)
class Period:
    """One period of a flow report: [start, end) in time, its days [first_day, end_day)."""

    start: datetime
    end: datetime
    first_day: date
    end_day: date


@dataclass(frozen=True)
class FlowCounts:
    """Per branch and day, what the flow report sums into periods."""

    opened: dict[tuple[str, date], int] = field(default_factory=dict)
    closed: dict[tuple[str, date], int] = field(default_factory=dict)
    new_customers: dict[tuple[str, date], int] = field(default_factory=dict)
    lost_customers: dict[tuple[str, date], int] = field(default_factory=dict)
    # Accounts open at the start of the first day, per branch.
    open_at_start: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowRow:
    period_start: datetime
    period_end: datetime
    branch_id: str
    opened: int
    closed: int
    open_at_end: int
    new_customers: int
    lost_customers: int

    @property
    def net(self) -> int:
        return self.opened - self.closed


@dataclass(frozen=True)
class FlowReport:
    start: datetime
    end: datetime
    granularity: Granularity
    time_zone: str
    rows: tuple[FlowRow, ...]
    period_totals: tuple[FlowRow, ...]
    total: FlowRow
    compute_time: datetime


@dataclass(frozen=True)
class CreditFacts:
    """What the read model holds for the credit rating inputs of one customer."""

    customer_id: str
    relationship_manager_id: str
    as_of: datetime
    onboarded_on: date | None
    age_years: int | None
    kyc_status: int
    risk_tolerance: int
    product_count: int | None
    aum: Decimal | None
    average_aum_90d: Decimal | None
    feature_values: dict[str, str | float]
    # Open credit holdings' balances (None when one has no reporting-currency balance).
    loan_outstanding: Decimal | None
    open_alerts: int
    churn_probability: float | None
    churn_risk_band: int
    complaints_12m: int


@dataclass(frozen=True)
class CreditInputs:
    customer_id: str
    as_of: datetime
    tenure_months: int | None
    age_years: int | None
    kyc_verified: bool
    risk_tolerance: int
    product_count: int | None
    total_assets: Decimal | None
    average_balance_3m: Decimal | None
    loan_outstanding: Decimal | None
    max_days_past_due_12m: int | None
    open_alerts: int
    complaints_12m: int
    churn_probability: float | None
    churn_risk_band: int
    credit_rating: str
    credit_limit: Decimal | None
    overdue: bool | None
    missing_inputs: tuple[str, ...]
