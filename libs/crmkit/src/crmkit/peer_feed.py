"""Follow a peer service's change feed into a local read model, in the background.

This is how one service learns another's facts (DESIGN.md: services talk only through contracts,
read models come from change feeds). `crmkit.feed_consumer.FeedConsumer` does the exactly-once
part (the cursor is stored in the apply's transaction); this module adds what every follower of a
*peer* needs around it, written once:

- a channel to the peer with the service's own identity (`ServiceToken`, role SERVICE) and the
  peer's `WatchChanges` opened with the resource types the model reads;
- start-up that never waits for the peer: the follower is a task, so the service serves (on a
  stale model) while the peer is down, and health stays SERVING: the model is behind, not wrong;
- how current the model is: the time of the newest event applied, stored with the cursor
  (`feed_cursor.event_at`), in health details (`<feed>_feed_as_of`, `<feed>_feed_lag_seconds`,
  `<feed>_feed_connected`, `<feed>_feed_expired`) and in the `peer_feed.lag` gauge;
- the one error that needs the service's own answer: the peer purged events this model never
  applied (FAILED_PRECONDITION `CURSOR_EXPIRED`). The follower stops and calls `on_expired`, which
  starts the service's rebuild from the peer's List RPCs; any other refusal (identity, access) is
  a configuration to fix, logged, and the service serves on.

Every service's `WatchChangesRequest` has the same two fields (`after_cursor`, `resource_types`),
so a `PeerFeed` names the generated stub and request type and nothing else differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry import metrics
from sqlalchemy.ext.asyncio import AsyncConnection

from crmkit.auth import Role, service_token
from crmkit.channels import open_channel
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent, FeedConsumer
from crmkit.logs import get_logger
from crmkit.settings import ServiceSettings

log = get_logger("crm.peer_feed")

ApplyEvent = Callable[[AsyncConnection, ChangeEvent], Awaitable[bool]]
"""Applies one event inside the consumer's transaction; True when it changed the model."""
AfterApply = Callable[[AsyncConnection, ChangeEvent], Awaitable[object]]
"""Runs after an event changed the model, in the same transaction (e.g. re-evaluating rules)."""
OnExpired = Callable[[], Awaitable[object] | None]
Snapshot = Callable[[grpc.aio.Channel], AsyncIterator[list[ChangeEvent]]]
"""The peer's current state read through its List RPCs, as events at the feed's start position."""
Clear = Callable[[AsyncConnection], Awaitable[object]]
"""Empties the read model (inside the rebuild's first transaction)."""
Progress = Callable[[int], Awaitable[object]]

_TOKEN_LIFETIME_SECONDS = 3600
_meter = metrics.get_meter("crmkit.peer_feed")
_applied = _meter.create_counter("peer_feed.events", description="Peer change events that changed a read model")
_followers: weakref.WeakSet[PeerFeedFollower] = weakref.WeakSet()


