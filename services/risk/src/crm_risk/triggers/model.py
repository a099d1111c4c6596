"""What the alert triggers work on: plain values, no protos, no SQL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class ContactSnapshot:
    """One customer's contact details as keyed digests (never the details themselves), by field
    (`mobile_phone`, `email`, `address`), as of a profile event."""

    customer_id: str
    event_id: str
    occurred_at: datetime
    digests: dict[str, str]


@dataclass(frozen=True)
class ContactChange:
    field: str
    changed_at: datetime
    event_id: str


@dataclass(frozen=True)
class Firing:
    """A rule tripped for a customer: the changes behind it, oldest first."""

    changes: tuple[ContactChange, ...]


@dataclass(frozen=True)
class FiledComplaint:
    """A complaint of feedback's, as risk keeps it: whose, and when it was filed."""

    complaint_id: str
    customer_id: str
    filed_at: datetime


@dataclass(frozen=True)
class ComplaintFiring:
    """A complaints-spike rule tripped for a customer: the complaints behind it, oldest first."""

    complaints: tuple[FiledComplaint, ...]


@dataclass(frozen=True)
class Transaction:
    """A transaction profile's feed carried (`CustomerEvent`), in the reporting currency."""

    customer_id: str
    event: str  # `customers/{customer_id}/events/{event_id}`
    position: int
    occurred_at: datetime
    direction: int  # crm.profile.v1.TransactionDirection
    kind: int  # crm.profile.v1.TransactionKind
    amount: Decimal
    currency_code: str


@dataclass(frozen=True)
class Baseline:
    """Running statistics of a customer's transaction amounts of one direction (Welford)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, amount: float) -> Baseline:
        count = self.count + 1
        delta = amount - self.mean
        mean = self.mean + delta / count
        return Baseline(count=count, mean=mean, m2=self.m2 + delta * (amount - mean))

    @property
    def stddev(self) -> float:
        """Sample standard deviation; 0 below two transactions."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


@dataclass(frozen=True)
class AbnormalTransaction:
    """A transaction an abnormal-transactions rule found abnormal, kept as its evidence."""

    event: str
    occurred_at: datetime
    direction: int
    amount: Decimal
    z_score: float


@dataclass(frozen=True)
class Maturing:
    """One of the customer's open holdings maturing soon, with its reporting-currency balance."""

    holding_id: str
    maturity_date: date
    balance: Decimal | None


@dataclass(frozen=True)
class OutflowFiring:
    """A large-outflows rule tripped: money out within the window, and the share of the balance
    at the window's start it was (None when the rule does not use the share)."""

    total: Decimal
    share: float | None
