"""Pure decisions about customer events: what a valid event is, what a batch may hold, how long
events are kept, which month partition an event lands in. No I/O here.

How far back an event may happen is its data class's retention policy (`retention_policy`, the
one the purge applies; see crm_profile.privacy.retention.rules): an event the purge would delete
at once is refused at the door instead. How far ahead it may happen is the clock skew the
deployment allows its sources. Both, and the size of a batch, come from the settings
(`IngestLimits`).

`problem_of` returns the first problem of an event (one rejection per event, as the contract's
`EventRejection` has one field); it runs for every ingested event, so it is written for speed:
plain comparisons first, a regular expression only where a pattern is the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from crm_profile.attributes.model import DataClass
from crm_profile.customers.model import ACTIVE, ERASED
from crm_profile.events.model import (
    CARD_APPLICATION,
    DIRECTION_CREDIT,
    LOAN_APPLICATION,
    LOGIN,
    PAYROLL_CREDIT,
    PRODUCT_VIEW,
    TRANSACTION,
    ApplicationOutcome,
    Event,
    EventChannel,
    EventFilter,
    EventType,
    Problem,
    Transaction,
    TransactionDirection,
    TransactionKind,
)
from crm_profile.holdings import money
from crm_profile.holdings.money import Money
from crm_profile.privacy.retention.model import RetentionAnchor, RetentionPolicy
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import ID_PATTERN
from crmkit.validation import Violations, unknown_enum

MAX_BATCH = 1000  # the contract's most events per IngestEventsRequest; a deployment may allow fewer
MAX_REJECTIONS = 1000
MAX_INTERVAL = timedelta(days=400)
FUTURE_SKEW = timedelta(minutes=5)
MAX_PROPERTIES = 20

EVENT_TYPES = tuple(t for t in EventType if t != EventType.UNSPECIFIED)
CHANNELS = frozenset(EventChannel) - {EventChannel.UNSPECIFIED}
DIRECTIONS = frozenset(TransactionDirection) - {TransactionDirection.UNSPECIFIED}
TRANSACTION_KINDS = frozenset(TransactionKind) - {TransactionKind.UNSPECIFIED}
OUTCOMES = frozenset(ApplicationOutcome) - {ApplicationOutcome.UNSPECIFIED}

EVENT_ID = re.compile(r"[\x20-\x7e]{1,128}")
CUSTOMER = re.compile(rf"customers/{ID_PATTERN}")
SOURCE_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
PRODUCT_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
APPLICATION_ID = re.compile(r"[\x20-\x7e]{1,64}")
MERCHANT_CATEGORY_CODE = re.compile(r"[0-9]{4}")
PROPERTY_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
HOLDING_ID = re.compile(ID_PATTERN)

# Which `detail` member each event type requires (absent: none allowed).
DETAIL_OF: dict[int, str] = {TRANSACTION: "transaction", PAYROLL_CREDIT: "transaction", CARD_APPLICATION: "application",
             LOAN_APPLICATION: "application", LOGIN: "login"}
NEEDS_PRODUCT = frozenset({PRODUCT_VIEW, CARD_APPLICATION, LOAN_APPLICATION})
TRANSACTION_TYPES = frozenset({TRANSACTION, PAYROLL_CREDIT})
_TYPE_NAMES = {t.value: "EVENT_TYPE_" + t.name for t in EVENT_TYPES}


@dataclass(frozen=True)
class IngestLimits:
    """The ingest quota (per IngestEventsRequest: events, encoded bytes) and the clock skew allowed
    to sources (how far in the future an event may happen)."""

    max_batch_events: int = MAX_BATCH
    max_message_bytes: int = 4 * 1024 * 1024
    max_clock_skew: timedelta = FUTURE_SKEW

    def __post_init__(self) -> None:
        if not 0 < self.max_batch_events <= MAX_BATCH:
            raise ValueError(f"max_batch_events must be 1 to {MAX_BATCH} (the contract's limit)")
        if self.max_message_bytes <= 0 or self.max_clock_skew < timedelta(0):
            raise ValueError("max_message_bytes must be positive and max_clock_skew not negative")


@dataclass(frozen=True)
class Retention:
    """How far back an event may happen and still be accepted: its data class's retention period,
    or None when the period does not count from the event's own time (anchored at the end of the
    relationship: the event's age alone never makes it due).

    Transactions are `DATA_CLASS_TRANSACTION`, every other type `DATA_CLASS_BEHAVIOUR`. The
    defaults are those of the default policies, for callers without a database.
    """

    behaviour: timedelta | None = timedelta(days=3 * 365)
    transaction: timedelta | None = timedelta(days=10 * 365)

    def period_of(self, event_type: int) -> timedelta | None:
        return self.transaction if event_type in TRANSACTION_TYPES else self.behaviour


def retention_of(policies: Mapping[DataClass, RetentionPolicy]) -> Retention:
    """The acceptance window from the stored policies, as the purge applies them (their effective
    retention: never less than the legal floor). A class without a policy keeps its default."""

    def period(data_class: DataClass, default: timedelta | None) -> timedelta | None:
        policy = policies.get(data_class)
        if policy is None:
            return default
        return policy.effective_retention if policy.anchor == RetentionAnchor.RECORD_TIME else None

    defaults = Retention()
    return Retention(behaviour=period(DataClass.BEHAVIOUR, defaults.behaviour),
                     transaction=period(DataClass.TRANSACTION, defaults.transaction))


CUSTOMER_NOT_FOUND = Problem("customer", "CUSTOMER_NOT_FOUND", "names no customer known to the profile service")
CUSTOMER_ERASED = Problem("customer", "CUSTOMER_ERASED", "names a customer whose personal data was erased")


def required(field: str) -> Problem:
    return Problem(field, "REQUIRED", "is required")


def check_batch_size(size: int, limits: IngestLimits | None = None) -> None:
    """A batch holds 1 to `max_batch_events` events; any other size fails the whole call."""
    most = (limits or IngestLimits()).max_batch_events
    if not 0 < size <= most:
        raise InvalidArgument([FieldViolation("events", f"must hold 1 to {most} events per batch")])


def check_message_size(encoded_bytes: int, limits: IngestLimits) -> None:
    """An IngestEventsRequest encodes to at most `max_message_bytes`; a larger one fails the whole call."""
    if encoded_bytes > limits.max_message_bytes:
        raise InvalidArgument([FieldViolation(
            "events", f"must encode to at most {limits.max_message_bytes} bytes per IngestEventsRequest; "
                      "send smaller batches")])


def describe_span(span: timedelta) -> str:
    """`5 minutes`, `90 seconds`: a setting's duration as people read it."""
    seconds = int(span.total_seconds())
    if seconds % 60 == 0 and seconds:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def problem_of(event: Event, *, now: datetime, retention: Retention, max_skew: timedelta = FUTURE_SKEW
               ) -> Problem | None:
    """The first rule `event` breaks, or None when it may be stored."""
    if event.unreadable is not None:
        return event.unreadable
    if not event.event_id:
        return required("event_id")
    if EVENT_ID.fullmatch(event.event_id) is None:
        return Problem("event_id", "INVALID_FORMAT", "must be 1 to 128 printable ASCII characters")
    if not event.customer:
        return required("customer")
    if CUSTOMER.fullmatch(event.customer) is None:
        return Problem("customer", "INVALID_FORMAT", "must be a resource name like customers/{customer_id}")
    kind = event.event_type
    if kind not in EVENT_TYPES:
        return _enum_problem("event_type", kind, "EventType")
    if event.channel not in CHANNELS:
        return _enum_problem("channel", event.channel, "EventChannel")
    occurred = event.occur_time
    if occurred is None:
        return required("occur_time")
    if occurred > now + max_skew:
        return Problem("occur_time", "OUT_OF_RANGE", f"must be at most {describe_span(max_skew)} in the future "
                       "(the clock skew allowed to sources)")
    period = retention.period_of(kind)
    if period is not None and occurred < now - period:
        return Problem("occur_time", "OUTSIDE_RETENTION",
                       f"is older than the {period.days}-day retention period of its data class")
    if not event.source_system:
        return required("source_system")
    if SOURCE_SYSTEM.fullmatch(event.source_system) is None:
        return Problem("source_system", "INVALID_FORMAT", "must be 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$")
    if len(event.branch_id) > 32:
        return Problem("branch_id", "INVALID_FORMAT", "must be at most 32 characters")
    if event.product_code:
        if PRODUCT_CODE.fullmatch(event.product_code) is None:
            return Problem("product_code", "INVALID_FORMAT", "must be 1 to 32 characters from A-Z a-z 0-9 _ - .")
    elif kind in NEEDS_PRODUCT:
        return Problem("product_code", "REQUIRED", f"is required for {_TYPE_NAMES[kind]}")
    detail_problem = _detail_problem(event, kind)
    if detail_problem is not None:
        return detail_problem
    if event.properties:
        return _properties_problem(event.properties)
    return None


