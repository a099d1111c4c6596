"""outbox-write: transactions/s of a service write with its change-feed row, against the same write
without one.

Each call is one unit of work: insert a row into a plain table and append its change event
(`crmkit.outbox.Outbox.append`), then commit. The floor is the same unit of work without the
event. Closed loop at concurrency 1 and 16, path and floor alternating in slices so both see the
same background load. Headline: transactions/s at concurrency 16 as a ratio to the floor: an
outbox whose appenders queue on one another (a lock held until commit) shows up here as a ratio
far below 1 at 16 and not at 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from google.protobuf import wrappers_pb2

from bench.harness import BenchRun, Call, drive_alternating
from crmkit.db import Database, metadata
from crmkit.outbox import ChangeType, Outbox, outbox_tables

CONCURRENCIES = (1, 16)
HEADLINE_CONCURRENCY = 16
WARMUP_SECONDS = 1.0
ROUNDS = 4

tables = metadata()
events, _state = outbox_tables(tables)
written = sa.Table("bench_write", tables, sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
                   sa.Column("name", sa.Text, nullable=False))


async def run(bench: BenchRun) -> None:
    async with bench.database() as url:
        db = await Database.open(url, pool_size=max(CONCURRENCIES) + 2)
        try:
            async with db.engine.begin() as connection:
                await connection.run_sync(tables.create_all)
            outbox = Outbox(events)

            async def floor(i: int) -> None:
                async with db.unit_of_work() as session:
                    await session.execute(sa.insert(written).values(name=f"things/{i}"))

            async def path(i: int) -> None:
                async with db.unit_of_work() as session:
                    await session.execute(sa.insert(written).values(name=f"things/{i}"))
                    await outbox.append(session, resource_name=f"things/{i}",
                                        change_type=ChangeType.CHANGE_TYPE_CREATED,
                                        payload=wrappers_pb2.StringValue(value=f"things/{i}"), actor="bench")

            calls: list[Call] = [path, floor]
            for concurrency in CONCURRENCIES:
                with_event, without = await drive_alternating(
                    calls, concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS, warmup_seconds=WARMUP_SECONDS)
                bench.note(f"with event {with_event.summary()}; floor {without.summary()}")
                bench.emit(f"writes_per_s_c{concurrency}", with_event.throughput, "tx/s",
                           floor=without.throughput, headline=concurrency == HEADLINE_CONCURRENCY)
                bench.emit(f"write_p99_ms_c{concurrency}", with_event.p99_ms, "ms", floor=without.p99_ms)
        finally:
            await db.dispose()
