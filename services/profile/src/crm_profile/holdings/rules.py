"""Pure decisions about holdings: what a valid holding is, who sees it, what it is worth in the
reporting currency, and when a customer's relationship has ended. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from crm_profile.holdings import money
from crm_profile.holdings.model import (
    STATUS_CLOSED,
    CustomerRef,
    Holding,
    HoldingFilter,
    HoldingStatus,
    OpenState,
    ProductType,
)
from crm_profile.holdings.money import Money
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

HOLDING_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PRODUCT_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
SOURCE_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
PRODUCT_TYPES = frozenset(ProductType) - {ProductType.UNSPECIFIED}
STATUSES = frozenset(HoldingStatus) - {HoldingStatus.UNSPECIFIED}
# Clocks of the source systems drift a little; a balance "measured" later than this is a bug.
CLOCK_SKEW = timedelta(minutes=5)

# Fields an update may name; everything else is immutable or output only.
UPDATABLE_PATHS = frozenset({
    "product_code", "balance", "balance_time", "maturity_date", "status", "close_date", "source_system",
})
# Paths whose change can open or close the customer's relationship.
OPEN_STATE_PATHS = frozenset({"status", "close_date"})


def path(field: str) -> str:
    return f"holding.{field}"


def validate(holding: Holding, *, today: date, now: datetime, violations: Violations | None = None) -> Violations:
    """Record every rule the holding breaks, each under the request's field path."""
    v = violations if violations is not None else Violations()
    if v.required(holding.holding_id, path("holding_id")):
        v.pattern(holding.holding_id, path("holding_id"), HOLDING_ID,
                  "must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    if v.required(holding.product_code, path("product_code")):
        v.pattern(holding.product_code, path("product_code"), PRODUCT_CODE,
                  "must be 1 to 32 characters from A-Z a-z 0-9 _ - .")
    v.enum(holding.product_type, path("product_type"), PRODUCT_TYPES, "ProductType",
           required="is required: a known ProductType, e.g. PRODUCT_TYPE_TERM_DEPOSIT")
    currency_ok = v.check(money.is_currency(holding.currency), path("currency"),
                          "is required: an ISO 4217 currency code with a minor unit, e.g. CNY")
    _validate_balance(holding.balance, holding.currency if currency_ok else None, v)
    if holding.balance_time is not None:
        v.check(holding.balance_time <= now + CLOCK_SKEW, path("balance_time"), "must not be in the future")
    if v.check(holding.open_date is not None, path("open_date"), "is required"):
        assert holding.open_date is not None
        v.check(holding.open_date <= today, path("open_date"), "must not be in the future")
        if holding.maturity_date is not None:
            v.check(holding.maturity_date >= holding.open_date, path("maturity_date"),
                    "must not be before open_date")
        if holding.close_date is not None:
            v.check(holding.close_date >= holding.open_date, path("close_date"), "must not be before open_date")
    v.enum(holding.status, path("status"), STATUSES, "HoldingStatus",
           required="is required: a known HoldingStatus, e.g. HOLDING_STATUS_ACTIVE")
    if holding.status == STATUS_CLOSED:
        v.check(holding.close_date is not None, path("close_date"), "is required when status is HOLDING_STATUS_CLOSED")
    else:
        v.check(holding.close_date is None, path("close_date"),
                "must be empty unless status is HOLDING_STATUS_CLOSED")
    if holding.close_date is not None:
        v.check(holding.close_date <= today, path("close_date"), "must not be in the future")
    if v.required(holding.source_system, path("source_system")):
        v.pattern(holding.source_system, path("source_system"), SOURCE_SYSTEM,
                  "must be 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$")
    return v


def _validate_balance(balance: Money | None, currency: str | None, v: Violations) -> None:
    if not v.check(balance is not None, path("balance"), "is required"):
        return
    assert balance is not None
    if currency is not None and balance.currency_code != currency:
        v.add(path("balance.currency_code"), "must equal holding.currency")
        return
    problem = money.problem(balance)
    if problem is not None:
        field = "balance.currency_code" if problem.startswith("currency_code") else "balance"
        v.add(path(field), problem)
    elif balance.is_negative:
        v.add(path("balance"), "must not be negative (cards and loans record the amount owed)")


def check_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    v.raise_if_any()


def apply(current: Holding, changes: Holding, paths: Iterable[str], *, now: datetime) -> Holding:
    """`current` with the masked fields taken from `changes`; a new balance without a time is measured now."""
    values = {p: getattr(changes, p) for p in paths}
    if ("balance" in values or "balance_time" in values) and values.get("balance_time") is None:
        values["balance_time"] = now
    return dataclasses.replace(current, **values)


def check_balance_order(current: Holding, updated: Holding) -> None:
    """Out-of-order feeds must not roll a balance back (FAILED_PRECONDITION, `STALE_BALANCE`)."""
    if (current.balance_time is not None and updated.balance_time is not None
            and updated.balance_time < current.balance_time):
        raise FailedPrecondition(
            "balance_time is older than the stored balance's; the newer balance is kept",
            reason="STALE_BALANCE", metadata={"stored_balance_time": current.balance_time.isoformat()})


def reporting_balance(balance: Money | None, *, currency: str, rates: Mapping[str, Decimal]) -> Money | None:
    """`balance` in the reporting `currency`: itself, converted at the configured rate, or None
    when no rate to the reporting currency is known."""
    if balance is None:
        return None
    if balance.currency_code == currency:
        return balance
    rate = rates.get(balance.currency_code)
    return money.convert(balance, rate, currency) if rate is not None else None


def check_rates(currency: str, rates: Mapping[str, Decimal]) -> None:
    """Refuse a start-up with a reporting currency or rates that cannot be right."""
    if not money.is_currency(currency):
        raise ValueError(f"reporting currency {currency!r} is not an ISO 4217 code with a minor unit")
    for code, rate in rates.items():
        if not money.is_currency(code):
            raise ValueError(f"FX rate for {code!r}: not an ISO 4217 code with a minor unit")
        if not rate.is_finite() or rate <= 0:
            raise ValueError(f"FX rate for {code}: must be a positive number")


def relationship_end(customer: CustomerRef, state: OpenState) -> tuple[bool, date | None]:
    """Whether the customer's `closed_on` must change after a holding change, and to what.

    When the customer's last open holding closes, the relationship ended on the last close date
    (never before onboarding); while any holding is open, it has not ended. A customer without
    holdings keeps whatever the counter recorded.
    """
    if state.holdings == 0:
        return False, customer.closed_on
    if state.open_holdings > 0:
        wanted: date | None = None
    else:
        assert state.last_close_date is not None
        wanted = max(state.last_close_date, customer.onboarded_on)
    return wanted != customer.closed_on, wanted


def validate_filter(narrowing: HoldingFilter) -> None:
    """ListHoldings' filter fields: known enum values, a date range that is not upside down."""
    v = Violations()
    for i, t in enumerate(narrowing.product_types):
        v.enum(t, f"product_types[{i}]", PRODUCT_TYPES, "ProductType", required="is not a known ProductType")
    for i, s in enumerate(narrowing.statuses):
        v.enum(s, f"statuses[{i}]", STATUSES, "HoldingStatus", required="is not a known HoldingStatus")
    if narrowing.maturity_from is not None and narrowing.maturity_to is not None:
        v.check(narrowing.maturity_to >= narrowing.maturity_from, "maturity_date_to",
                "must not be before maturity_date_from")
    v.raise_if_any()