def _enum_problem(field: str, value: int, enum: str) -> Problem:
    if value == 0:
        return Problem(field, "REQUIRED", f"is required: a known {enum}")
    return Problem(field, "OUT_OF_RANGE", unknown_enum(value, enum))


def _detail_problem(event: Event, kind: int) -> Problem | None:
    given = ("transaction" if event.transaction is not None else "application" if event.application is not None
             else "login" if event.login is not None else None)
    wanted = DETAIL_OF.get(kind)
    if given != wanted:
        if given is None:
            return Problem(str(wanted), "REQUIRED", f"is required for {_TYPE_NAMES[kind]}")
        return Problem(given, "DETAIL_MISMATCH", f"is not allowed for {_TYPE_NAMES[kind]}"
                       + (f"; it takes {wanted}" if wanted else "; it takes no detail"))
    if event.transaction is not None:
        return _transaction_problem(event.transaction, kind, event.customer)
    if event.application is not None:
        application = event.application
        if not application.application_id:
            return required("application.application_id")
        if APPLICATION_ID.fullmatch(application.application_id) is None:
            return Problem("application.application_id", "INVALID_FORMAT", "must be 1 to 64 printable ASCII characters")
        if application.outcome not in OUTCOMES:
            return _enum_problem("application.outcome", application.outcome, "ApplicationOutcome")
    if event.login is not None and len(event.login.method) > 32:
        return Problem("login.method", "INVALID_FORMAT", "must be at most 32 characters")
    return None


