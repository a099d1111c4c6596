"""Customer events as the service's code sees them: plain values, money as `Money` (exact).

An `Event` is what a source sent, before validation: fields that could not even be read (a
timestamp out of range) are left empty and `unreadable` says which and why, so that the event
is rejected on its own instead of failing its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from crm_profile.holdings.money import Money


class EventType(IntEnum):
    UNSPECIFIED = 0
    CHANNEL_VISIT = 1
    LOGIN = 2
    PRODUCT_VIEW = 3
    CARD_APPLICATION = 4
    LOAN_APPLICATION = 5
    TRANSACTION = 6
    PAYROLL_CREDIT = 7


class EventChannel(IntEnum):
    UNSPECIFIED = 0
    BRANCH = 1
    MOBILE_BANKING = 2
    WEB_BANKING = 3
    WECHAT = 4
    CALL_CENTRE = 5
    ATM = 6
    POS = 7
    BACK_OFFICE = 8


class TransactionDirection(IntEnum):
    UNSPECIFIED = 0
    CREDIT = 1
    DEBIT = 2


class TransactionKind(IntEnum):
    UNSPECIFIED = 0
    TRANSFER = 1
    CARD_PAYMENT = 2
    CASH_DEPOSIT = 3
    CASH_WITHDRAWAL = 4
    SALARY = 5
    BILL_PAYMENT = 6
    INVESTMENT_PURCHASE = 7
    INVESTMENT_REDEMPTION = 8
    LOAN_REPAYMENT = 9
    INTEREST = 10
    FEE = 11
    OTHER = 12


class ApplicationOutcome(IntEnum):
    UNSPECIFIED = 0
    SUBMITTED = 1
    APPROVED = 2
    DECLINED = 3
    WITHDRAWN = 4


CHANNEL_VISIT, LOGIN, PRODUCT_VIEW, CARD_APPLICATION, LOAN_APPLICATION, TRANSACTION, PAYROLL_CREDIT = (
    EventType.CHANNEL_VISIT, EventType.LOGIN, EventType.PRODUCT_VIEW, EventType.CARD_APPLICATION,
    EventType.LOAN_APPLICATION, EventType.TRANSACTION, EventType.PAYROLL_CREDIT)
DIRECTION_CREDIT = TransactionDirection.CREDIT


@dataclass(frozen=True, slots=True)
class Transaction:
    amount: Money | None
    direction: int
    kind: int
    holding: str = ""  # resource name as sent; `holding_id` once validated
    balance_after: Money | None = None
    merchant_category_code: str = ""

    @property
    def holding_id(self) -> str:
        return self.holding.rsplit("/", 1)[-1] if self.holding else ""


@dataclass(frozen=True, slots=True)
class Application:
    application_id: str
    outcome: int


@dataclass(frozen=True, slots=True)
class Login:
    success: bool
    method: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an event cannot be accepted: the field path within the event, an UPPER_SNAKE reason
    and a description naming the rule (never the offending value)."""

    field: str
    reason: str
    description: str


@dataclass(slots=True)
class Event:
    event_id: str
    customer: str  # `customers/{customer_id}` as sent
    event_type: int
    channel: int
    occur_time: datetime | None
    source_system: str
    branch_id: str = ""
    product_code: str = ""
    transaction: Transaction | None = None
    application: Application | None = None
    login: Login | None = None
    properties: dict[str, str] = field(default_factory=dict)
    unreadable: Problem | None = None
    # The event as its source encoded it, opaque here: the change feed publishes it with the
    # stored fields added, so an accepted event is not encoded a second time field by field.
    encoded: bytes = b""
    # Set when stored: the customer the event is filed under, and when it became durable.
    customer_id: str = ""
    ingest_time: datetime | None = None
    original_customer_id: str = ""

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/events/{self.event_id}"

    @property
    def sent_customer_id(self) -> str:
        return self.customer.removeprefix("customers/")


@dataclass(frozen=True, slots=True)
class Batch:
    """One message of an ingest stream: its events, and its size as encoded (for the quota)."""

    events: list[Event]
    encoded_bytes: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected event of an ingest stream: where it was, and the problem."""

    batch_index: int
    event_index: int
    event_id: str
    problem: Problem

    @property
    def position(self) -> tuple[int, int]:
        return self.batch_index, self.event_index


@dataclass(frozen=True)
class EventFilter:
    """What ListCustomerEvents narrows to; empty tuples and None mean no narrowing."""

    event_types: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    occur_from: datetime | None = None  # inclusive
    occur_to: datetime | None = None  # exclusive
