"""Consents and contact preferences as the service's code sees them (enum values are the proto numbers)."""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum


class ConsentPurpose(IntEnum):
    UNSPECIFIED = 0
    MARKETING = 1
    PARTNER_MARKETING = 2
    PROFILING = 3
    GROUP_SHARING = 4
    SURVEYS = 5


class ContactChannel(IntEnum):
    UNSPECIFIED = 0
    SMS = 1
    EMAIL = 2
    PHONE_CALL = 3
    MOBILE_APP = 4
    WECHAT = 5
    POST = 6
    BRANCH = 7
    WEB_BANKING = 8


class ConsentDecision(IntEnum):
    UNSPECIFIED = 0
    OPT_IN = 1
    OPT_OUT = 2


class ConsentSource(IntEnum):
    UNSPECIFIED = 0
    BRANCH_FORM = 1
    MOBILE_BANKING = 2
    WEB_BANKING = 3
    WECHAT = 4
    CALL_RECORDING = 5
    EMAIL_UNSUBSCRIBE = 6
    SMS_REPLY = 7
    IMPORT = 8
    MERGE = 9  # written by MergeCustomers only


class ConsentStatus(IntEnum):
    UNSPECIFIED = 0
    OPTED_IN = 1
    OPTED_OUT = 2
    EXPIRED = 3


class DoNotContactReason(IntEnum):
    UNSPECIFIED = 0
    CUSTOMER_REQUEST = 1
    OPEN_COMPLAINT = 2
    DECEASED = 3
    VULNERABLE = 4
    LEGAL = 5
    INVESTIGATION = 6


OPT_IN, OPT_OUT = ConsentDecision.OPT_IN, ConsentDecision.OPT_OUT
OPTED_IN, OPTED_OUT, EXPIRED = ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT, ConsentStatus.EXPIRED
SOURCE_MERGE = ConsentSource.MERGE

Pair = tuple[int, int]  # (purpose, channel)


@dataclass(frozen=True)
class ConsentEvidence:
    source: int
    source_reference: str
    effective_at: datetime | None
    text_version: str
    recorded_by: str


@dataclass(frozen=True)
class ConsentRecord:
    """One ledger entry. `customer_id` serves it; `origin_customer_id` is where it was recorded."""

    customer_id: str
    purpose: int
    channel: int
    decision: int
    evidence: ConsentEvidence | None
    expire_at: datetime | None = None
    record_id: uuid.UUID | None = None
    origin_customer_id: str = ""
    recorded_at: datetime | None = None
    recorder: str = ""
    seq: int = 0
    merge_id: uuid.UUID | None = None

    @property
    def pair(self) -> Pair:
        return (self.purpose, self.channel)

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/consentRecords/{self.record_id}"

    @property
    def origin_customer(self) -> str:
        """The merged-away customer the record came from; "" for the customer's own records."""
        if self.origin_customer_id and self.origin_customer_id != self.customer_id:
            return f"customers/{self.origin_customer_id}"
        return ""


@dataclass(frozen=True)
class ConsentState:
    """The current consent of one purpose x channel and the record that decides it."""

    purpose: int
    channel: int
    status: int
    effective_at: datetime
    expire_at: datetime | None
    record_name: str

    @property
    def allowed(self) -> bool:
        return self.status == OPTED_IN


TimeOfDay = tuple[int, int, int, int]  # hours, minutes, seconds, nanos


@dataclass(frozen=True)
class ContactWindow:
    days: tuple[int, ...]  # google.type.DayOfWeek values; empty means every day
    start: TimeOfDay | None
    end: TimeOfDay | None


@dataclass(frozen=True)
class ContactPreferences:
    customer_id: str
    preferred_channels: tuple[int, ...] = ()
    contact_windows: tuple[ContactWindow, ...] = ()
    time_zone: str = ""
    # The customer's `preferred_language`: one value, stored on the customer.
    language: str = ""
    do_not_contact: bool = False
    do_not_contact_reason: int = 0
    do_not_contact_note: str = ""
    do_not_contact_at: datetime | None = None
    do_not_contact_until: date | None = None
    version: int = 0  # 0: never stored (the empty preferences every customer starts with)
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/contactPreferences"

    @property
    def etag(self) -> str:
        # The language lives on the customer: a change there through UpdateCustomer must make a
        # preferences etag read before it stale too.
        return f"{self.version}-{zlib.crc32(self.language.encode()):08x}"

    def do_not_contact_on(self, day: date) -> bool:
        """The flag as it applies on `day`: it clears itself after `do_not_contact_until`."""
        return self.do_not_contact and (self.do_not_contact_until is None or day <= self.do_not_contact_until)
