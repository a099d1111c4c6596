"""Transactional outbox and the change feed served from it.

A service appends a ChangeEvent row in the same transaction as the change it describes; the
`WatchChanges` RPC streams rows in cursor order from just after the consumer's cursor.

Appending. One per-event API, `Outbox.append`/`append_many`, inside a SQLAlchemy unit of work;
and one bulk variant for raw asyncpg connections, `bulk_append`: one event per row a SELECT
yields, in one statement, inside the caller's transaction. Neither takes a lock nor commits: the
caller's unit of work commits, and appenders never wait for one another.

Wake-ups. Streams poll (`ChangeFeed` `poll_seconds`), and a unit of work that appended wakes
this process's streams when it commits (`FeedWakeup`), so a change reaches a live consumer of
the same replica without waiting out the poll. Not PostgreSQL's LISTEN/NOTIFY: a transaction that
notified takes one server-wide lock at commit, which would serialise the commits of a busy service;
what another replica or a raw `bulk_append` commits is found by the poll.

Positions. Every row is stamped with the id of the transaction that wrote it (`xid`, an xid8
from `pg_current_xact_id()`, the column's default) and numbered by an identity (`cursor`, the
sequence). The feed is ordered by (xid, sequence), and a cursor is the opaque string
`"<xid>.<sequence>"` of the last event a consumer got (`encode_cursor`, `parse_cursor`).

Why a stored cursor misses nothing and sees nothing twice. A read serves only rows whose xid is
below a bound B such that every transaction of this database with an xid below B has ended, and
every transaction that can still commit rows has an xid >= B (so its rows sort after everything
served). B comes from a first statement, and the rows from a second one, both READ COMMITTED
(the default: each statement takes its own snapshot, the second after the first finished), in a
transaction of their own (`ChangeFeed.read` opens a read-only unit of work per read):

1. Statement one takes its snapshot S1 and then reads `pg_stat_activity`. B is the least of
   S1's xmax (every xid below it was assigned before S1) and the xid of every session of
   `current_database()` still running a transaction (`backend_xid`), and of every prepared
   transaction of this database (`pg_prepared_xacts`, which no session shows).
2. Take a transaction T of this database with xid X < B. X < xmax(S1), so T had its xid, and
   PostgreSQL had published it in T's process entry (set under XidGenLock at assignment),
   before S1. If T was still running when statement one read the activity view, B <= X: a
   contradiction. So T had ended (left the process array, which is what the view reads) before
   statement one finished, hence before statement two's snapshot: its rows are visible to
   statement two if it committed, and never exist if it rolled back.
3. A transaction still running, or begun later, has an xid >= B (it was in the view, or its xid
   is assigned after S1 and so is >= xmax(S1) >= B): its rows sort after every row served.

One statement could not do this: its snapshot is taken before it reads the view, and a
transaction that commits in between would be in neither. The view must be read fresh by
statement one: PostgreSQL caches it for the rest of a transaction after its first read, so
statement one is the transaction's first look at it (a new unit of work per read).

Transaction ids are cluster-wide; B only looks at this database's sessions, so a long
transaction in another database on the same server (an import's merge in profile's database)
does not hold back this feed. `backend_xid` is the 32-bit form; it is widened to xid8 relative
to S1's xmax (a running xid is within 2^31 of it). PostgreSQL shows `backend_xid` of every
session to every role; were the view hidden from the service's login (no own session in it,
or no right to read it), B falls back to S1's xmin, the oldest transaction still running
anywhere on the server: always safe, only slower to advance.

Order. Events come in (xid, sequence) order: a transaction's events in the order it appended
them, and a transaction's events after those of every transaction whose xid is lower. Nothing
is served before it is visible to a reader, and an event is never followed by one that was
already visible when it was served. A transaction gets its xid at its first write: one that
writes elsewhere first, then changes a resource another transaction changed and committed
meanwhile, can have the lower xid, so its (newer) event of that resource is served first. A
writer that needs its events of one resource in commit order locks or changes the resource's
row (which assigns the xid) before its other writes.

Old cursors. A purely numeric cursor (from before the xid stamp, or a sequence number read
from the table) names the event with that sequence number: it resumes just after that event.
Rows written before the change carry xid 0 and were committed in sequence order (under the
lock the outbox took then), so such a cursor resumes exactly where it left off. A number that
names no retained event resumes after the pre-change rows, or gets CURSOR_EXPIRED when
retention has purged past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import asyncpg
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from opentelemetry import trace
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crmkit import attributes
from crmkit.db import Database, after_commit
from crmkit.errors import FailedPrecondition, FieldViolation, InvalidArgument

ChangeType = change_event_pb2.ChangeType
MAX_BATCH = 500

# What each row of a bulk append's query gives, in this order; the position, the event id and
# the time are made by the outbox.
BULK_APPEND_COLUMNS = ("resource_type", "resource_name", "change_type", "payload", "actor", "trace_id")
# Bulk appends give their events time-ordered UUIDs (version 7, RFC 9562: the Unix time in
# milliseconds over a random version-4 UUID), which land at the right edge of the unique index on
# `event_id`: random ones land all over it, and once it outgrows the shared buffers every append
# reads and dirties a page of its own.
_ORDERED_EVENT_ID = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING "
    "substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid")
# The bound B of the module docstring, as a bigint (xid8 values stay far below 2^63). A running
# 32-bit xid x is widened to the xid8 within 2^31 of S1's xmax n (2^32 + 2^31 keeps the
# remainder's dividend positive).
_VISIBLE_BELOW = """
    WITH s1 AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS n,
                       pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS oldest),
    running AS (
        SELECT backend_xid::text::bigint AS x FROM pg_stat_activity
        WHERE datname = current_database() AND backend_xid IS NOT NULL
        UNION ALL
        SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE database = current_database()
    )
    SELECT CASE WHEN EXISTS (SELECT FROM pg_stat_activity
                             WHERE pid = pg_backend_pid() AND datname = current_database())
           THEN least(s1.n, (SELECT min(s1.n + (x - s1.n % 4294967296 + 6442450944) % 4294967296 - 2147483648)
                             FROM running))
           ELSE s1.oldest END
    FROM s1
