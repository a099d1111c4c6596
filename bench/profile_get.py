"""profile-get: GetCustomer throughput and latency, as a ratio to the floor of a read.

The profile service runs as its own process (`python -m crm_profile serve`) on a fresh,
migrated database, loaded with synthetic customers through the real CreateCustomer RPC. Then,
at concurrency 1 and 16, a relationship manager reads random customers of their book in clear
(each read audited) for a bounded time. The floor (`bench.row_read_grpc`) is the work no read
can skip: a bare grpc.aio server (no interceptors) reading the same row of the same table by
primary key with asyncpg, on a pool of the service's size, driven with the same requests and
metadata. The bare gRPC call (no database) stays as an information row. The three alternate in
slices so that all see the same background load. Headline: GetCustomer qps at concurrency 16
over the row-read floor's. Then, at concurrency 16, the relationship manager creates new
customers through CreateCustomer, alternating with the create floor (`bench.row_write_grpc`):
the same bare server storing a sealed customer row, its audit record (under the changes chain's
lock) and its change-feed event in one transaction with asyncpg. Last, for information, the CPU
a read costs the service process and the database's backends, over a phase of reads alone.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import uuid
from collections.abc import Iterator

import grpc

from bench.customers import synthetic_customers
from bench.environment import free_port, run_to_completion
from bench.floors import (
    bare_grpc_call,
    bare_grpc_server,
    row_read_call,
    row_read_server,
    row_write_call,
    row_write_server,
    time_query,
)
from bench.harness import BenchRun, Call, LoadResult, drive, drive_alternating
from bench.profile_service import RELATIONSHIP_MANAGER, load_customers, service_env
from crm.common.v1 import audit_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm.profile.v1 import profile_service_pb2_grpc
from crmkit.auth import Role, issue_token

CONCURRENCIES = (1, 16)
HEADLINE_CONCURRENCY = 16
WARMUP_SECONDS = 1.0
# Floor and GetCustomer alternate in this many slices of each phase (see drive_alternating).
ROUNDS = 5
CALL_TIMEOUT_SECONDS = 10.0
# The service's own default (crmkit.settings db_pool_size); the floor's pool matches it.
DEFAULT_POOL_SIZE = 10
# Reads of the CPU phase: a few seconds, enough for the 10 ms ticks of the kernel's accounting.
CPU_READS = 3_000
# The create phase's new customers: an id prefix and a seed of their own, never the loaded book's.
CREATE_ID_PREFIX = "NEW"
CREATE_SEED = 17


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    token = issue_token(secret=jwt_secret, subject=RELATIONSHIP_MANAGER, roles=[Role.RELATIONSHIP_MANAGER],
                        lifetime_seconds=6 * 3600)
    metadata = (("authorization", f"Bearer {token}"),)
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_profile", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        pool_size = int(env.get("CRM_DB_POOL_SIZE", DEFAULT_POOL_SIZE))
        async with (bench.server("profile", [sys.executable, "-m", "crm_profile", "serve"], env=env,
                                 port=port) as profile_address,
                    bare_grpc_server(bench, env=dict(os.environ)) as bare_address,
                    row_read_server(bench, env=dict(os.environ), database_url=database_url,
                                    pool_size=pool_size) as row_address,
                    row_write_server(bench, env=dict(os.environ), database_url=database_url,
                                     pool_size=pool_size) as write_address,
                    grpc.aio.insecure_channel(profile_address) as channel):
            stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
            # Loaded for the reads; the create figure is measured below, against its floor.
            customer_ids = await load_customers(bench, stub, metadata, figure=None)
            await report_select_floor(bench, database_url, customer_ids[0])
            reads = [pb.GetCustomerRequest(
                name=f"customers/{customer_id}",
                audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE))
                for customer_id in random.Random(7).sample(customer_ids, len(customer_ids))]

            await check_a_read(stub, reads[0], metadata)

            async def get(index: int) -> object:
                return await stub.GetCustomer(reads[index % len(reads)], metadata=metadata,
                                              timeout=CALL_TIMEOUT_SECONDS)

            keys = [r.name.removeprefix("customers/") for r in reads]
            async with (bare_grpc_call(bare_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as bare,
                        row_read_call(row_address, keys, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as row):
                for concurrency in CONCURRENCIES:
                    bare_call, floor, measured = await drive_alternating(
                        [bare, row, get], concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS,
                        warmup_seconds=WARMUP_SECONDS)
                    bench.note(f"bare gRPC   {bare_call.summary()}")
                    bench.note(f"row read    {floor.summary()}")
                    bench.note(f"GetCustomer {measured.summary()}")
                    report(bench, measured, floor, bare_call, headline=concurrency == HEADLINE_CONCURRENCY)
            await measure_creates(bench, stub, metadata, write_address)
            await report_cpu(bench, get, database_url, port)


async def measure_creates(bench: BenchRun, stub: profile_service_pb2_grpc.ProfileServiceStub,
                          metadata: tuple[tuple[str, str], ...], floor_address: str) -> None:
    """CreateCustomer at the headline concurrency against the create floor, alternating; each call
    creates a customer never created before (with a request id, as the load does)."""
    fresh = new_customers()

    async def create(_: int) -> object:
        return await stub.CreateCustomer(next(fresh), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)

    async with row_write_call(floor_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as write:
        floor, measured = await drive_alternating(
            [write, create], concurrency=HEADLINE_CONCURRENCY, seconds=bench.seconds, rounds=ROUNDS,
            warmup_seconds=WARMUP_SECONDS)
    bench.note(f"row write      {floor.summary()}")
    bench.note(f"CreateCustomer {measured.summary()}")
    c = measured.concurrency
    bench.emit(f"create_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput)
    bench.emit(f"create_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"create_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms)


def new_customers() -> Iterator[pb.CreateCustomerRequest]:
    """Create requests for customers of the relationship manager's book, made as they are taken
    (a phase's length sets how many)."""
    rng = random.Random(CREATE_SEED)
    for customer in synthetic_customers(10**8, seed=CREATE_SEED, id_prefix=CREATE_ID_PREFIX,
                                        relationship_manager_id=RELATIONSHIP_MANAGER):
        yield pb.CreateCustomerRequest(customer=customer,
                                       request_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))


