"""`crmkit.peer_feed` against a real gRPC peer serving the kit's change feed on PostgreSQL: the
follower applies each event once across restarts, waits out a peer that is down, says how current
its model is, and hands CURSOR_EXPIRED (and only that) to the service's rebuild."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crmkit.db import Database, metadata
from crmkit.feed_consumer import ChangeEvent, feed_cursor_table
from crmkit.outbox import ChangeFeed, ChangeType, Outbox, outbox_tables
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, cursor_expired
from crmkit.testing import DatabaseFactory, eventually, free_port

WatchChangesResponse = profile_service_pb2.WatchChangesResponse
kit = metadata()
events, state = outbox_tables(kit)
cursors = feed_cursor_table(kit)
THING = "crm.test.v1.Thing"
applied_table = sa.Table("applied", kit, sa.Column("n", sa.BigInteger, sa.Identity(), primary_key=True),
                         sa.Column("resource_name", sa.Text, nullable=False))


@pytest.fixture
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("peer_feed"))
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    yield database
    await database.dispose()


class Peer(profile_service_pb2_grpc.ProfileServiceServicer):
    """A peer serving WatchChanges from the kit's feed, or refusing with a chosen status."""

    def __init__(self, db: Database) -> None:
        self.feed = ChangeFeed(db, events, state, poll_seconds=0.02)
        self.refusal: status_pb2.Status | None = None
        self.requests: list[profile_service_pb2.WatchChangesRequest] = []

    async def WatchChanges(self, request: profile_service_pb2.WatchChangesRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[WatchChangesResponse]:
        self.requests.append(request)
        if self.refusal is not None:
            await context.abort_with_status(rpc_status.to_status(self.refusal))
        async for batch in self.feed.stream(after_cursor=request.after_cursor,
                                            resource_types=list(request.resource_types)):
            yield WatchChangesResponse(events=batch)


@contextlib.asynccontextmanager
async def serving(peer: Peer, port: int) -> AsyncIterator[None]:
    server = grpc.aio.server()
    profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(peer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield
    finally:
        await server.stop(grace=None)


async def append(db: Database, *names: str) -> None:
    async with db.unit_of_work() as uow:
        for name in names:
            await Outbox(events).append(uow, resource_name=name, change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                        payload=None, actor="tester", resource_type=THING)


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """The model keeps `kept/` resources only; others change nothing (and still move the cursor)."""
    if not event.resource_name.startswith("kept/"):
        return False
    await connection.execute(sa.insert(applied_table).values(resource_name=event.resource_name))
    return True


def follower(db: Database, port: int, **kwargs: object) -> PeerFeedFollower:
    feed = PeerFeed(name="peer", target=f"127.0.0.1:{port}", stub=profile_service_pb2_grpc.ProfileServiceStub,
                    request_type=profile_service_pb2.WatchChangesRequest, resource_types=(THING,))
    return PeerFeedFollower(feed=feed, db=db, cursors=cursors, apply=apply, token_source=lambda: "token",
                            deadline_seconds=2.0, max_backoff_seconds=0.2, **kwargs)  # type: ignore[arg-type]


async def applied(db: Database) -> list[str]:
    async with db.unit_of_work(read_only=True) as uow:
        return list((await uow.scalars(sa.select(applied_table.c.resource_name).order_by(applied_table.c.n))).all())


async def test_a_follower_applies_each_peer_event_once_across_restarts_and_says_how_current_it_is(
        db: Database) -> None:
    peer, port = Peer(db), free_port()
    await append(db, "kept/1", "skipped/2", "kept/3")
    async with serving(peer, port):
        first = follower(db, port)
        first.start()
        assert await eventually(lambda: applied(db), until=lambda rows: len(rows) == 2) == ["kept/1", "kept/3"]
        details = await eventually(first.details, until=lambda d: d["peer_feed_connected"])
        as_of = datetime.fromisoformat(str(details["peer_feed_as_of"]))
        assert (datetime.now(UTC) - as_of).total_seconds() < 60, "as of the newest event applied"
        assert isinstance(details["peer_feed_lag_seconds"], float)
        assert details["peer_feed_expired"] is False
        assert peer.requests[0].resource_types == [THING], "the followed types reach the peer"
        await first.close()

        await append(db, "kept/4")
        second = follower(db, port)
        second.start()
        rows = await eventually(lambda: applied(db), until=lambda rows: len(rows) == 3)
        assert rows == ["kept/1", "kept/3", "kept/4"], "a restart resumes after the stored cursor"
        assert peer.requests[-1].after_cursor, "and asks the peer for what follows it"
        await second.close()


async def test_a_follower_waits_out_a_peer_that_is_down_and_then_catches_up(db: Database) -> None:
    peer, port = Peer(db), free_port()
    await append(db, "kept/1")
    waiting = follower(db, port)
    waiting.start()
    await asyncio.sleep(0.3)
    details = await waiting.details()
    assert details["peer_feed_connected"] is False
    assert details["peer_feed_as_of"] == "" and details["peer_feed_lag_seconds"] is None
    async with serving(peer, port):
        assert await eventually(lambda: applied(db), until=lambda rows: len(rows) == 1) == ["kept/1"]
    await waiting.close()


def _refusal(code: int, reason: str) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="profile.crm"))
    return status_pb2.Status(code=code, message="refused", details=[detail])


