"""What the alert triggers work on: plain values, no protos, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
