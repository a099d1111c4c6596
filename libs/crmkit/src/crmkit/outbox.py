"""Transactional outbox and the change feed served from it.

A service appends a ChangeEvent row in the same transaction as the change it describes; the
`WatchChanges` RPC streams rows in cursor order from just after the consumer's cursor.

Why cursor order is commit order: `append` takes a transaction-level advisory lock before it
draws the cursor from the sequence, so a transaction that drew cursor N has committed (or rolled
back) before any other draws N+1. A reader that has seen cursor N can therefore never later
find a smaller cursor appear, and a consumer that stores its cursor misses nothing. The lock is
held from the append to the commit; services append last in their unit of work.

Two ways in. `Outbox.append`/`append_many` add a few events inside a SQLAlchemy unit of work.
Bulk and hot paths on a raw asyncpg connection append every row a query yields in one statement:
`bulk_append` (inside the caller's transaction, which commits right after) or
`bulk_append_and_commit_statement` (lock, append and COMMIT as one round trip, for callers that
stage their rows first and want the lock held for no longer than PostgreSQL takes to run them).
Both take the same lock, so cursor order stays commit order whichever way a service appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from opentelemetry import trace
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crmkit.db import Database
from crmkit.errors import FailedPrecondition, FieldViolation, InvalidArgument

ChangeType = change_event_pb2.ChangeType
# Arbitrary but fixed key of the advisory lock that orders outbox appends (per database). Private:
# appenders go through `Outbox`, `bulk_append` or `bulk_append_and_commit_statement`.
_OUTBOX_LOCK_KEY = 0x43524D4F5554  # "CRMOUT"
MAX_BATCH = 500

# What each row of a bulk append's query gives, in this order; the cursor, the event id and the
# time are made by the outbox.
BULK_APPEND_COLUMNS = ("resource_type", "resource_name", "change_type", "payload", "actor", "trace_id")
_LOCK = f"SELECT pg_advisory_xact_lock({_OUTBOX_LOCK_KEY})"
# Bulk appends give their events time-ordered UUIDs (version 7, RFC 9562: the Unix time in
# milliseconds over a random version-4 UUID), which land at the right edge of the unique index on
# `event_id`: random ones land all over it, and once it outgrows the shared buffers every append
# reads and dirties a page of its own.
_ORDERED_EVENT_ID = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING "
    "substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid")


def outbox_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The outbox and its one-row state table, added to a service's metadata."""
    events = sa.Table(
        "outbox_event",
        metadata,
        sa.Column("cursor", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("resource_type", sa.Text, nullable=False),
        sa.Column("resource_name", sa.Text, nullable=False),
        sa.Column("change_type", sa.SmallInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False, server_default=""),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    state = sa.Table(
        "outbox_state",
        metadata,
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        # Every event with a cursor at or below this has been purged by retention.
        sa.Column("purged_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("singleton", name="singleton"),
    )
    return events, state


class Outbox:
    """Appends change events inside the caller's unit of work."""

    def __init__(self, events: sa.Table) -> None:
        self._events = events

    async def append(
        self, session: AsyncConnection, *, resource_name: str, change_type: int,
        payload: Message | None, actor: str, resource_type: str | None = None,
    ) -> None:
        """One event; `resource_type` defaults to the payload's type (give it for deletions)."""
        await self.append_many(session, [(resource_name, change_type, payload)], actor=actor,
                               resource_type=resource_type)

    async def append_many(
        self, session: AsyncConnection, changes: Sequence[tuple[str, int, Message | None]], *, actor: str,
        resource_type: str | None = None,
    ) -> None:
        if not changes:
            return
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_OUTBOX_LOCK_KEY)))
        trace_id = _current_trace_id()
        rows = []
        for resource_name, change_type, payload in changes:
            packed = any_pb2.Any()
            if payload is not None:
                packed.Pack(payload)
            rows.append({
                "event_id": uuid.uuid4(),
                "resource_type": resource_type or (payload.DESCRIPTOR.full_name if payload else ""),
                "resource_name": resource_name,
                "change_type": int(change_type),
                "payload": packed.SerializeToString(),
                "actor": actor,
                "trace_id": trace_id,
            })
        await session.execute(sa.insert(self._events), rows)


def _bulk_insert(rows: str, table: str) -> str:
    # The identity column numbers the rows in the order the subquery yields them.
    columns = ", ".join(BULK_APPEND_COLUMNS)
    return (f"INSERT INTO {table} (event_id, {columns}) "  # noqa: S608 - fixed names and the caller's query
            f"SELECT {_ORDERED_EVENT_ID}, {columns} FROM ({rows}) AS appended ({columns})")


