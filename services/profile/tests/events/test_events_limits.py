"""The ingest quota, the clock skew and the retention window as configured: the events service on
a database of its own (its retention policies are changed here), driven by real request messages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from google.type import money_pb2

from crm.profile.v1 import event_pb2
from crm_profile import tables
from crm_profile.api import event_messages
from crm_profile.app import SPEC
from crm_profile.attributes.model import DataClass
from crm_profile.events import rules
from crm_profile.events.repository import EventRepository, MonthPartitions
from crm_profile.events.service import Events, IngestResult
from crm_profile.privacy.retention.model import RetentionAnchor
from crm_profile.privacy.retention.repository import RetentionRepository
from crmkit.audit import AuditWriter
from crmkit.auth import Principal, Role
from crmkit.db import Database
from crmkit.errors import InvalidArgument
from crmkit.pagination import PageTokens
from crmkit.testing import DatabaseFactory, migrated_database

FEED = Principal(subject="mobile-banking", roles=frozenset({Role.CHANNEL_APP}))
CUSTOMER = "CLIMITS1"


@pytest.fixture(scope="module")
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await migrated_database(database_factory, SPEC))
    async with database.raw() as connection:  # the columns ingest reads; the rest as CreateCustomer would leave them
        await connection.execute(
            "INSERT INTO customer (customer_id, customer_type, full_name_sealed, onboarded_on, key_id) "
            "VALUES ($1, 1, '\\x00', $2, 'k1')", CUSTOMER, date(2020, 1, 1))
    yield database
    await database.dispose()


def events_service(db: Database, *, retention_floors: dict[DataClass, timedelta] | None = None,
                   **limits: Any) -> Events:
    return Events(db=db, repository=EventRepository(), partitions=MonthPartitions(),
                  audit=AuditWriter(db, tables.audit_record), page_tokens=PageTokens(b"k" * 32),
                  feed_payload=event_messages.feed_payload, limits=rules.IngestLimits(**limits),
                  policies=RetentionRepository(retention_floors or {}))


def visit(*, at: datetime | None = None, **properties: str) -> event_pb2.CustomerEvent:
    moment = at or datetime.now(UTC)
    return event_pb2.CustomerEvent(
        event_id=str(uuid.uuid4()), customer=f"customers/{CUSTOMER}", event_type=event_pb2.EVENT_TYPE_CHANNEL_VISIT,
        channel=event_pb2.EVENT_CHANNEL_WEB_BANKING, source_system="web-banking", properties=properties,
        occur_time=timestamp_pb2.Timestamp(seconds=int(moment.timestamp())))


def card_payment(*, at: datetime) -> event_pb2.CustomerEvent:
    event = visit(at=at)
    event.event_type = event_pb2.EVENT_TYPE_TRANSACTION
    event.channel = event_pb2.EVENT_CHANNEL_POS
    event.transaction.CopyFrom(event_pb2.TransactionDetail(
        amount=money_pb2.Money(currency_code="CNY", units=12), direction=event_pb2.TRANSACTION_DIRECTION_DEBIT,
        kind=event_pb2.TRANSACTION_KIND_CARD_PAYMENT))
    return event


async def ingest(events: Events, *batches: Sequence[event_pb2.CustomerEvent]) -> IngestResult:
    async def requests() -> AsyncIterator[event_pb2.IngestEventsRequest]:
        for batch in batches:
            yield event_pb2.IngestEventsRequest(events=list(batch))

    return await events.ingest(batches=event_messages.batches(requests()), actor=FEED)


async def stored(db: Database, *batches: Sequence[event_pb2.CustomerEvent]) -> int:
    ids = [e.event_id for batch in batches for e in batch]
    async with db.raw() as connection:
        return int(await connection.fetchval(
            "SELECT (SELECT count(*) FROM customer_event WHERE event_id = ANY($1::text[])) "
            "+ (SELECT count(*) FROM customer_event_id WHERE event_id = ANY($1::text[])) "
            "+ (SELECT count(*) FROM outbox_event WHERE split_part(resource_name, '/', 4) = ANY($1::text[]))", ids))


async def set_policy(db: Database, data_class: DataClass, *, days: int,
                     anchor: RetentionAnchor = RetentionAnchor.RECORD_TIME) -> None:
    async with db.raw() as connection:
        await connection.execute("UPDATE retention_policy SET retention_days = $2, anchor = $3 WHERE data_class = $1",
                                 int(data_class), days, int(anchor))


async def test_a_batch_over_the_configured_size_fails_the_call_and_stores_only_the_batches_before_it(
        db: Database) -> None:
    before, oversized, after = [visit(), visit()], [visit(), visit(), visit()], [visit()]
    with pytest.raises(InvalidArgument) as error:
        await ingest(events_service(db, max_batch_events=2), before, oversized, after)
    assert [(v.field, v.description) for v in error.value.violations] == [
        ("events", "must hold 1 to 2 events per batch")]
    assert await stored(db, before) == 3 * len(before)  # events, ledger ids and feed rows
    assert await stored(db, oversized, after) == 0


async def test_a_message_over_the_configured_bytes_fails_the_call_and_stores_nothing_of_it(db: Database) -> None:
    small = [visit()]
    large = [visit(note="x" * 200) for _ in range(10)]
    limit = event_pb2.IngestEventsRequest(events=small).ByteSize() + 100
    assert event_pb2.IngestEventsRequest(events=large).ByteSize() > limit
    with pytest.raises(InvalidArgument) as error:
        await ingest(events_service(db, max_message_bytes=limit), small, large)
    violation = error.value.violations[0]
    assert violation.field == "events" and f"at most {limit} bytes" in violation.description
    assert await stored(db, small) == 3
    assert await stored(db, large) == 0


async def test_events_further_ahead_than_the_configured_skew_are_rejected(db: Database) -> None:
    now = datetime.now(UTC)
    near, far = visit(at=now + timedelta(seconds=30)), visit(at=now + timedelta(minutes=3))
    result = await ingest(events_service(db, max_clock_skew=timedelta(minutes=1)), [near, far])
    assert (result.accepted_count, result.rejected_count) == (1, 1)
    rejection = result.rejections[0]
    assert (rejection.event_index, rejection.problem.field, rejection.problem.reason) == (1, "occur_time",
                                                                                            "OUT_OF_RANGE")
    assert "1 minute" in rejection.problem.description
    assert await stored(db, [far]) == 0
    # With the default skew (5 minutes) the same event is accepted.
    assert (await ingest(events_service(db), [visit(at=now + timedelta(minutes=3))])).accepted_count == 1


async def test_events_older_than_their_class_retention_policy_are_rejected(db: Database) -> None:
    now = datetime.now(UTC)
    await set_policy(db, DataClass.BEHAVIOUR, days=30)
    try:
        recent, old, old_payment = visit(at=now - timedelta(days=20)), visit(at=now - timedelta(days=40)), \
            card_payment(at=now - timedelta(days=40))
        result = await ingest(events_service(db), [recent, old, old_payment])
        assert (result.accepted_count, result.rejected_count) == (2, 1)
        rejection = result.rejections[0]
        assert (rejection.event_id, rejection.problem.reason) == (old.event_id, "OUTSIDE_RETENTION")
        assert "30-day" in rejection.problem.description
        assert await stored(db, [old]) == 0
        # A legal floor above the policy keeps the event, so it is accepted.
        floored = events_service(db, retention_floors={DataClass.BEHAVIOUR: timedelta(days=60)})
        assert (await ingest(floored, [old])).accepted_count == 1
        # Counted from the end of the relationship instead, an event's age does not matter.
        await set_policy(db, DataClass.BEHAVIOUR, days=30, anchor=RetentionAnchor.RELATIONSHIP_END)
        ancient = visit(at=now - timedelta(days=5 * 365))
        assert (await ingest(events_service(db), [ancient])).accepted_count == 1
    finally:
        await set_policy(db, DataClass.BEHAVIOUR, days=3 * 365)


async def test_a_batch_with_ids_accepted_before_counts_them_as_duplicates_and_stores_the_rest(db: Database) -> None:
    events = events_service(db)
    first = [visit(), visit()]
    assert (await ingest(events, first)).accepted_count == 2
    new = [visit(), visit()]
    result = await ingest(events, [first[1], new[0]], [new[1]])
    assert (result.accepted_count, result.duplicate_count, result.rejected_count) == (2, 1, 0)
    assert await stored(db, first, new) == 3 * 4