def _observe_lag(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
    now = datetime.now(UTC)
    lags = ((follower.feed.name, lag_seconds(follower.last_as_of, now=now)) for follower in list(_followers))
    return [metrics.Observation(lag, {"feed": name}) for name, lag in lags if lag is not None]


# One gauge for every follower in the process (an instrument is created once per name).
_meter.create_observable_gauge("peer_feed.lag", callbacks=[_observe_lag], unit="s",
                               description="Age of the newest peer event a read model applied")


class ServiceToken:
    """A service's own identity towards its peers (role SERVICE), minted again before it expires."""

    def __init__(self, settings: ServiceSettings, *, subject: str) -> None:
        self._settings = settings
        self._subject = subject
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        if time.time() >= self._renew_at:
            # Signed with the service's own key in production, the shared secret elsewhere.
            self._token = service_token(self._settings, subject=self._subject, roles=[Role.SERVICE],
                                        lifetime_seconds=_TOKEN_LIFETIME_SECONDS)
            self._renew_at = time.time() + _TOKEN_LIFETIME_SECONDS / 2
        return self._token


def cursor_expired(error: grpc.aio.AioRpcError) -> bool:
    """Whether the peer refused the cursor because it purged events beyond it."""
    if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return False
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return False
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.reason == "CURSOR_EXPIRED":
            return True
    return False


def lag_seconds(as_of: datetime | None, *, now: datetime) -> float | None:
    """Seconds between the newest event applied and now; None before the first."""
    return None if as_of is None else max(0.0, (now - as_of).total_seconds())


@dataclass(frozen=True)
class PeerFeed:
    """Which feed to follow: its name (the cursor row, the health and metric label), where the
    peer listens, its generated stub and `WatchChangesRequest` type, and the resource types read."""

    name: str
    target: str
    stub: Callable[[grpc.aio.Channel], Any]
    request_type: Callable[..., Message]
    resource_types: Sequence[str] = ()


class PeerFeedFollower:
    def __init__(self, *, feed: PeerFeed, db: Database, cursors: sa.Table, apply: ApplyEvent,
                 token_source: Callable[[], str], deadline_seconds: float, tls_ca_file: str | None = None,
                 max_backoff_seconds: float = 10.0, after_apply: AfterApply | None = None,
                 on_expired: OnExpired | None = None) -> None:
        self.feed = feed
        self._db = db
        self._apply_event = apply
        self._after_apply = after_apply
        self._on_expired = on_expired
        self._channel = open_channel(feed.target, deadline_seconds=deadline_seconds, token_source=token_source,
                                     tls_ca_file=tls_ca_file)
        self._stub = feed.stub(self._channel)
        self.consumer = FeedConsumer(name=feed.name, db=db, cursors=cursors, open_stream=self._open_stream,
                                     apply=self._apply, max_backoff_seconds=max_backoff_seconds)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.expired = False
        self.last_as_of: datetime | None = None
        _followers.add(self)

    def start(self) -> None:
        if not self._closed:  # a rebuild that ends after the service closed starts nothing
            self._task = asyncio.create_task(self._follow(), name=f"{self.feed.name}-feed")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._channel.close()

    async def rebuild(self, *, clear: Clear, snapshot: Snapshot, progress: Progress | None = None) -> int:
        """Rebuild the model from the peer's current state, then follow again from the oldest
        event the peer retains; returns how many snapshot events changed the model.

        Why this converges: snapshot events carry the feed's start position, so every retained
        event replayed afterwards is newer and wins, in feed order, and each event carries the
        whole resource, so the last one applied per resource is its current state. While it runs
        the model is incomplete (health: `<feed>_feed_expired` stays true until it ends).
        """
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        c = self.consumer.cursors.c
        async with self._db.unit_of_work() as uow:
            await clear(uow)
            await uow.execute(sa.delete(self.consumer.cursors).where(c.feed == self.feed.name))
        changed = 0
        async for batch in snapshot(self._channel):
            async with self._db.unit_of_work() as uow:
                for event in batch:
                    changed += await self._apply(uow, event)
            if progress is not None:
                await progress(changed)
        self.expired = False
        log.info("peer_feed_rebuilt", feed=self.feed.name, changed=changed)
        self.start()
        return changed

    async def as_of(self) -> datetime | None:
        """When the newest event this model applied happened (stored with the cursor)."""
        self.last_as_of = await self.consumer.event_at()
        return self.last_as_of

    async def details(self) -> dict[str, object]:
        """Health details: how current the model is and whether the peer's feed is connected."""
        name = self.feed.name
        as_of = await self.as_of()
        lag = lag_seconds(as_of, now=datetime.now(UTC))
        return {
            f"{name}_feed_as_of": as_of.isoformat() if as_of else "",
            f"{name}_feed_lag_seconds": round(lag, 3) if lag is not None else None,
            f"{name}_feed_connected": self.consumer.connected.is_set(),
            f"{name}_feed_expired": self.expired,
        }

    async def _follow(self) -> None:
        try:
            await self.consumer.run()
        except grpc.aio.AioRpcError as error:
            if cursor_expired(error):
                self.expired = True
                log.error("peer_feed_cursor_expired", feed=self.feed.name, action="rebuild from the peer's List RPCs")
                if self._on_expired is not None:
                    pending = self._on_expired()
                    if pending is not None:
                        await pending
            else:  # refused (identity, access): a configuration to fix; the service serves on
                log.error("peer_feed_stopped", feed=self.feed.name, code=error.code().name)

    async def _open_stream(self, after: str) -> AsyncIterator[list[ChangeEvent]]:
        request = self.feed.request_type(after_cursor=after, resource_types=list(self.feed.resource_types))
        async for response in self._stub.WatchChanges(request):
            yield list(response.events)

    async def _apply(self, connection: AsyncConnection, event: ChangeEvent) -> bool:
        if not await self._apply_event(connection, event):
            return False
        _applied.add(1, {"feed": self.feed.name})
        if self._after_apply is not None:
            await self._after_apply(connection, event)
        return True