async def bulk_append(connection: asyncpg.Connection, rows: str, *args: object, table: str = "outbox_event") -> int:
    """Append one change event per row of the query `rows`, in the order it yields them, inside the
    caller's transaction on a raw asyncpg connection; the number of events appended.

    `rows` is a SELECT giving BULK_APPEND_COLUMNS (resource type, resource name, change type, the
    encoded `google.protobuf.Any` payload, actor, trace id), with an ORDER BY when the order
    matters; `args` are its `$n` parameters. The outbox's lock is held from here until the
    transaction ends, so this is the last statement of the unit of work: commit right after.
    """
    if not connection.is_in_transaction():
        raise RuntimeError("bulk_append belongs inside the transaction of the change it describes")
    await connection.execute(_LOCK)
    status = await connection.execute(_bulk_insert(rows, table), *args)
    return int(status.rsplit(" ", 1)[-1])


def bulk_append_and_commit_statement(rows: str, *, table: str = "outbox_event") -> str:
    """SQL that takes the outbox's lock, appends one change event per row of the query `rows` (as
    `bulk_append` does) and commits the open transaction: one simple-protocol round trip, so the
    lock is held only while PostgreSQL runs the append and the commit, never while the caller's
    event loop is busy elsewhere.

    Run it with `connection.execute(statement)` as the end of a transaction begun with BEGIN;
    other statements may go before it in the same string. Simple protocol takes no parameters:
    `rows` must be literal SQL (typically a SELECT from a staging table the caller COPYed its
    rows into), never text built from input.
    """
    return f"{_LOCK};\n{_bulk_insert(rows, table)};\nCOMMIT"


class ChangeFeed:
    """Serves the outbox as a stream: the backlog first, then live changes by polling."""

    def __init__(self, db: Database, events: sa.Table, state: sa.Table, *,
                 poll_seconds: float = 0.25, batch_size: int = MAX_BATCH,
                 draining: asyncio.Event | None = None) -> None:
        self._db = db
        # Set when the server starts to drain: open streams end at once, so SIGTERM does not wait
        # out the grace period on them; consumers reconnect (to another replica) from their cursor.
        self._draining = draining or asyncio.Event()
        self._events = events
        self._state = state
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size

    async def stream(
        self, *, after_cursor: str, resource_types: Sequence[str] = (),
    ) -> AsyncIterator[list[change_event_pb2.ChangeEvent]]:
        after = parse_cursor(after_cursor)
        purged = await self._purged_through()
        if after_cursor and after < purged:
            raise FailedPrecondition(
                f"cursor {after} is older than the retained feed (purged through {purged}); resynchronise",
                reason="CURSOR_EXPIRED", metadata={"purged_through": str(purged)})
        while not self._draining.is_set():
            batch = await self.read(after=after, resource_types=resource_types)
            if batch:
                after = int(batch[-1].cursor)
                yield batch
                if len(batch) == self._batch_size:
                    continue
            with contextlib.suppress(TimeoutError):  # the poll interval passed without a drain
                await asyncio.wait_for(self._draining.wait(), timeout=self._poll_seconds)

    async def read(self, *, after: int, resource_types: Sequence[str] = ()) -> list[change_event_pb2.ChangeEvent]:
        e = self._events
        query = sa.select(e).where(e.c.cursor > after).order_by(e.c.cursor).limit(self._batch_size)
        if resource_types:
            query = query.where(e.c.resource_type.in_(list(resource_types)))
        async with self._db.unit_of_work(read_only=True) as session:
            rows = (await session.execute(query)).all()
        return [_to_event(row) for row in rows]

    async def _purged_through(self) -> int:
        async with self._db.unit_of_work(read_only=True) as session:
            value = await session.scalar(sa.select(self._state.c.purged_through))
        return int(value or 0)

    async def purge(self, *, retention: timedelta) -> int:
        """Drop events older than `retention`; consumers behind that get CURSOR_EXPIRED."""
        cutoff = datetime.now(UTC) - retention
        e, s = self._events, self._state
        async with self._db.unit_of_work() as session:
            last = await session.scalar(sa.select(sa.func.max(e.c.cursor)).where(e.c.occurred_at < cutoff))
            if last is None:
                return 0
            result = await session.execute(sa.delete(e).where(e.c.cursor <= last))
            await session.execute(
                pg.insert(s).values(singleton=True, purged_through=last).on_conflict_do_update(
                    index_elements=[s.c.singleton], set_={"purged_through": last}))
            return int(result.rowcount or 0)


def parse_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidArgument([FieldViolation("after_cursor", "must be a cursor returned by this feed")])
    return int(cursor)


def _to_event(row: sa.Row) -> change_event_pb2.ChangeEvent:
    payload = any_pb2.Any()
    payload.ParseFromString(row.payload)
    occurred = timestamp_pb2.Timestamp()
    occurred.FromDatetime(row.occurred_at)
    return change_event_pb2.ChangeEvent(
        cursor=str(row.cursor), event_id=str(row.event_id), resource_type=row.resource_type,
        resource_name=row.resource_name, change_type=row.change_type, occurred_at=occurred,
        payload=payload, actor=row.actor, trace_id=row.trace_id,
    )


def _current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
