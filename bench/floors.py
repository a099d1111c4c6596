"""Floors measured in the same run as the path they bound.

- `bare_grpc_call`: the bare gRPC unary call (see `bench.bare_grpc`), to be driven exactly like
  the call under test: same channel kind, same metadata, same concurrency, same phase length
  (best with `drive_alternating`).
- `row_read_call`: the same bare server reading one row by primary key with asyncpg
  (`bench.row_read_grpc`): the floor of a read that must touch the database.
- `row_write_call`: the same bare server storing a customer row with its audit record and
  change-feed event in one transaction (`bench.row_write_grpc`): the floor of a creation.
- `copy_floor`: raw asyncpg COPY of the same rows into a table, what any bulk load is bounded by.
- `time_query`: a hand-written SQL statement, timed on one connection.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import row_read_grpc, row_write_grpc
from bench.environment import free_port
from bench.harness import BenchRun, Call
from crmkit.settings import plain_database_url

Metadata = Sequence[tuple[str, str]]


@asynccontextmanager
async def bare_grpc_server(bench: BenchRun, *, env: dict[str, str]) -> AsyncIterator[str]:
    """A bare gRPC server process for this bench; yields its address."""
    port = free_port()
    async with bench.server("bare-grpc", [sys.executable, "-m", "bench.bare_grpc", "--port", str(port)],
                            env=env, port=port) as address:
        yield address


@asynccontextmanager
async def bare_grpc_call(address: str, *, metadata: Metadata = (), timeout: float = 10.0
                         ) -> AsyncIterator[Call]:
    """A `Call` for the load driver: one health Check on the bare server, through its own channel,
    with the metadata (e.g. the bearer token) the call under test carries."""
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check

        async def call(_: int) -> object:
            return await check(request, metadata=metadata, timeout=timeout)

        yield call


@asynccontextmanager
async def row_read_server(bench: BenchRun, *, env: dict[str, str], database_url: str, pool_size: int
                          ) -> AsyncIterator[str]:
    """A bare gRPC server process reading customer rows of `database_url`; yields its address."""
    async with _database_floor_server(bench, "row_read_grpc", env=env, database_url=database_url,
                                      pool_size=pool_size) as address:
        yield address


@asynccontextmanager
async def row_write_server(bench: BenchRun, *, env: dict[str, str], database_url: str, pool_size: int
                           ) -> AsyncIterator[str]:
    """A bare gRPC server process storing customer rows in `database_url`; yields its address."""
    async with _database_floor_server(bench, "row_write_grpc", env=env, database_url=database_url,
                                      pool_size=pool_size) as address:
        yield address


@asynccontextmanager
async def _database_floor_server(bench: BenchRun, module: str, *, env: dict[str, str], database_url: str,
                                 pool_size: int) -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", f"bench.{module}", "--port", str(port), "--database-url",
            plain_database_url(database_url), "--pool-size", str(pool_size)]
    async with bench.server(module.replace("_", "-"), argv, env=env, port=port) as address:
        yield address


@asynccontextmanager
async def row_read_call(address: str, keys: Sequence[str], *, metadata: Metadata = (), timeout: float = 10.0
                        ) -> AsyncIterator[Call]:
    """A `Call` reading `keys[i % len(keys)]` through the row-read floor, with the metadata the
    call under test carries (sent, never checked: the floor has no interceptors)."""
    requests = [key.encode() for key in keys]
    async with grpc.aio.insecure_channel(address) as channel:
        get = channel.unary_unary(row_read_grpc.METHOD)

        async def call(index: int) -> object:
            return await get(requests[index % len(requests)], metadata=metadata, timeout=timeout)

        yield call


@asynccontextmanager
async def row_write_call(address: str, *, metadata: Metadata = (), timeout: float = 10.0) -> AsyncIterator[Call]:
    """A `Call` creating a new customer through the create floor, each with an id of its own
    (`FLOOR` and a number, never reused across phases), with the metadata the call under test
    carries."""
    numbers = itertools.count()
    async with grpc.aio.insecure_channel(address) as channel:
        create = channel.unary_unary(row_write_grpc.METHOD)

        async def call(_: int) -> object:
            return await create(f"FLOOR{next(numbers):08d}".encode(), metadata=metadata, timeout=timeout)

        yield call


@dataclass(frozen=True)
class CopyTiming:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


async def copy_floor(
    url: str, *, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]], truncate: bool = True,
) -> CopyTiming:
    """Raw `COPY ... FROM STDIN (FORMAT binary)` of `records` through asyncpg, timed from the first
    byte to the commit. The table is emptied first (unless told not to), so the floor loads
    into the same empty table the path under test does."""
    rows = records if isinstance(records, Sequence) else list(records)
    connection = await asyncpg.connect(url)
    try:
        if truncate:
            await connection.execute(f'TRUNCATE "{table}"')
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(table, records=rows, columns=list(columns))
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return CopyTiming(rows=len(rows), seconds=elapsed)


@dataclass(frozen=True)
class QueryTiming:
    runs: int
    best_seconds: float
    median_seconds: float
    result: Any  # what the last run returned, so a bench can check it counted the same thing


async def time_query(url: str, sql: str, *args: Any, runs: int = 5, warmup: int = 1) -> QueryTiming:
    """Run a hand-written statement `warmup + runs` times on one connection; best and median."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    connection = await asyncpg.connect(url)
    try:
        result = None
        for _ in range(warmup):
            result = await connection.fetch(sql, *args)
        durations = []
        for _ in range(runs):
            started = time.perf_counter()
            result = await connection.fetch(sql, *args)
            durations.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return QueryTiming(runs=runs, best_seconds=min(durations), median_seconds=statistics.median(durations),
                       result=result)