async def test_cursor_expired_hands_over_to_the_rebuild_and_other_refusals_do_not(db: Database) -> None:
    peer, port = Peer(db), free_port()
    peer.refusal = _refusal(code_pb2.FAILED_PRECONDITION, "CURSOR_EXPIRED")
    rebuilds: list[str] = []
    async with serving(peer, port):
        expired = follower(db, port, on_expired=lambda: rebuilds.append("rebuild"))
        expired.start()
        await eventually(lambda: list(rebuilds), until=lambda calls: calls == ["rebuild"])
        assert (await expired.details())["peer_feed_expired"] is True
        await expired.close()

        peer.refusal = _refusal(code_pb2.FAILED_PRECONDITION, "SOMETHING_ELSE")
        refused = follower(db, port, on_expired=lambda: rebuilds.append("wrong"))
        refused.start()
        await eventually(lambda: len(peer.requests), until=lambda n: n >= 2)
        await asyncio.sleep(0.2)
        assert rebuilds == ["rebuild"] and (await refused.details())["peer_feed_expired"] is False
        await refused.close()


def test_only_a_failed_precondition_naming_cursor_expired_counts_as_expired() -> None:
    class Error(grpc.aio.AioRpcError):
        def __init__(self, status: status_pb2.Status) -> None:
            grpc_status = rpc_status.to_status(status)
            super().__init__(grpc_status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*grpc_status.trailing_metadata),
                             details=status.message)

    assert cursor_expired(Error(_refusal(code_pb2.FAILED_PRECONDITION, "CURSOR_EXPIRED")))
    assert not cursor_expired(Error(_refusal(code_pb2.FAILED_PRECONDITION, "ETAG_MISMATCH")))
    assert not cursor_expired(Error(_refusal(code_pb2.UNAVAILABLE, "CURSOR_EXPIRED")))


async def test_a_batch_that_fails_to_apply_is_retried_and_the_follower_lives_on(db: Database) -> None:
    """A deadlock or an outage while applying rolls the batch back: the follower says it is not
    connected meanwhile (its model is not current), asks for the batch again, and applies it once."""
    peer, port = Peer(db), free_port()
    await append(db, "kept/1", "kept/2")
    failures = [RuntimeError("deadlock detected")] * 2

    async def failing_twice(connection: AsyncConnection, event: ChangeEvent) -> bool:
        if failures:
            raise failures.pop()
        return await apply(connection, event)

    feed = PeerFeed(name="peer", target=f"127.0.0.1:{port}", stub=profile_service_pb2_grpc.ProfileServiceStub,
                    request_type=profile_service_pb2.WatchChangesRequest, resource_types=(THING,))
    flaky = PeerFeedFollower(feed=feed, db=db, cursors=cursors, apply=failing_twice, token_source=lambda: "token",
                             deadline_seconds=2.0, max_backoff_seconds=0.2)
    async with serving(peer, port):
        flaky.start()
        assert await eventually(lambda: applied(db), until=lambda rows: len(rows) == 2) == ["kept/1", "kept/2"]
        assert failures == [] and len(peer.requests) == 3  # two failed batches, asked for again from the cursor
        await append(db, "kept/3")
        assert (await eventually(lambda: applied(db), until=lambda rows: len(rows) == 3))[-1] == "kept/3"
        await flaky.close()
