"""Outbox, change feed, audit chain and idempotency keys on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import sqlalchemy as sa
from google.protobuf import wrappers_pb2

from crmkit import audit
from crmkit.db import Database, after_commit, metadata
from crmkit.errors import FailedPrecondition, InvalidArgument
from crmkit.idempotency import IdempotencyKeys, idempotency_table
from crmkit.outbox import ChangeFeed, ChangeType, Outbox, outbox_tables, parse_cursor
from crmkit.testing import DatabaseFactory, eventually

kit = metadata()
events, state = outbox_tables(kit)
audit_records = audit.audit_table(kit)
keys = idempotency_table(kit)


@pytest.fixture(scope="module")
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("kit"))
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    yield database
    await database.dispose()


async def append(db: Database, *names: str) -> None:
    async with db.unit_of_work() as session:
        await Outbox(events).append_many(
            session, [(n, ChangeType.CHANGE_TYPE_UPDATED, wrappers_pb2.StringValue(value=n)) for n in names],
            actor="tester")


async def tail(db: Database) -> str:
    """The cursor of the newest event so far ("" when none)."""
    served = await ChangeFeed(db, events, state, batch_size=100_000).read()
    return served[-1].cursor if served else ""


async def test_feed_streams_backlog_then_live_changes_in_order(db: Database) -> None:
    feed = ChangeFeed(db, events, state, poll_seconds=0.02, batch_size=3)
    first_cursor = await tail(db)
    await append(db, "a/1", "a/2", "a/3", "a/4")
    received: list[str] = []

    async def consume() -> None:
        async for batch in feed.stream(after_cursor=first_cursor):
            received.extend(e.resource_name for e in batch)
            if len(received) >= 6:
                return

    consumer = asyncio.create_task(consume())
    await eventually(lambda: len(received) >= 4, what="the backlog streamed")  # then live changes
    await append(db, "a/5", "a/6")
    await asyncio.wait_for(consumer, timeout=5)
    assert received[:6] == ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6"]
    payload = wrappers_pb2.StringValue()
    (await feed.read(after=first_cursor))[0].payload.Unpack(payload)
    assert payload.value == "a/1"


async def test_a_commit_wakes_a_live_stream_without_waiting_for_the_poll(db: Database) -> None:
    # A poll an hour long: the events can only arrive through the commit's wake-up.
    feed = ChangeFeed(db, events, state, poll_seconds=3600)
    start = await tail(db)
    stream = feed.stream(after_cursor=start)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # the stream read nothing and is waiting
    assert not first.done()
    await append(db, "woken/1")
    batch = await asyncio.wait_for(first, timeout=10)
    assert [e.resource_name for e in batch] == ["woken/1"]
    await stream.aclose()


async def test_a_rolled_back_unit_of_work_calls_nothing_and_leaves_nothing_behind(db: Database) -> None:
    called: list[str] = []
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            after_commit(session, lambda: called.append("rolled back"))
            raise RuntimeError("abandon the change")

    def committed() -> None:
        called.append("committed")

    async with db.unit_of_work() as session:
        after_commit(session, committed)
        after_commit(session, committed)  # registered twice, called once
    # The pooled connection carries no callback into the next unit of work.
    async with db.unit_of_work():
        pass
    assert called == ["committed"]


async def test_resuming_after_a_cursor_skips_nothing_and_repeats_nothing(db: Database) -> None:
    feed = ChangeFeed(db, events, state)
    await append(db, "b/1", "b/2", "b/3")
    everything = [e for e in await feed.read() if e.resource_name.startswith("b/")]
    middle = everything[0].cursor
    rest = [e.resource_name for e in await feed.read(after=middle) if e.resource_name.startswith("b/")]
    assert rest == ["b/2", "b/3"]


async def test_concurrent_writers_never_let_a_reader_skip_an_event(db: Database) -> None:
    """A reader that saw position P never later finds a committed event before P: it sees every
    event once, in increasing positions."""
    feed = ChangeFeed(db, events, state)
    seen: list[str] = []
    stop = asyncio.Event()
    start = await tail(db)

    async def reader() -> None:
        after = start
        while not stop.is_set() or await feed.read(after=after):
            for event in await feed.read(after=after):
                seen.append(event.cursor)
                after = event.cursor
            await asyncio.sleep(0)

    async def writer(n: int) -> None:
        for i in range(15):
            async with db.unit_of_work() as session:
                await Outbox(events).append(session, resource_name=f"c/{n}/{i}",
                                            change_type=ChangeType.CHANGE_TYPE_CREATED, payload=None, actor="t")
                await asyncio.sleep(0.001)  # hold the transaction open a moment

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(4)))
    stop.set()
    await asyncio.wait_for(reading, timeout=10)
    async with db.unit_of_work(read_only=True) as session:
        written = (await session.execute(
            sa.select(events.c.cursor).where(events.c.resource_name.like("c/%")))).scalars()
        expected = set(written)
    positions = [parse_cursor(c) for c in seen]
    assert positions == sorted(positions)
    assert sorted(p.seq for p in positions if p.seq in expected) == sorted(expected)


async def test_an_expired_cursor_is_refused(db: Database) -> None:
    feed = ChangeFeed(db, events, state)
    await append(db, "d/1")
    assert await feed.purge(retention=timedelta(seconds=-1)) >= 1
    with pytest.raises(FailedPrecondition) as expired:
        async for _ in feed.stream(after_cursor="1"):  # a numeric cursor from before the xid stamp
            break
    assert expired.value.reason == "CURSOR_EXPIRED"
    assert parse_cursor(expired.value.metadata["purged_through"]) >= parse_cursor("1")
    with pytest.raises(InvalidArgument):
        async for _ in feed.stream(after_cursor="not-a-cursor"):
            break


async def test_audit_chain_verifies_and_detects_tampering(db: Database) -> None:
    writer = audit.AuditWriter(db, audit_records)
    writer.start()
    await asyncio.gather(*(writer.record(audit.AuditEntry(
        principal=f"u{i}", action="customer.read", resource_name=f"customers/{i}", purpose="RISK"))
        for i in range(20)))
    await writer.close()
    async with db.unit_of_work(read_only=True) as session:
        assert await audit.verify_chain(session, audit_records) is None
        count = await session.scalar(sa.select(sa.func.count()).select_from(audit_records))
    assert count == 20
    async with db.engine.begin() as connection:  # tests may bypass the trigger-free table here
        await connection.execute(sa.update(audit_records).where(audit_records.c.principal == "u5")
                                 .values(principal="someone-else"))
    async with db.unit_of_work(read_only=True) as session:
        assert await audit.verify_chain(session, audit_records) is not None
    async with db.engine.begin() as connection:
        await connection.execute(sa.update(audit_records).where(audit_records.c.principal == "someone-else")
                                 .values(principal="u5"))
        await connection.execute(sa.update(audit_records).where(audit_records.c.principal == "u7")
                                 .values(outcome=audit.DENIED))
    async with db.unit_of_work(read_only=True) as session:
        tampered = await session.scalar(sa.select(audit_records.c.seq).where(audit_records.c.principal == "u7"))
        assert await audit.verify_chain(session, audit_records) == tampered


async def test_a_writer_with_lanes_commits_every_record_on_intact_chains_of_its_own(db: Database) -> None:
    """Records made while one lane commits go to another lane's chain; each record is durable when
    `record()` returns, and every chain verifies."""
    writer = audit.AuditWriter(db, audit_records, lanes=2)
    writer.start()
    names = [f"customers/lane-{i}" for i in range(60)]

    async def read(name: str) -> int:
        await writer.record(audit.AuditEntry(principal="rm-1", action="customer.read", resource_name=name,
                                             purpose="CUSTOMER_SERVICE"))
        async with db.raw() as connection:  # committed before record() returned
            return int(await connection.fetchval("SELECT count(*) FROM audit_record WHERE resource_name = $1", name))

    try:
        async with db.raw() as blocker:  # holds the first batch in flight while a second record is made
            holding = blocker.transaction()
            await holding.start()
            await blocker.execute(f"LOCK TABLE {audit_records.name} IN EXCLUSIVE MODE")
            first = asyncio.create_task(read(names[0]))
            await eventually(lambda: writer._writing, what="the first lane writing its batch")
            second = asyncio.create_task(read(names[1]))
            await eventually(lambda: writer._spares[0]._writing, what="the second lane writing its batch")
            await holding.rollback()
        assert await asyncio.gather(first, second) == [1, 1]
        assert await asyncio.gather(*(read(name) for name in names[2:])) == [1] * (len(names) - 2)
    finally:
        await writer.close()
    async with db.unit_of_work(read_only=True) as session:
        chains = set((await session.execute(sa.select(audit_records.c.chain_id).where(
            audit_records.c.resource_name.in_(names)))).scalars())
        rows = (await session.execute(sa.select(audit_records).where(audit_records.c.chain_id.in_(chains))
                                      .order_by(audit_records.c.seq))).all()
    assert len(chains) == 2 and all(chain.startswith("reads:") for chain in chains)
    assert sorted(row.resource_name for row in rows) == sorted(names)
    tails = dict.fromkeys(chains, audit.GENESIS_HASH)
    for row in rows:  # each chain starts at genesis and links record to record
        entry = audit.AuditEntry(principal=row.principal, action=row.action, resource_name=row.resource_name,
                                 purpose=row.purpose, actor_roles=tuple(row.actor_roles), method=row.method)
        assert (row.prev_hash, row.hash) == (tails[row.chain_id], audit.record_hash(
            tails[row.chain_id], row.recorded_at, entry, chain_id=row.chain_id))
        tails[row.chain_id] = row.hash
    with pytest.raises(ValueError, match="at least one lane"):
        audit.AuditWriter(db, audit_records, lanes=0)


async def test_the_audit_writer_replaces_a_connection_lost_between_batches(db: Database) -> None:
    """The writer keeps one connection between batches; one lost while idle (a database restart)
    is replaced before the next batch, and the chain goes on unbroken."""
    writer = audit.AuditWriter(db, audit_records)
    writer.start()

    def read(i: int) -> audit.AuditEntry:
        return audit.AuditEntry(principal="rm-1", action="customer.read", resource_name=f"customers/{i}",
                                purpose="CUSTOMER_SERVICE")

    try:
        await writer.record(read(1))
        held = writer._connection
        assert held is not None
        async with db.raw() as connection:
            await connection.execute("SELECT pg_terminate_backend($1)", held.get_server_pid())

        def noticed() -> bool:  # the client has seen the connection close (or the pool took it back)
            try:
                return held.is_closed()
            except asyncpg.InterfaceError:
                return True

        await eventually(noticed, what="the writer's connection seen closed")
        await asyncio.gather(*(writer.record(read(i)) for i in range(2, 5)))
        assert writer._connection is not held
    finally:
        await writer.close()
    async with db.unit_of_work(read_only=True) as session:
        rows = (await session.execute(sa.select(audit_records).where(audit_records.c.chain_id == writer.chain_id)
                                      .order_by(audit_records.c.seq))).all()
    assert [row.resource_name for row in rows] == [f"customers/{i}" for i in range(1, 5)]
    previous = audit.GENESIS_HASH
    for row in rows:
        entry = audit.AuditEntry(principal=row.principal, action=row.action, resource_name=row.resource_name,
                                 purpose=row.purpose, justification=row.justification, trace_id=row.trace_id,
                                 actor_roles=tuple(row.actor_roles), method=row.method)
        assert row.hash_recipe == audit.RECIPE
        assert (row.prev_hash, row.hash) == (previous, audit.record_hash(previous, row.recorded_at, entry,
                                                                         chain_id=row.chain_id))
        previous = row.hash


async def test_idempotency_key_replays_the_first_answer(db: Database) -> None:
    request_id = uuid.uuid4()
    registry = IdempotencyKeys(keys)
    request = wrappers_pb2.StringValue(value="same body")
    async with db.unit_of_work() as session:
        assert await registry.claim(session, principal="p", request_id=request_id, request=request, method="Create",
                                    resource_name="things/1") is None
    async with db.unit_of_work() as session:
        assert await registry.claim(session, principal="p", request_id=request_id, request=request, method="Create",
                                    resource_name="things/2") == "things/1"
    async with db.unit_of_work() as session:
        assert await registry.claim(session, principal="other", request_id=request_id, request=request,
                                    method="Create", resource_name="things/3") is None
    with pytest.raises(InvalidArgument):
        async with db.unit_of_work() as session:
            await registry.claim(session, principal="p", request_id=request_id, request=request, method="Delete",
                                 resource_name="things/1")


async def test_a_feed_consumer_applies_each_event_once_and_advances_its_cursor(db: Database) -> None:
    from crmkit.feed_consumer import FeedConsumer, feed_cursor_table
    from crmkit.outbox import change_event_pb2

    consumer_tables = metadata()
    cursors = feed_cursor_table(consumer_tables)
    async with db.engine.begin() as connection:
        await connection.run_sync(consumer_tables.create_all)
    applied: list[str] = []

    async def apply(connection, event) -> None:  # type: ignore[no-untyped-def]
        applied.append(event.cursor)

    async def no_stream(after: str):  # type: ignore[no-untyped-def]
        return
        yield

    consumer = FeedConsumer(name="peer", db=db, cursors=cursors, open_stream=no_stream, apply=apply)
    # Numeric cursors (from before the xid stamp) come before every stamped one.
    batch = [change_event_pb2.ChangeEvent(cursor=c) for c in ("1", "2", "900.3")]
    assert await consumer.apply_batch(batch) == 3
    assert await consumer.apply_batch([*batch[1:], change_event_pb2.ChangeEvent(cursor="901.1")]) == 1
    assert applied == ["1", "2", "900.3", "901.1"]
    assert await consumer.cursor() == "901.1"


async def test_a_raw_connection_returns_to_the_pool_without_an_open_transaction(db: Database) -> None:
    async with db.raw() as connection:
        await connection.execute("CREATE TABLE IF NOT EXISTS kit_reset_probe (n int)")
    async with db.raw() as connection:  # a caller cancelled between BEGIN and COMMIT
        await connection.execute("BEGIN")
        await connection.execute("INSERT INTO kit_reset_probe VALUES (1)")
        left_open = await connection.fetchval("SELECT pg_backend_pid()")
    async with db.raw() as connection:
        # the pool keeps one idle connection: the same session comes back, with nothing left open
        assert await connection.fetchval("SELECT pg_backend_pid()") == left_open
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT count(*) FROM kit_reset_probe") == 0
