"""Pure decisions about derived features: what each one counts, over which window, in which
currency, what makes a change worth publishing, and what a recomputation request may ask. No I/O.

Definitions (the repository's SQL implements them; the tests check them by hand):

- **Time.** Features are computed as of one instant `now`; "today" is its UTC date. "The last N
  days" of events is the rolling window `occur_time > now - N days`; of dates (holdings opened
  or closed) it is the N calendar days ending today. Day counts (tenure, recency, days since
  last activity, days to next maturity) are whole UTC calendar days, never negative.
- **Customer-initiated transaction.** An `EVENT_TYPE_TRANSACTION` whose kind is not one the bank
  or an employer books on the customer's behalf (salary, interest, fee). Payroll credits count
  towards frequency and monetary (the contract says so) but not towards recency or activity.
- **Money.** Everything is summed in the bank's reporting currency, as integers of its minor unit.
  AUM sums the holdings' stored `reporting_balance` (converted by the holdings sub-domain at the
  configured reference rate). Transaction amounts in another currency are converted at the same
  configured reference rates (`CRM_PROFILE_FX_RATES`); a currency without a rate is left out of
  `monetary` (the transaction still counts towards `frequency`), as a holding without a rate is
  left out of AUM. Sums are exact and rounded once, half to even.
- **AUM history.** AUM is recorded on each day it changes (`customer_aum_history`), so the
  90-day daily average and the change over 90 days are exact from the first recording on. Days
  before a customer's first recording are reconstructed from the holdings as they are now: each
  holding counts its current reporting balance on the days between its open and close dates.
- **Material change.** What the change feed publishes: any change of a stored value except a day
  count moving on with the calendar while the date it counts from stays the same. Consumers age
  `tenure_days`, `recency_days`, `days_since_last_activity` and `days_to_next_maturity` by the
  days elapsed since `compute_time`; every other value is published whenever it changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_profile.customers.model import CustomerType
from crm_profile.events.model import EventType, TransactionKind
from crm_profile.holdings import money
from crm_profile.holdings.model import HoldingStatus, ProductType
from crmkit.resources import ResourceName
from crmkit.validation import Violations

CUSTOMER = ResourceName("customers/{customer_id}")
FEATURES = ResourceName("customers/{customer_id}/features")
MAX_CUSTOMERS = 1000
DEFAULT_WINDOW_DAYS = 365
MAX_WINDOW_DAYS = 3650

CHANNEL_VISIT, LOGIN, TRANSACTION, PAYROLL_CREDIT = (
    EventType.CHANNEL_VISIT, EventType.LOGIN, EventType.TRANSACTION, EventType.PAYROLL_CREDIT)
MONETARY_EVENT_TYPES = (TRANSACTION, PAYROLL_CREDIT)
# Kinds booked for the customer, not by them: salary and pension, interest, fees.
NOT_CUSTOMER_INITIATED_KINDS = (TransactionKind.SALARY, TransactionKind.INTEREST, TransactionKind.FEE)
# Deposits and investments (current and savings accounts, term deposits, wealth products, funds,
# bonds, insurance cash value, precious metals); cards and loans are owed, not held.
AUM_PRODUCT_TYPES = (
    ProductType.CURRENT_ACCOUNT, ProductType.SAVINGS_ACCOUNT, ProductType.TERM_DEPOSIT, ProductType.WEALTH_MANAGEMENT,
    ProductType.FUND, ProductType.BOND, ProductType.INSURANCE, ProductType.PRECIOUS_METAL)
HOLDING_CLOSED = HoldingStatus.CLOSED
INDIVIDUAL = CustomerType.INDIVIDUAL

# Activity and lifecycle windows, fixed by the contract's field names.
ACTIVITY_DAYS = 30
RECENT_DAYS = 90
PAYROLL_DAYS = 60
AUM_DAYS = 90

# Values that move with the calendar alone, and the stored date each counts from.
CALENDAR_COUNTS = {
    "tenure_days": "onboarded_on",
    "recency_days": "last_transaction_at",
    "days_since_last_activity": "last_activity_at",
    "days_to_next_maturity": "next_maturity_date",
}
# The customer record's fields the features are computed from: a change to one of them has the
# customer's features recomputed (`FeatureWriter.mark`).
CUSTOMER_INPUTS = ("customer_type", "birth_date", "onboarded_on", "closed_on")


def needs_recompute(before: object, after: object) -> bool:
    """Whether a change of the customer record from `before` to `after` moves its features."""
    return any(getattr(before, field) != getattr(after, field) for field in CUSTOMER_INPUTS)


# Every stored value whose change is published (the `customer_feature` columns but the key, the
# times of computation and the calendar counts).
MATERIAL = (
    "reporting_currency", "rfm_window_days", "last_transaction_at", "frequency", "monetary_minor", "aum_minor",
    "average_aum_90d_minor", "product_count", "product_type_count", "onboarded_on", "last_activity_at",
    "login_count_30d", "visit_count_30d", "transaction_count_30d", "transaction_count_90d",
    "active_channel_count_90d", "next_maturity_date", "next_maturing_holding_id", "age_years",
    "holdings_opened_90d", "holdings_closed_90d", "aum_change_90d_minor", "payroll_active", "closed_on",
)


@dataclass(frozen=True)
class Windows:
    """The instants and days a computation as of `now` counts from."""

    now: datetime
    today: date
    rfm_window_days: int
    rfm_since: datetime
    activity_since: datetime
    recent_since: datetime
    payroll_since: datetime
    # The oldest event any window reads.
    horizon: datetime
    # First day of the 90-day AUM average (today is the last), and the day "90 days ago".
    aum_window_start: date
    aum_reference_day: date
    # Holdings opened or closed on or after this day count as "in the last 90 days".
    recent_day: date

    @classmethod
    def of(cls, now: datetime, *, rfm_window_days: int) -> Windows:
        now = now.astimezone(UTC)
        today = now.date()
        since = {days: now - timedelta(days=days) for days in (rfm_window_days, ACTIVITY_DAYS, RECENT_DAYS,
                                                              PAYROLL_DAYS)}
        return cls(
            now=now, today=today, rfm_window_days=rfm_window_days, rfm_since=since[rfm_window_days],
            activity_since=since[ACTIVITY_DAYS], recent_since=since[RECENT_DAYS], payroll_since=since[PAYROLL_DAYS],
            horizon=min(since.values()), aum_window_start=today - timedelta(days=AUM_DAYS - 1),
            aum_reference_day=today - timedelta(days=AUM_DAYS), recent_day=today - timedelta(days=RECENT_DAYS - 1),
        )


@dataclass(frozen=True)
class Currency:
    """The reporting currency, and the factor that turns minor units of each other currency with a
    configured rate into minor units of it (rate x 10^(its decimals - their decimals))."""

    code: str
    factors: Mapping[str, Decimal]

    @classmethod
    def of(cls, code: str, rates: Mapping[str, Decimal]) -> Currency:
        decimals = money.MINOR_UNITS[code]
        factors = {other: Decimal(rate).scaleb(decimals - money.MINOR_UNITS[other]) for other, rate in rates.items()
                   if other != code}
        factors[code] = Decimal(1)
        return cls(code, factors)


def check_window(days: int) -> None:
    """Refuse a start-up with an RFM window that cannot be right."""
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"RFM window of {days} days: must be 1 to {MAX_WINDOW_DAYS}")


def is_material_change(before: Mapping[str, object] | None, after: Mapping[str, object]) -> bool:
    """Whether a recomputation from `before` (None: the customer had no features) to `after` is
    published. The repository decides the same in SQL over `MATERIAL`."""
    return before is None or any(before[column] != after[column] for column in MATERIAL)


def customer_ids_of(names: Sequence[str], violations: Violations) -> list[str]:
    """RecomputeFeaturesRequest.customers: at most 1000 names `customers/{id}`; duplicates collapse."""
    violations.check(len(names) <= MAX_CUSTOMERS, "customers", f"must name at most {MAX_CUSTOMERS} customers")
    ids: dict[str, None] = {}
    for i, name in enumerate(names[:MAX_CUSTOMERS + 1]):
        if CUSTOMER.check(name, f"customers[{i}]", violations):
            customer_id = CUSTOMER.id_in(name)
            assert customer_id is not None
            ids[customer_id] = None
    return list(ids)


def check_changed_since(changed_since: datetime | None, *, now: datetime, violations: Violations) -> None:
    if changed_since is not None:
        violations.check(changed_since <= now + timedelta(minutes=5), "changed_since", "must not be in the future")