"""
# The fallback bound: the oldest transaction still running anywhere on the server.
_OLDEST_RUNNING = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")
_LEGACY_CURSOR = re.compile(r"[0-9]{1,19}")


class Position(NamedTuple):
    """Where an event sits in the feed: its transaction's id, then its sequence number."""

    xid: int
    seq: int


START = Position(0, 0)


class Xid8(sa.types.UserDefinedType):
    """PostgreSQL's 64-bit transaction id; only ever written by its column default."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "xid8"


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
        sa.Column("xid", Xid8, nullable=False, server_default=sa.text("pg_current_xact_id()")),
        sa.Index("ix_outbox_event_xid_cursor", "xid", "cursor"),
    )
    state = sa.Table(
        "outbox_state",
        metadata,
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        # Every event at or before (purged_xid, purged_through) has been purged by retention.
        sa.Column("purged_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("purged_xid", Xid8, nullable=False, server_default=sa.text("'0'::xid8")),
        sa.CheckConstraint("singleton", name="singleton"),
    )
    return events, state


class FeedWakeup:
    """Wakes this process's open `ChangeFeed` streams when a unit of work that appended events
    commits, so a live consumer gets them at once rather than at the next poll. The poll stays:
    it finds what other replicas and raw-connection `bulk_append`s commit. One per process (a
    wake-up for another service's feed in the same test process costs one empty read)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def armed(self) -> asyncio.Event:
        """The event the next `notify` sets: take it before reading, wait on it after, and a
        commit in between is not missed."""
        return self._event

    @staticmethod
    async def wait(armed: asyncio.Event, *, timeout: float) -> None:
        """Until `armed` (from `armed()`) is set by a commit, or `timeout` seconds passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(armed.wait(), timeout=timeout)


FEED_COMMITTED = FeedWakeup()


class Outbox:
    """Appends change events inside the caller's unit of work (which commits them)."""

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
        """Events (resource name, change type, payload) in this order, all by `actor`."""
        if not changes:
            return
        trace_id = current_trace_id()
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
        after_commit(session, FEED_COMMITTED.notify)


async def bulk_append(connection: asyncpg.Connection, rows: str, *args: object, table: str = "outbox_event") -> int:
    """Append one change event per row of the query `rows`, in the order it yields them, inside the
    caller's transaction on a raw asyncpg connection; the number of events appended.

    `rows` is a SELECT giving BULK_APPEND_COLUMNS (resource type, resource name, change type, the
    encoded `google.protobuf.Any` payload, actor, trace id), with an ORDER BY when the order
    matters; `args` are its `$n` parameters. It takes no lock, so it may go anywhere in the unit
    of work; the caller commits.
    """
    if not connection.is_in_transaction():
        raise RuntimeError("bulk_append belongs inside the transaction of the change it describes")
    # The identity column numbers the rows in the order the subquery yields them.
    columns = ", ".join(BULK_APPEND_COLUMNS)
    status = await connection.execute(
        f"INSERT INTO {table} (event_id, {columns}) "  # noqa: S608 - fixed names and the caller's query
        f"SELECT {_ORDERED_EVENT_ID}, {columns} FROM ({rows}) AS appended ({columns})", *args)
    return int(status.rsplit(" ", 1)[-1])


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
        after = await self.resolve(after_cursor)
        purged = await self._purged_through()
        if after_cursor and after < purged:
            raise FailedPrecondition(
                f"cursor {after_cursor} is older than the retained feed (purged through "
                f"{encode_cursor(purged)}); resynchronise",
                reason="CURSOR_EXPIRED", metadata={"purged_through": encode_cursor(purged)})
        # The stream's span says where it started and, when it ends, how many events it served
        # and the cursor it reached: enough to tell a stalled consumer from an idle feed.
        span = trace.get_current_span()
        span.set_attribute(attributes.FEED_CURSOR, after_cursor)
        served = 0
        while not self._draining.is_set():
            committed = FEED_COMMITTED.armed()
            batch = await self.read(after=after, resource_types=resource_types)
            if batch:
                after = parse_cursor(batch[-1].cursor)
                served += len(batch)
                span.set_attributes({attributes.FEED_EVENTS: served, attributes.FEED_CURSOR: batch[-1].cursor})
                yield batch
                if len(batch) == self._batch_size:
                    continue
            await _first_of(self._draining, committed, timeout=self._poll_seconds)

    async def resolve(self, cursor: str) -> Position:
        """The position a cursor names; a purely numeric one (module docstring: old cursors) is
        looked up by its sequence number."""
        position = parse_cursor(cursor)
        if not _LEGACY_CURSOR.fullmatch(cursor) or position == START:
            return position
        e = self._events
        async with self._db.unit_of_work(read_only=True) as connection:
            xid = await connection.scalar(sa.select(sa.cast(sa.cast(e.c.xid, sa.Text), sa.BigInteger))
                                          .where(e.c.cursor == position.seq))
        return Position(int(xid or 0), position.seq)

    async def read(self, *, after: Position | str = START,
                   resource_types: Sequence[str] = ()) -> list[change_event_pb2.ChangeEvent]:
        """The next events after `after` that no transaction still running can precede."""
        if isinstance(after, str):
            after = await self.resolve(after)
        async with self._db.unit_of_work(read_only=True) as connection:
            rows = await read_visible(connection, self._events, after=after, limit=self._batch_size,
                                      resource_types=resource_types)
        return [_to_event(row) for row in rows]

    async def _purged_through(self) -> Position:
        s = self._state
        async with self._db.unit_of_work(read_only=True) as connection:
            row = (await connection.execute(
                sa.select(sa.cast(sa.cast(s.c.purged_xid, sa.Text), sa.BigInteger), s.c.purged_through))).first()
        return Position(int(row[0]), int(row[1])) if row is not None else START

    async def purge(self, *, retention: timedelta) -> int:
        """Drop events older than `retention`; consumers behind that get CURSOR_EXPIRED.

        Only events below the visibility bound go: one of a transaction still running may sort
        before them, and would otherwise land behind the purge line after its commit."""
        cutoff = datetime.now(UTC) - retention
        e, s = self._events, self._state
        async with self._db.unit_of_work(read_only=True) as connection:
            bound = await visible_below(connection)
        xid = sa.cast(sa.cast(e.c.xid, sa.Text), sa.BigInteger)
        async with self._db.unit_of_work() as session:
            last = (await session.execute(
                sa.select(xid, e.c.cursor).where(e.c.occurred_at < cutoff, xid < bound)
                .order_by(e.c.xid.desc(), e.c.cursor.desc()).limit(1))).first()
            if last is None:
                return 0
            through = Position(int(last[0]), int(last[1]))
            result = await session.execute(sa.delete(e).where(_up_to(e, through)))
            values = {"purged_xid": sa.cast(sa.cast(str(through.xid), sa.Text), Xid8),
                      "purged_through": through.seq}
            await session.execute(
                pg.insert(s).values(singleton=True, **values).on_conflict_do_update(
                    index_elements=[s.c.singleton], set_=values))
            return int(result.rowcount or 0)


async def visible_below(connection: AsyncConnection) -> int:
    """The bound B of the module docstring. `connection` is READ COMMITTED (each statement its own
    snapshot), and this is its transaction's first read of the activity view (cached after it)."""
    try:
        return int(await connection.scalar(sa.text(_VISIBLE_BELOW)))
    except sa.exc.ProgrammingError:  # the activity view is not readable by this login
        return int(await connection.scalar(sa.text(_OLDEST_RUNNING)))


async def read_visible(connection: AsyncConnection, events: sa.Table, *, after: Position, limit: int,
                       resource_types: Sequence[str] = ()) -> Sequence[sa.Row]:
    """Up to `limit` rows after `after`, in feed order, below the visibility bound: the bound in
    one statement, the rows in the next (see the module docstring for why two)."""
    bound = await visible_below(connection)
    e = events
    shown = [c for c in e.c if c.name != "xid"]
    query = (sa.select(*shown, sa.cast(sa.cast(e.c.xid, sa.Text), sa.BigInteger).label("xid_number"))
             .where(~_up_to(e, after),
                    e.c.xid < sa.cast(sa.cast(str(bound), sa.Text), Xid8))
             .order_by(e.c.xid, e.c.cursor).limit(limit))
    if resource_types:
        query = query.where(e.c.resource_type.in_(list(resource_types)))
    return (await connection.execute(query)).all()


def _up_to(e: sa.Table, position: Position) -> sa.ColumnElement[bool]:
    """Rows at or before `position` in feed order."""
    at = sa.tuple_(sa.cast(sa.cast(str(position.xid), sa.Text), Xid8), sa.literal(position.seq, sa.BigInteger))
    return sa.tuple_(e.c.xid, e.c.cursor) <= at


def encode_cursor(position: Position) -> str:
    return f"{position.xid}.{position.seq}" if position != START else ""


# A sequence number never reaches this, so xid * span + seq orders positions as (xid, seq) does.
_SEQ_SPAN = 10**19


def feed_order(cursor: str) -> int:
    """An event cursor's position as one integer in feed order (NUMERIC in a table): what a read
    model stores beside each part it writes, so only a newer event overwrites it."""
    position = parse_cursor(cursor)
    return position.xid * _SEQ_SPAN + position.seq


def parse_cursor(cursor: str) -> Position:
    """The position a cursor names ("" is the start); INVALID_ARGUMENT on `after_cursor` for
    anything this feed never issued. A purely numeric cursor is taken as before the xid stamp."""
    if not cursor:
        return START
    if matched := _CURSOR.fullmatch(cursor):
        return Position(int(matched[1]), int(matched[2]))
    if _LEGACY_CURSOR.fullmatch(cursor):
        return Position(0, int(cursor))
    raise InvalidArgument([FieldViolation("after_cursor", "must be a cursor returned by this feed")])


def _to_event(row: sa.Row) -> change_event_pb2.ChangeEvent:
    payload = any_pb2.Any()
    payload.ParseFromString(row.payload)
    occurred = timestamp_pb2.Timestamp()
    occurred.FromDatetime(row.occurred_at)
    return change_event_pb2.ChangeEvent(
        cursor=encode_cursor(Position(row.xid_number, row.cursor)), event_id=str(row.event_id),
        resource_type=row.resource_type, resource_name=row.resource_name, change_type=row.change_type,
        occurred_at=occurred, payload=payload, actor=row.actor, trace_id=row.trace_id,
    )


def current_trace_id() -> str:
    """The W3C trace id of the call being served (32 lower-case hex), or "" when not traced: what
    outbox rows and other records of a decision carry."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Return when one of `events` is set or `timeout` seconds passed, whichever comes first."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
