"""Customer event proto <-> domain model. Nothing else: no rules, no I/O.

The ingest stream maps every event it receives, so the mapping reads each field once and builds
datetimes with integer arithmetic rather than the slower well-known-type helpers; and the change
feed's payload of an accepted event is the event as the source encoded it, decoded and re-encoded
whole with the stored fields set (a few microseconds), not rebuilt field by field.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from crm.profile.v1 import event_pb2
from crm_profile.events.model import Application, Batch, Event, EventFilter, Login, Problem, Transaction
from crm_profile.events.service import IngestResult
from crm_profile.holdings.money import Money
from crmkit.errors import FieldViolation, InvalidArgument

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_BAD_TIME = Problem("occur_time", "INVALID_FORMAT", "is not a valid timestamp")
# An encoded google.protobuf.Any holding a CustomerEvent is this prefix (field 1, the type URL),
# then field 2 (the value): its tag, its length as a varint, its bytes.
_ANY_PREFIX = any_pb2.Any(type_url="type.googleapis.com/" + event_pb2.CustomerEvent.DESCRIPTOR.full_name
                          ).SerializeToString()


def _time(stamp: Timestamp) -> datetime | None:
    """The timestamp to the microsecond (what PostgreSQL keeps); None when out of range."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        return None
    return EPOCH + timedelta(0, seconds, nanos // 1000)  # positional: keywords cost twice as much


@functools.lru_cache(maxsize=16)
def _seconds_nanos(moment: datetime) -> tuple[int, int]:
    """(seconds, nanos) since the epoch; cached: a batch's events share their ingest time."""
    delta = moment - EPOCH
    return delta.days * 86_400 + delta.seconds, delta.microseconds * 1000


def _stamp(moment: datetime) -> Timestamp:
    seconds, nanos = _seconds_nanos(moment)
    return Timestamp(seconds=seconds, nanos=nanos)


def _money(value: money_pb2.Money) -> Money:
    return Money(value.currency_code, value.units, value.nanos)


def to_domain(m: event_pb2.CustomerEvent) -> Event:
    occur_time = None
    unreadable = None
    if m.HasField("occur_time"):
        occur_time = _time(m.occur_time)
        if occur_time is None:
            unreadable = _BAD_TIME
    transaction = application = login = None
    detail = m.WhichOneof("detail")
    if detail == "transaction":
        t = m.transaction
        transaction = Transaction(
            amount=_money(t.amount) if t.HasField("amount") else None, direction=t.direction, kind=t.kind,
            holding=t.holding, balance_after=_money(t.balance_after) if t.HasField("balance_after") else None,
            merchant_category_code=t.merchant_category_code)
    elif detail == "application":
        application = Application(m.application.application_id, m.application.outcome)
    elif detail == "login":
        login = Login(m.login.success, m.login.method)
    return Event(m.event_id, m.customer, m.event_type, m.channel, occur_time, m.source_system, m.branch_id,
                 m.product_code, transaction, application, login, _properties(m.properties) if m.properties else {},
                 unreadable, m.SerializeToString())


def _properties(entries: Mapping[str, str]) -> dict[str, str]:
    return {key: entries[key] for key in entries}  # twice as fast as dict() on a protobuf map


async def batches(requests: AsyncIterable[event_pb2.IngestEventsRequest]) -> AsyncIterator[Batch]:
    """The client stream's batches as domain events, mapped as they arrive, with their encoded size."""
    async for request in requests:
        yield Batch([to_domain(m) for m in request.events], request.ByteSize())


def _money_proto(value: Money) -> money_pb2.Money:
    return money_pb2.Money(currency_code=value.currency_code, units=value.units, nanos=value.nanos)


def to_proto(e: Event) -> event_pb2.CustomerEvent:
    message = event_pb2.CustomerEvent(
        name=e.name, event_id=e.event_id, customer=f"customers/{e.customer_id}",
        event_type=event_pb2.EventType.ValueType(e.event_type),
        channel=event_pb2.EventChannel.ValueType(e.channel), source_system=e.source_system, branch_id=e.branch_id,
        product_code=e.product_code, properties=e.properties,
        original_customer=f"customers/{e.original_customer_id}" if e.original_customer_id else "",
    )
    if e.occur_time is not None:
        message.occur_time.CopyFrom(_stamp(e.occur_time))
    if e.ingest_time is not None:
        message.ingest_time.CopyFrom(_stamp(e.ingest_time))
    if e.transaction is not None:
        t = e.transaction
        detail = message.transaction
        detail.direction = event_pb2.TransactionDirection.ValueType(t.direction)
        detail.kind = event_pb2.TransactionKind.ValueType(t.kind)
        detail.holding = t.holding
        detail.merchant_category_code = t.merchant_category_code
        if t.amount is not None:
            detail.amount.CopyFrom(_money_proto(t.amount))
        if t.balance_after is not None:
            detail.balance_after.CopyFrom(_money_proto(t.balance_after))
    elif e.application is not None:
        message.application.application_id = e.application.application_id
        message.application.outcome = event_pb2.ApplicationOutcome.ValueType(e.application.outcome)
    elif e.login is not None:
        message.login.success = e.login.success
        message.login.method = e.login.method
    return message


def feed_payload(e: Event) -> bytes:
    """The change feed's payload of a stored event: the CustomerEvent packed in an Any, encoded."""
    if e.encoded:
        message = event_pb2.CustomerEvent.FromString(e.encoded)
        message.name = e.name
        message.customer = f"customers/{e.customer_id}"
        message.original_customer = f"customers/{e.original_customer_id}" if e.original_customer_id else ""
        occurred = message.occur_time
        occurred.nanos = occurred.nanos // 1000 * 1000  # as stored: to the microsecond
        if e.ingest_time is not None:
            ingested = message.ingest_time
            ingested.seconds, ingested.nanos = _seconds_nanos(e.ingest_time)
    else:
        message = to_proto(e)
    return _packed(message.SerializeToString())


def _packed(value: bytes) -> bytes:
    """`Any(type_url=<CustomerEvent>, value=value)` encoded, without building the message."""
    length, varint = len(value), bytearray()
    while length > 0x7F:
        varint.append(length & 0x7F | 0x80)
        length >>= 7
    varint.append(length)
    return b"".join((_ANY_PREFIX, b"\x12", varint, value))


def ingest_response(result: IngestResult) -> event_pb2.IngestEventsResponse:
    return event_pb2.IngestEventsResponse(
        accepted_count=result.accepted_count, duplicate_count=result.duplicate_count,
        rejected_count=result.rejected_count, rejections_truncated=result.rejections_truncated,
        rejections=[event_pb2.EventRejection(
            batch_index=r.batch_index, event_index=r.event_index, event_id=r.event_id, field=r.problem.field,
            reason=r.problem.reason, description=r.problem.description) for r in result.rejections],
    )


def filter_to_domain(request: event_pb2.ListCustomerEventsRequest) -> EventFilter:
    occur_from = occur_to = None
    if request.HasField("occur_interval"):
        bad = []
        interval = request.occur_interval
        for field in ("start_time", "end_time"):
            if interval.HasField(field):
                moment = _time(getattr(interval, field))
                if moment is None:
                    bad.append(FieldViolation(f"occur_interval.{field}", "is not a valid timestamp"))
                elif field == "start_time":
                    occur_from = moment
                else:
                    occur_to = moment
        if bad:
            raise InvalidArgument(bad)
    return EventFilter(event_types=tuple(request.event_types), channels=tuple(request.channels),
                       occur_from=occur_from, occur_to=occur_to)
