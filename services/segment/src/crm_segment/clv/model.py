"""Customer lifetime value as the service's code sees it: plain, picklable values, no protos.

The models are BG/NBD for the number of future transactions (Fader, Hardie & Lee 2005, "Counting
your customers the easy way") and Gamma-Gamma for their value (Fader, Hardie & Lee 2005, "RFM and
CLV"; Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"). Every time is in the
summary's `TimeUnit`, counted from a customer's first transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum


class TimeUnit(IntEnum):
    DAYS = 1
    WEEKS = 2

    @property
    def days(self) -> int:
        return 7 if self is TimeUnit.WEEKS else 1


@dataclass(frozen=True)
class Transaction:
    """One purchase. `amount` is in currency units: a statistical input, never a ledger entry."""

    customer_id: str
    day: date
    amount: float


@dataclass(frozen=True)
class CustomerSummary:
    """What the models know of one customer after the calibration period.

    `frequency` counts repeat transactions (days with a purchase after the first one), `recency`
    (t_x) is the time from the first to the last transaction, `age` (T) the time from the first
    transaction to the end of the calibration period, and `monetary_value` the mean value of the
    repeat transactions (0 without any: the first one says little about later spend).
    """

    customer_id: str
    frequency: int
    recency: float
    age: float
    monetary_value: float


@dataclass(frozen=True)
class BgNbdParameters:
    """BG/NBD: purchase rates ~ Gamma(r, alpha) while alive; the chance of dropping out after
    each transaction ~ Beta(a, b). `alpha` is in the summary's time unit."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


@dataclass(frozen=True)
class GammaGammaParameters:
    """Gamma-Gamma: a transaction's value ~ Gamma(p, nu) with nu ~ Gamma(q, gamma) per customer,
    so the population's mean transaction value is p * gamma / (q - 1) (defined for q > 1)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int


@dataclass(frozen=True)
class CustomerValue:
    """One customer's outlook over the valuation horizon (in the summary's time unit).

    `clv` is the present value of the expected spend over the horizon at `discount_rate` per
    period (see `rules.customer_values` for the formula).
    """

    customer_id: str
    expected_purchases: float
    probability_alive: float
    expected_spend: float
    clv: float


KIND = "segment.ltv_fit"
# Repeat customers a fit needs at least (the contract's floor; the fitter's own is lower).
MIN_REPEAT_CUSTOMERS = 100


@dataclass(frozen=True)
class DaySummary:
    """What the read model's per-day totals say of one customer within a period: the first and
    last day with a transaction, how many days had one, their total and the first day's amount."""

    customer_id: str
    first_day: date
    last_day: date
    days: int
    total: float
    first_amount: float


@dataclass(frozen=True)
class FitSettings:
    """A fit as asked for, checked (`rules.check_fit`)."""

    display_name: str
    calibration_start: date
    calibration_end: date
    holdout_start: date | None
    holdout_end: date | None
    unit: TimeUnit
    population_segment_id: str
    penalizer: float
    horizon_days: int
    annual_discount_rate: float


@dataclass(frozen=True)
class FitJob:
    """What the worker process fits: picklable."""

    summaries: tuple[CustomerSummary, ...]
    penalizer: float


@dataclass(frozen=True)
class FitResult:
    bgnbd: BgNbdParameters
    gamma_gamma: GammaGammaParameters
    frequency_value_correlation: float


@dataclass(frozen=True)
class HoldoutResult:
    predicted: float
    actual: int
    mean_absolute_error: float


@dataclass(frozen=True)
class StoredModel:
    """A lifetime-value model as stored; the parameters are None until its fit succeeded."""

    model_id: str
    settings: FitSettings
    operation_id: object
    state: int
    creator: str
    created_at: datetime
    fitted_at: datetime | None
    customer_count: int | None
    repeat_customer_count: int | None
    result: FitResult | None
    holdout: HoldoutResult | None

    @property
    def name(self) -> str:
        return f"lifetimeValueModels/{self.model_id}"


@dataclass(frozen=True)
class Prediction:
    """One customer's value under one model over a horizon from today."""

    customer_id: str
    model_id: str
    horizon_days: int
    annual_discount_rate: float
    summary: CustomerSummary
    value: CustomerValue
    computed_at: datetime