def _transaction_problem(tx: Transaction, kind: int, customer: str) -> Problem | None:
    if tx.amount is None:
        return required("transaction.amount")
    amount_problem = _money_problem(tx.amount, "transaction.amount")
    if amount_problem is not None:
        return amount_problem
    if tx.amount.is_negative or tx.amount.is_zero:
        return Problem("transaction.amount", "OUT_OF_RANGE", "must be positive")
    if tx.direction not in DIRECTIONS:
        return _enum_problem("transaction.direction", tx.direction, "TransactionDirection")
    if kind == PAYROLL_CREDIT and tx.direction != DIRECTION_CREDIT:
        return Problem("transaction.direction", "DETAIL_MISMATCH",
                       "must be TRANSACTION_DIRECTION_CREDIT for EVENT_TYPE_PAYROLL_CREDIT")
    if tx.kind not in TRANSACTION_KINDS:
        return _enum_problem("transaction.kind", tx.kind, "TransactionKind")
    if tx.holding:
        prefix = customer + "/holdings/"
        if not tx.holding.startswith(prefix) or HOLDING_ID.fullmatch(tx.holding[len(prefix):]) is None:
            return Problem("transaction.holding", "INVALID_FORMAT",
                           "must be customers/{customer_id}/holdings/{holding_id} of the event's customer")
    if tx.balance_after is not None:
        balance_problem = _money_problem(tx.balance_after, "transaction.balance_after")
        if balance_problem is not None:
            return balance_problem
        if tx.balance_after.currency_code != tx.amount.currency_code:
            return Problem("transaction.balance_after.currency_code", "DETAIL_MISMATCH",
                           "must equal transaction.amount.currency_code")
    if tx.merchant_category_code and MERCHANT_CATEGORY_CODE.fullmatch(tx.merchant_category_code) is None:
        return Problem("transaction.merchant_category_code", "INVALID_FORMAT", "must be four digits (ISO 18245)")
    return None


def _money_problem(value: Money, field: str) -> Problem | None:
    problem = money.problem(value)
    if problem is None:
        return None
    if problem.startswith("currency_code"):
        return Problem(f"{field}.currency_code", "INVALID_FORMAT", problem.removeprefix("currency_code "))
    return Problem(field, "INVALID_FORMAT", problem)


def _properties_problem(properties: dict[str, str]) -> Problem | None:
    if len(properties) > MAX_PROPERTIES:
        return Problem("properties", "OUT_OF_RANGE", f"must have at most {MAX_PROPERTIES} entries")
    for key, value in properties.items():
        if PROPERTY_KEY.fullmatch(key) is None:
            return Problem("properties", "INVALID_FORMAT", "keys must be 1 to 64 characters matching ^[a-z][a-z0-9_]*$")
        if len(value) > 256:
            return Problem("properties", "INVALID_FORMAT", "values must be at most 256 characters")
    return None


def filing_problem(filed: tuple[str, int] | None) -> Problem | None:
    """Why an event cannot be filed under the customer it names (resolved through merges), if it cannot."""
    if filed is None:
        return CUSTOMER_NOT_FOUND
    _, state = filed
    if state == ERASED:
        return CUSTOMER_ERASED
    if state != ACTIVE:  # a merge chain too long to follow: a data problem for the stewards
        return CUSTOMER_NOT_FOUND
    return None


def month_of(moment: datetime) -> date:
    """The first day of the (UTC) month an event's partition covers."""
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def validate_filter(narrowing: EventFilter) -> None:
    """ListCustomerEvents' filter fields: known enum values, an interval of at most 400 days."""
    v = Violations()
    for i, t in enumerate(narrowing.event_types):
        v.enum(t, f"event_types[{i}]", EVENT_TYPES, "EventType", required="is not a known EventType")
    for i, c in enumerate(narrowing.channels):
        v.enum(c, f"channels[{i}]", CHANNELS, "EventChannel", required="is not a known EventChannel")
    start, end = narrowing.occur_from, narrowing.occur_to
    if start is not None and end is not None:
        if v.check(end >= start, "occur_interval.end_time", "must not be before occur_interval.start_time"):
            v.check(end - start <= MAX_INTERVAL, "occur_interval", "must be at most 400 days long")
    elif start is not None or end is not None:
        v.add("occur_interval", "must have both start_time and end_time (at most 400 days apart), or neither")
    v.raise_if_any()