async def check_a_read(stub: profile_service_pb2_grpc.ProfileServiceStub, request: pb.GetCustomerRequest,
                       metadata: tuple[tuple[str, str], ...]) -> None:
    """Measure the real thing: the relationship manager reads their customer in clear."""
    customer = (await stub.GetCustomer(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).customer
    if customer.name != request.name or not customer.full_name or list(customer.masked_fields):
        raise AssertionError(f"GetCustomer did not return {request.name} in clear")


async def report_select_floor(bench: BenchRun, database_url: str, customer_id: str) -> None:
    """The database's share: the row fetch by primary key, hand-written, on one connection."""
    timing = await time_query(database_url, "SELECT * FROM customer WHERE customer_id = $1", customer_id,
                              runs=500, warmup=20)
    assert len(timing.result) == 1, "the hand-written query finds the customer"
    bench.emit("sql_select_by_id_ms", timing.median_seconds * 1000, "ms")


async def report_cpu(bench: BenchRun, get: Call, database_url: str, port: int) -> None:
    """CPU per read of the service process and of PostgreSQL's backends, at the headline concurrency
    (the bench's own process, the gRPC client, is left out)."""
    from bench.profile_events import CpuMeter  # here: profile_events imports this module

    cpu = await CpuMeter.start(database_url, port)
    result = await drive(get, concurrency=HEADLINE_CONCURRENCY, requests=CPU_READS)
    service, database = await cpu.stop()
    if service is not None:
        bench.emit(f"service_cpu_ms_per_read_c{HEADLINE_CONCURRENCY}", service / result.completed * 1000, "ms")
    if database is not None:
        bench.emit(f"database_cpu_ms_per_read_c{HEADLINE_CONCURRENCY}", database / result.completed * 1000, "ms")
    bench.note(f"CPU phase {result.summary()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def report(bench: BenchRun, measured: LoadResult, floor: LoadResult, bare: LoadResult, *, headline: bool) -> None:
    """GetCustomer against the row-read floor; the bare call's figures for information."""
    c = measured.concurrency
    bench.emit(f"get_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput, headline=headline)
    bench.emit(f"get_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"get_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms)
    bench.emit(f"get_qps_vs_bare_grpc_c{c}", measured.throughput, "requests/s", floor=bare.throughput)
