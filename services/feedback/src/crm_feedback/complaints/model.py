"""The complaint as the service's code sees it: plain values, the description in clear.

Only `privacy.py` turns the description into stored ciphertext and back; only `api/` turns
these into protos and back. Enum values are the proto's numbers, so no table translates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntEnum


class Status(IntEnum):
    OPEN = 1
    ACKNOWLEDGED = 2
    IN_PROGRESS = 3
    RESOLVED = 4
    CLOSED = 5
    REOPENED = 6


OPEN_STATUSES = frozenset({Status.OPEN, Status.ACKNOWLEDGED, Status.IN_PROGRESS, Status.REOPENED})


class Priority(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4


class Channel(IntEnum):
    BRANCH = 1
    MOBILE_APP = 2
    WEB = 3
    WECHAT = 4
    CALL_CENTRE = 5
    EMAIL = 6
    SMS = 7
    LETTER = 8
    REGULATOR = 9


class Category(IntEnum):
    SERVICE_ATTITUDE = 1
    WAIT_TIME_AND_FACILITIES = 2
    FEES_AND_CHARGES = 3
    ACCOUNT_OPERATIONS = 4
    CARDS = 5
    LOANS_AND_CREDIT = 6
    PAYMENTS_AND_TRANSFERS = 7
    WEALTH_AND_INVESTMENT = 8
    DIGITAL_CHANNELS = 9
    MARKETING_CONTACT = 10
    PRIVACY_AND_DATA = 11
    FRAUD_AND_SECURITY = 12
    OTHER = 13


class Action(IntEnum):
    """A workflow step (`ComplaintAction`)."""

    FILED = 1
    UPDATED = 2
    ASSIGNED = 3
    ACKNOWLEDGED = 4
    NOTE_ADDED = 5
    ESCALATED = 6
    RESOLVED = 7
    CLOSED = 8
    REOPENED = 9


class EscalationTrigger(IntEnum):
    MANUAL = 1
    BEFORE_BREACH = 2
    BREACH = 3


class CloseReason(IntEnum):
    CUSTOMER_CONFIRMED = 1
    NO_CUSTOMER_REPLY = 2
    WITHDRAWN = 3
    DUPLICATE = 4


class Outcome(IntEnum):
    UPHELD = 1
    PARTIALLY_UPHELD = 2
    NOT_UPHELD = 3


class NoteType(IntEnum):
    INTERNAL = 1
    CUSTOMER_CONTACT = 2


# The `assignee` filter value that finds complaints nobody is assigned to.
UNASSIGNED = "unassigned"

# Fields holding personal data: encrypted at rest, masked by role on the way out.
PERSONAL_FIELDS = ("description", "resolution.summary", "notes.text")


@dataclass(frozen=True)
class ComplaintDraft:
    """What `FileComplaint` reads from the request, as sent; `rules.validate_draft` judges it."""

    customer: str
    channel: int
    description: str
    category: int = 0
    subcategory: str = ""
    priority: int = 0
    branch_id: str = ""
    related_resources: tuple[str, ...] = ()
    receive_time: datetime | None = None
    product: str = ""


@dataclass(frozen=True)
class Sla:
    policy: str
    respond_by: datetime
    resolve_by: datetime
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    # When the clock worker escalates before breach if the clock still runs (None: it does not).
    respond_escalate_at: datetime | None = None
    resolve_escalate_at: datetime | None = None
    # Whether a breach of a running clock raises the escalation level (the policy's setting).
    escalate_on_breach: bool = False


@dataclass(frozen=True)
class Note:
    note_id: int
    type: int
    text: str
    author: str
    created_at: datetime
    contact_channel: int = 0


@dataclass(frozen=True)
class Step:
    """One recorded workflow step: who, when, from which status to which."""

    action: int
    from_status: int
    to_status: int
    actor: str
    occurred_at: datetime
    assignee: str = ""
    escalation_level: int = 0
    note_id: int | None = None
    escalation_trigger: int = 0


@dataclass(frozen=True)
class Compensation:
    currency_code: str
    amount: Decimal


@dataclass(frozen=True)
class Resolution:
    outcome: int
    summary: str
    resolver: str
    resolved_at: datetime
    root_cause: str = ""
    compensation: Compensation | None = None


@dataclass
class Complaint:
    complaint_id: str
    customer_id: str
    channel: int
    category: int
    priority: int
    description: str
    received_at: datetime
    sla: Sla
    filer: str
    status: int = Status.OPEN
    subcategory: str = ""
    branch_id: str = ""
    related_resources: tuple[str, ...] = ()
    assignee: str = ""
    escalation_level: int = 0
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resolution: Resolution | None = None
    close_reason: int = 0
    duplicate_of: str = ""
    reopen_count: int = 0
    closed_at: datetime | None = None
    product: str = ""
    # The customer's relationship manager (from profile's feed); "" when unknown.
    customer_manager: str = ""
    # Loaded only for the full view; the timeline is append-only rows of its own.
    notes: tuple[Note, ...] = ()
    history: tuple[Step, ...] = ()

    @property
    def name(self) -> str:
        return f"complaints/{self.complaint_id}"

    def note_name(self, note_id: int) -> str:
        return f"{self.name}/notes/{note_id}"

    @property
    def customer(self) -> str:
        return f"customers/{self.customer_id}"

    @property
    def etag(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class ComplaintView:
    """A complaint as one caller may see it at one moment: masking and breach flags applied."""

    complaint: Complaint
    respond_breached: bool = False
    resolve_breached: bool = False
    masked_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimeRange:
    """Start inclusive, end exclusive; None is open on that side (google.type.Interval)."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class ComplaintFilter:
    """`ListComplaints` filters as sent; `rules.validate_filter` judges them."""

    customer: str = ""
    statuses: tuple[int, ...] = ()
    categories: tuple[int, ...] = ()
    priorities: tuple[int, ...] = ()
    channel: int = 0
    assignee: str = ""
    branch_id: str = ""
    breached_only: bool = False
    min_escalation_level: int = 0
    receive_interval: TimeRange = field(default_factory=TimeRange)
    due_interval: TimeRange = field(default_factory=TimeRange)
    order_by: str = ""
