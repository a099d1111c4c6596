"""The outbox under concurrent writers, on a real PostgreSQL: writers do not wait for one another,
and a consumer following the feed (`ChangeFeed` + `FeedConsumer`) sees every committed event
exactly once, in an order consistent with commit visibility, however slow and fast transactions
interleave and whatever runs in another database on the same server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crmkit.db import Database, metadata
from crmkit.feed_consumer import ChangeEvent, FeedConsumer, feed_cursor_table
from crmkit.outbox import ChangeFeed, ChangeType, Outbox, Position, outbox_tables, parse_cursor
from crmkit.settings import plain_database_url
from crmkit.testing import DatabaseFactory

kit = metadata()
events, state = outbox_tables(kit)
cursors = feed_cursor_table(kit)
# The follower's effect: one row per event applied, written in the transaction that stores its cursor.
applied_table = sa.Table("applied", kit, sa.Column("n", sa.BigInteger, sa.Identity(), primary_key=True),
                         sa.Column("resource_name", sa.Text, nullable=False),
                         sa.Column("cursor", sa.Text, nullable=False))
WRITERS = 16
PER_WRITER = 5
DEADLINE_SECONDS = 30.0


@pytest.fixture
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("outbox_race"), pool_size=WRITERS + 6)
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    yield database
    await database.dispose()


async def append(db: Database, name: str) -> None:
    async with db.unit_of_work() as session:
        await Outbox(events).append(session, resource_name=name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                    payload=None, actor="tester")


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


class Follower:
    """A FeedConsumer over the feed, recording what it applied; restartable from its stored cursor."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.feed = ChangeFeed(db, events, state, poll_seconds=0.01, batch_size=7)

        async def apply(connection: AsyncConnection, event: ChangeEvent) -> None:
            await connection.execute(sa.insert(applied_table).values(resource_name=event.resource_name,
                                                                     cursor=event.cursor))

        def open_stream(after: str) -> AsyncIterator[list[ChangeEvent]]:
            return self.feed.stream(after_cursor=after)

        self.consumer = FeedConsumer(name="follower", db=db, cursors=cursors, open_stream=open_stream, apply=apply)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.consumer.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def applied(self) -> list[tuple[str, str]]:
        """(resource name, cursor) of each event applied (committed), in the order applied."""
        async with self.db.unit_of_work(read_only=True) as session:
            rows = await session.execute(sa.select(applied_table.c.resource_name, applied_table.c.cursor)
                                         .order_by(applied_table.c.n))
        return [(row.resource_name, row.cursor) for row in rows]

    def has_applied(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(await self.applied()) >= count
        return check


@contextlib.asynccontextmanager
async def long_transaction_elsewhere(database_factory: DatabaseFactory) -> AsyncIterator[None]:
    """A transaction holding a transaction id in another database of the server (an import's
    merge next door), open for the whole block."""
    connection = await asyncpg.connect(plain_database_url(await database_factory.create("outbox_neighbour")))
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("CREATE TABLE busy (n int); INSERT INTO busy VALUES (1)")
        yield
        await transaction.rollback()
    finally:
        await connection.close()


async def test_slow_and_fast_writers_interleave_and_the_follower_sees_each_event_once_in_order(
    db: Database, database_factory: DatabaseFactory,
) -> None:
    follower = Follower(db)
    async with long_transaction_elsewhere(database_factory):
        # The neighbour's transaction is older than all of these: it must not hold them back.
        async with follower.running():
            for i in range(3):
                await append(db, f"early/{i}")
            await until(follower.has_applied(3), "the events committed beside another database's long transaction")

        # A slow transaction appends first (so it has the lowest transaction id of this phase),
        # then waits while many fast ones commit: they do not wait for it.
        slow_appended, release = asyncio.Event(), asyncio.Event()

        async def slow() -> None:
            async with db.unit_of_work() as session:
                await Outbox(events).append(session, resource_name="slow/1", change_type=ChangeType.CHANGE_TYPE_CREATED,
                                            payload=None, actor="tester")
                slow_appended.set()
                await release.wait()

        async def rolled_back() -> None:
            with contextlib.suppress(LookupError):
                async with db.unit_of_work() as session:
                    await Outbox(events).append(session, resource_name="undone/1",
                                                change_type=ChangeType.CHANGE_TYPE_CREATED, payload=None, actor="t")
                    raise LookupError("rolled back")

        async def fast(writer: int) -> None:
            for i in range(PER_WRITER):
                await append(db, f"fast/{writer}/{i}")

        slow_task = asyncio.create_task(slow())
        await slow_appended.wait()
        await asyncio.wait_for(asyncio.gather(rolled_back(), *(fast(w) for w in range(WRITERS))),
                               timeout=DEADLINE_SECONDS)
        # Every fast event is committed, but none may be served yet: the slow transaction, still
        # running, sorts before them; serving them now would move the cursor past it.
        assert await follower.feed.read(after=await follower.consumer.cursor()) == []

        release.set()
        await slow_task
        async with follower.running():  # a new run resumes from the stored cursor
            await until(follower.has_applied(4 + WRITERS * PER_WRITER), "every committed event")
        applied = await follower.applied()
    names = [name for name, _ in applied]

    fast_names = {f"fast/{w}/{i}" for w in range(WRITERS) for i in range(PER_WRITER)}
    assert len(names) == len(set(names)) == 4 + len(fast_names)
    assert set(names) == {"early/0", "early/1", "early/2", "slow/1", *fast_names}
    positions = [parse_cursor(cursor) for _, cursor in applied]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # Consistent with commit visibility: what was committed before a transaction began comes first.
    assert names[:4] == ["early/0", "early/1", "early/2", "slow/1"]
    for writer in range(WRITERS):
        mine = [n for n in names if n.startswith(f"fast/{writer}/")]
        assert mine == [f"fast/{writer}/{i}" for i in range(PER_WRITER)]
    assert await follower.consumer.cursor() == applied[-1][1]


async def test_a_position_is_the_writing_transaction_then_its_order_of_appends(db: Database) -> None:
    async with db.unit_of_work() as session:
        await Outbox(events).append_many(session, [(f"batch/{i}", ChangeType.CHANGE_TYPE_CREATED, None)
                                                   for i in range(3)], actor="tester")
    served = [e for e in await ChangeFeed(db, events, state).read() if e.resource_name.startswith("batch/")]
    positions = [parse_cursor(e.cursor) for e in served]
    assert [e.resource_name for e in served] == ["batch/0", "batch/1", "batch/2"]
    assert len({p.xid for p in positions}) == 1 and positions[0].xid > 0
    assert [p.seq for p in positions] == sorted(p.seq for p in positions)
    assert positions[0] > Position(0, 10**12)  # after every event written before the xid stamp
