"""A holding as the service's code sees it: plain values, money as `Money` (exact)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from crm_profile.holdings.money import Money


class ProductType(IntEnum):
    UNSPECIFIED = 0
    CURRENT_ACCOUNT = 1
    SAVINGS_ACCOUNT = 2
    TERM_DEPOSIT = 3
    WEALTH_MANAGEMENT = 4
    FUND = 5
    BOND = 6
    INSURANCE = 7
    PRECIOUS_METAL = 8
    CREDIT_CARD = 9
    PERSONAL_LOAN = 10
    MORTGAGE = 11
    BUSINESS_LOAN = 12


class HoldingStatus(IntEnum):
    UNSPECIFIED = 0
    ACTIVE = 1
    DORMANT = 2
    FROZEN = 3
    MATURED = 4
    CLOSED = 5


STATUS_CLOSED = HoldingStatus.CLOSED


@dataclass
class Holding:
    customer_id: str
    holding_id: str
    product_code: str
    product_type: int
    currency: str
    balance: Money | None
    open_date: date | None
    status: int
    source_system: str
    balance_time: datetime | None = None
    maturity_date: date | None = None
    close_date: date | None = None
    # The balance in the bank's reporting currency; None when no rate to it is configured.
    reporting_balance: Money | None = None
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/holdings/{self.holding_id}"

    @property
    def customer_name(self) -> str:
        return f"customers/{self.customer_id}"

    @property
    def etag(self) -> str:
        return str(self.version)

    @property
    def is_open(self) -> bool:
        return self.status != STATUS_CLOSED


@dataclass(frozen=True)
class HoldingFilter:
    """What ListHoldings narrows to; empty tuples and None mean no narrowing."""

    product_types: tuple[int, ...] = ()
    statuses: tuple[int, ...] = ()
    maturity_from: date | None = None
    maturity_to: date | None = None


@dataclass(frozen=True)
class CustomerRef:
    """What holdings need to know about their customer: whose book it is in, whether it is closed."""

    customer_id: str
    relationship_manager_id: str
    onboarded_on: date
    closed_on: date | None
    state: int = 1  # CustomerState: ACTIVE, MERGED (into `merged_into`), ERASED
    merged_into: str = ""


@dataclass(frozen=True)
class OpenState:
    """How many of a customer's holdings exist and are open, and the last close date among them."""

    holdings: int
    open_holdings: int
    last_close_date: date | None
