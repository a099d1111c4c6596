"""The consuming side of a change feed: follow a peer's `WatchChanges`, apply each event and
store the cursor in the same transaction, and resume after restarts of either side.

Exactly-once effect from at-least-once delivery: the cursor is committed together with the
event's effect, so after a crash the consumer resumes after the last event it applied; an event
redelivered anyway (the peer resent a batch) is skipped because its cursor is not beyond the
stored one. Cursors are the feed's opaque strings, compared by the position they name
(`crmkit.outbox.parse_cursor`); a numeric one stored before the feed's cursors became strings
keeps its meaning there.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import grpc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.outbox import parse_cursor

log = get_logger("crm.feed")

ChangeEvent = change_event_pb2.ChangeEvent
OpenStream = Callable[[str], AsyncIterator[list[ChangeEvent]]]
"""Opens the peer's feed after a cursor and yields its batches (wraps the generated stub)."""
Apply = Callable[[AsyncConnection, ChangeEvent], Awaitable[object]]
"""Applies one event inside the consumer's transaction."""

# Errors after which the consumer reconnects; anything else is a bug and stops it loudly.
RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def feed_cursor_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "feed_cursor",
        metadata,
        sa.Column("feed", sa.Text, primary_key=True),
        sa.Column("cursor", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        # When the newest applied event happened at the peer: how current the read model is.
        sa.Column("event_at", sa.DateTime(timezone=True)),
    )


class FeedConsumer:
    def __init__(self, *, name: str, db: Database, cursors: sa.Table, open_stream: OpenStream, apply: Apply,
                 max_backoff_seconds: float = 10.0) -> None:
        self.name = name
        self._db = db
        self.cursors = cursors
        self._open_stream = open_stream
        self._apply = apply
        self._max_backoff = max_backoff_seconds
        self.connected = asyncio.Event()

    async def cursor(self) -> str:
        """The cursor of the last event applied; "" before the first."""
        async with self._db.unit_of_work(read_only=True) as connection:
            value = await connection.scalar(sa.select(self.cursors.c.cursor).where(self.cursors.c.feed == self.name))
        return value or ""

    async def event_at(self) -> datetime | None:
        """When the newest event applied happened at the peer; None before the first."""
        async with self._db.unit_of_work(read_only=True) as connection:
            value: datetime | None = await connection.scalar(
                sa.select(self.cursors.c.event_at).where(self.cursors.c.feed == self.name))
        return value

    async def apply_batch(self, batch: list[ChangeEvent]) -> int:
        """Apply the events beyond the stored cursor, and advance it, in one transaction."""
        c = self.cursors.c
        async with self._db.unit_of_work() as connection:
            stored = await connection.scalar(sa.select(c.cursor).where(c.feed == self.name).with_for_update())
            stored = parse_cursor(stored or "")
            fresh = [event for event in batch if parse_cursor(event.cursor) > stored]
            for event in fresh:
                await self._apply(connection, event)
            if fresh:
                last = fresh[-1].cursor
                event_at = max(event.occurred_at.ToDatetime(tzinfo=UTC) for event in fresh)
                upsert = pg.insert(self.cursors).values(feed=self.name, cursor=last, event_at=event_at)
                await connection.execute(upsert.on_conflict_do_update(
                    index_elements=[c.feed], set_={"cursor": last, "updated_at": sa.func.now(),
                                                   "event_at": sa.func.greatest(c.event_at, event_at)}))
        return len(fresh)

    async def run(self) -> None:
        """Follow the feed until cancelled, reconnecting with jittered backoff."""
        backoff = 0.1
        while True:
            try:
                async for batch in self._open_stream(await self.cursor()):
                    self.connected.set()
                    backoff = 0.1
                    await self.apply_batch(batch)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RECONNECT_CODES:
                    log.error("feed_stopped", feed=self.name, code=exc.code().name)
                    raise
                log.info("feed_reconnecting", feed=self.name, code=exc.code().name, detail=exc.details(),
                         backoff_seconds=round(backoff, 2))
            except Exception as exc:
                # Applying a batch failed (the database unavailable or out of connections, a
                # deadlock, an event this model cannot take): its transaction rolled back and the
                # cursor stayed, so the batch is asked for again after the backoff. Never skipped,
                # and never the end of the follower: a follower that died here left its model
                # silently stale while health still said connected.
                log.error("feed_apply_failed", feed=self.name, error_type=type(exc).__name__,
                          backoff_seconds=round(backoff, 2))
            self.connected.clear()
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter, not security
            backoff = min(backoff * 2, self._max_backoff)
