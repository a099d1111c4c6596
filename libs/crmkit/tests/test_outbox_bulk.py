"""Bulk appends to the outbox on a raw asyncpg connection, on a real PostgreSQL: order, ids, and
appenders that never wait for one another's commit."""

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
    outbox_tables,
)
from crmkit.testing import DatabaseFactory

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
    changes = [e for e in await ChangeFeed(db, events, state).read() if e.resource_name.startswith("ordered/")]
    assert [e.resource_name for e in changes] == [f"ordered/{n}" for n in names]
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


async def test_appenders_do_not_wait_for_an_open_appending_transaction(db: Database) -> None:
    """While one transaction has appended and not committed, others (bulk or not) append and
    commit; the feed serves theirs only once the first has ended, after its events."""
    await stage(db, "first", ["a", "b"])
    await stage(db, "second", ["c", "d"])

    async def second_bulk() -> None:
        async with db.raw() as connection, connection.transaction():
            await bulk_append(connection, rows_of("second"))

    async def single() -> None:
        async with db.unit_of_work() as session:
            await Outbox(events).append(session, resource_name="single/e", change_type=ChangeType.CHANGE_TYPE_CREATED,
                                        payload=wrappers_pb2.StringValue(value="e"), actor="tester")

    feed = ChangeFeed(db, events, state, batch_size=100_000)
    async with db.raw() as connection:
        transaction = connection.transaction()
        await transaction.start()
        await bulk_append(connection, rows_of("first"))
        await asyncio.wait_for(asyncio.gather(second_bulk(), single()), timeout=10)
        assert not [e for e in await feed.read() if e.resource_name.startswith(("first/", "second/", "single/"))]
        await transaction.commit()
    ours = ("first/", "second/", "single/")
    served = [e.resource_name for e in await feed.read() if e.resource_name.startswith(ours)]
    assert served[:2] == ["first/a", "first/b"]
    assert sorted(served[2:]) == ["second/c", "second/d", "single/e"]


async def test_a_rolled_back_bulk_append_publishes_nothing(db: Database) -> None:
    await stage(db, "undone", ["a"])
    async with db.raw() as connection:
        transaction = connection.transaction()
        await transaction.start()
        await bulk_append(connection, rows_of("undone"))
        await transaction.rollback()
    await stage(db, "after", ["b"])
    async with db.raw() as connection, connection.transaction():
        await bulk_append(connection, rows_of("after"))
    assert await published(db, "undone/") == []
    assert len(await published(db, "after/")) == 1
