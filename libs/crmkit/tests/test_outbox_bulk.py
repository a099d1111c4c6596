"""Bulk appends to the outbox on a raw asyncpg connection, on a real PostgreSQL: order, ids, and
the ordering lock held from the append to the commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from crmkit.db import Database, metadata
from crmkit.outbox import (
    ChangeFeed,
    ChangeType,
    Outbox,
    bulk_append,
    bulk_append_and_commit_statement,
    outbox_tables,
)
from crmkit.testing import DatabaseFactory, eventually

kit = metadata()
events, state = outbox_tables(kit)
STAGING = "bulk_staging"


@pytest.fixture(scope="module")
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("outbox_bulk"))
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    async with database.raw() as connection:
        await connection.execute(f"CREATE TABLE {STAGING} (line int, resource_name text, payload bytea)")
    yield database
    await database.dispose()


def packed(value: str) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(wrappers_pb2.StringValue(value=value))
    return wrapped.SerializeToString()


async def stage(db: Database, batch: str, names: list[str]) -> None:
    """Rows for a bulk append, inserted in the reverse of the order they are to be published in."""
    async with db.raw() as connection:
        await connection.executemany(
            f"INSERT INTO {STAGING} (line, resource_name, payload) VALUES ($1, $2, $3)",  # noqa: S608
            [(line, f"{batch}/{name}", packed(name)) for line, name in reversed(list(enumerate(names)))])


def rows_of(batch: str) -> str:
    return (f"SELECT 'google.protobuf.StringValue', resource_name, {int(ChangeType.CHANGE_TYPE_UPDATED)}, "  # noqa: S608
            f"payload, 'loader', '' FROM {STAGING} WHERE resource_name LIKE '{batch}/%' ORDER BY line")


async def published(db: Database, prefix: str) -> list[tuple[int, str, uuid.UUID]]:
    async with db.raw() as connection:
        rows = await connection.fetch(
            "SELECT cursor, resource_name, event_id FROM outbox_event WHERE resource_name LIKE $1 ORDER BY cursor",
            prefix + "%")
    return [(r["cursor"], r["resource_name"], r["event_id"]) for r in rows]


async def test_rows_are_appended_in_the_order_the_query_gives_them_and_read_back_by_the_feed(db: Database) -> None:
    names = [f"n{i}" for i in range(5)]
    await stage(db, "ordered", names)
    async with db.raw() as connection, connection.transaction():
        assert await bulk_append(connection, rows_of("ordered")) == 5
    appended = await published(db, "ordered/")
    assert [name for _, name, _ in appended] == [f"ordered/{n}" for n in names]
    ids = [event_id for _, _, event_id in appended]
    assert len(set(ids)) == 5 and {i.version for i in ids} == {7}  # time-ordered UUIDs
    changes = await ChangeFeed(db, events, state).read(after=appended[0][0] - 1)
    first = changes[0]
    value = wrappers_pb2.StringValue()
    first.payload.Unpack(value)
    assert (first.resource_name, first.resource_type, first.change_type, first.actor, value.value) == (
        "ordered/n0", "google.protobuf.StringValue", ChangeType.CHANGE_TYPE_UPDATED, "loader", "n0")
    assert first.event_id == str(ids[0])


async def test_parameters_reach_the_rows_query_and_an_empty_query_appends_nothing(db: Database) -> None:
    await stage(db, "params", ["a", "b"])
    query = rows_of("params").replace("'params/%'", "$1")
    async with db.raw() as connection, connection.transaction():
        assert await bulk_append(connection, query, "params/b") == 1
        assert await bulk_append(connection, rows_of("nothing-staged")) == 0
    assert [name for _, name, _ in await published(db, "params/")] == ["params/b"]


async def test_a_bulk_append_outside_a_transaction_is_refused(db: Database) -> None:
    await stage(db, "bare", ["a"])
    async with db.raw() as connection:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await bulk_append(connection, rows_of("bare"))
    assert await published(db, "bare/") == []


async def test_the_one_round_trip_statement_appends_and_commits(db: Database) -> None:
    await stage(db, "oneway", ["x", "y", "z"])
    async with db.raw() as connection:
        await connection.execute(f"BEGIN; DELETE FROM {STAGING} WHERE resource_name = 'oneway/x'; "  # noqa: S608
                                 + bulk_append_and_commit_statement(rows_of("oneway")))
        assert not connection.is_in_transaction()
    # Committed: another connection sees the rows, and the statement before it took effect too.
    assert [name for _, name, _ in await published(db, "oneway/")] == ["oneway/y", "oneway/z"]


async def test_the_lock_is_held_until_commit_so_cursors_follow_commit_order(db: Database) -> None:
    """A second appender (bulk or not) waits for the first to commit, and gets the later cursors,
    even though the first drew its cursors before it and took its time to commit."""
    await stage(db, "first", ["a", "b"])
    await stage(db, "second", ["c", "d"])
    second_done = asyncio.Event()

    async def second_bulk() -> None:
        async with db.raw() as connection, connection.transaction():
            await bulk_append(connection, rows_of("second"))
        second_done.set()

    async def single() -> None:
        async with db.unit_of_work() as session:
            await Outbox(events).append(session, resource_name="single/e", change_type=ChangeType.CHANGE_TYPE_CREATED,
                                        payload=wrappers_pb2.StringValue(value="e"), actor="tester")

    async with db.raw() as connection:
        transaction = connection.transaction()
        await transaction.start()
        await bulk_append(connection, rows_of("first"))
        waiting = [asyncio.create_task(second_bulk()), asyncio.create_task(single())]

        async def blocked_by_first() -> int:
            async with db.raw() as observer:
                return await observer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY("
                                               "pg_blocking_pids(pid))", connection.get_server_pid())

        await eventually(blocked_by_first, until=lambda n: n == 2, what="both appenders waiting on the lock")
        assert not second_done.is_set() and not any(task.done() for task in waiting)
        await transaction.commit()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)
    first, second, other = [await published(db, p) for p in ("first/", "second/", "single/")]
    assert max(c for c, _, _ in first) < min(c for c, _, _ in second + other)


async def test_a_rolled_back_bulk_append_publishes_nothing_and_releases_the_lock(db: Database) -> None:
    await stage(db, "undone", ["a"])
    async with db.raw() as connection:
        transaction = connection.transaction()
        await transaction.start()
        await bulk_append(connection, rows_of("undone"))
        await transaction.rollback()
    await stage(db, "after", ["b"])
    async with db.raw() as connection, connection.transaction():
        await asyncio.wait_for(bulk_append(connection, rows_of("after")), timeout=5)
    assert await published(db, "undone/") == []
    assert len(await published(db, "after/")) == 1
