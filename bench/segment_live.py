"""segment-live: with 50 active real-time segments, a change to a customer in profile -> the
membership change on segment's own feed, end to end through real processes.

Profile and segment run as their own processes (`python -m crm_profile serve`, `python -m
crm_segment serve` following profile's WatchChanges), each on a fresh database, with the feeds'
default poll intervals. 100 customers are created through CreateCustomer, spread over 50
branches; 50 real-time segments (`branch_id == "L<k>"`, one per branch) are created and
materialised once. The bench then watches segment's WatchChanges (SegmentMember events) and,
one change at a time, moves a customer to the next branch with UpdateCustomer; the latency runs
from the update's request to the arrival of the customer's ENTERED event of the new branch's
segment on segment's feed (profile's write and outbox, profile's feed, segment's follower and
read model, the evaluation against the 50 segments, segment's outbox and feed). Headline: its
p95 (goal <= 1 s); the floor is the UpdateCustomer call itself (the write the path starts with).

Per-event evaluation cost (goal p99 <= 5 ms): `RealTimeMembership.evaluate` (the 50 segments
read with the customer's memberships, the features row, the 50 closures, the entries and exits
recorded with their history and feed events), timed in the bench process on segment's database
for customers whose branch was just changed, each in a transaction rolled back afterwards.
`CRM_BENCH_LIVE_CHANGES` sets the number of changes (default 200).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path

import grpc
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from bench import profile_service, segment_data
from bench.environment import free_port, run_to_completion
from bench.harness import BenchRun, percentile
from crm.common.v1 import audit_pb2, change_event_pb2, operation_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.segment.v1 import segment_pb2, segment_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment import tables
from crm_segment.api import membership_messages
from crm_segment.realtime.service import MEMBER_TYPE, RealTimeMembership
from crmkit.auth import Role, issue_token
from crmkit.db import Database
from crmkit.outbox import Outbox

SEGMENTS = 50
CUSTOMERS = 100
DEFAULT_CHANGES = 200
CHANGES_VARIABLE = "CRM_BENCH_LIVE_CHANGES"
EVALUATIONS = 300
ARRIVAL_TIMEOUT_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 30.0
ENTERED = segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="branch transfer")


def change_count() -> int:
    configured = os.environ.get(CHANGES_VARIABLE, "")
    return int(configured) if configured else DEFAULT_CHANGES


def branch(k: int) -> str:
    return f"L{k % SEGMENTS:02d}"


def segment_id(k: int) -> str:
    return f"live-{k % SEGMENTS:02d}"


def customer_id(i: int) -> str:
    return f"LIVE{i:06d}"


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)

    def bearer(role: Role) -> tuple[tuple[str, str], ...]:
        token = issue_token(secret=jwt_secret, subject=f"bench-{role.value}", roles=[role], lifetime_seconds=6 * 3600)
        return (("authorization", f"Bearer {token}"),)

    admin, analyst, service = bearer(Role.ADMIN), bearer(Role.ANALYST), bearer(Role.SERVICE)
    async with bench.database() as profile_url, bench.database() as segment_url:
        profile_port, segment_port = free_port(), free_port()
        profile_env = profile_service.service_env(profile_url, profile_port, jwt_secret)
        segment_env = {**segment_data.service_env(segment_url, segment_port, jwt_secret),
                       "CRM_SEGMENT_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
                       "CRM_SEGMENT_PROFILE_FEED_MAX_BACKOFF_SECONDS": "0.5"}
        bench.note("migrating two fresh databases")
        await run_to_completion([sys.executable, "-m", "crm_profile", "migrate"], env=profile_env,
                                log_path=bench.log_path("migrate-profile"))
        await run_to_completion([sys.executable, "-m", "crm_segment", "migrate"], env=segment_env,
                                log_path=bench.log_path("migrate-segment"))
        async with (bench.server("profile", [sys.executable, "-m", "crm_profile", "serve"], env=profile_env,
                                 port=profile_port) as profile_address,
                    bench.server("segment", [sys.executable, "-m", "crm_segment", "serve"], env=segment_env,
                                 port=segment_port) as segment_address,
                    grpc.aio.insecure_channel(profile_address) as profile_channel,
                    grpc.aio.insecure_channel(segment_address) as segment_channel):
            profile = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)
            segment = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
            await set_up(bench, profile, segment, admin, analyst)
            await measure_end_to_end(bench, profile, segment, admin, service)
        await measure_evaluation(bench, segment_url)


async def set_up(bench: BenchRun, profile: profile_service_pb2_grpc.ProfileServiceStub,
                 segment: segment_service_pb2_grpc.SegmentServiceStub, admin: tuple[tuple[str, str], ...],
                 analyst: tuple[tuple[str, str], ...]) -> None:
    """The customers in profile (and, through its feed, in segment's read model), and the 50
    real-time segments, each materialised once."""
    for i in range(CUSTOMERS):
        await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=customer_id(i), full_name="Li Na", branch_id=branch(i),
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
            request_id=str(uuid.UUID(int=i + 1))), metadata=admin, timeout=CALL_TIMEOUT_SECONDS)
    started = time.perf_counter()
    while True:
        preview = await segment.PreviewSegment(pb.PreviewSegmentRequest(rule='branch_id.startsWith("L")'),
                                               metadata=analyst, timeout=CALL_TIMEOUT_SECONDS)
        if preview.count == CUSTOMERS:
            break
        if time.perf_counter() - started > ARRIVAL_TIMEOUT_SECONDS:
            raise TimeoutError(f"segment's read model holds {preview.count} of {CUSTOMERS} customers")
        await asyncio.sleep(0.1)
    bench.note(f"{CUSTOMERS} customers in profile and in segment's read model")
    operations = []
    for k in range(SEGMENTS):
        created = await segment.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
            segment_id=segment_id(k), display_name=f"Live {k:02d}", rule=f'branch_id == "{branch(k)}"',
            evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME)), metadata=analyst)
        started_op = await segment.MaterialiseSegment(pb.MaterialiseSegmentRequest(
            name=created.segment.name, request_id=str(uuid.uuid4())), metadata=analyst)
        operations.append(started_op.operation.name)
    for name in operations:
        while True:
            operation = (await segment.GetOperation(pb.GetOperationRequest(name=name), metadata=analyst)).operation
            if operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED:
                break
            if operation.state in (operation_pb2.OPERATION_STATE_FAILED, operation_pb2.OPERATION_STATE_CANCELLED):
                raise AssertionError(f"materialising {name} ended {operation.state}: {operation.error.message}")
            await asyncio.sleep(0.05)
    bench.note(f"{SEGMENTS} real-time segments materialised")


async def measure_end_to_end(bench: BenchRun, profile: profile_service_pb2_grpc.ProfileServiceStub,
                             segment: segment_service_pb2_grpc.SegmentServiceStub,
                             admin: tuple[tuple[str, str], ...], service: tuple[tuple[str, str], ...]) -> None:
    loop = asyncio.get_running_loop()
    waiting: dict[tuple[str, str], asyncio.Future[float]] = {}

    async def watch() -> None:
        # From the oldest retained event: entries before the first change resolve nothing.
        stream = segment.WatchChanges(pb.WatchChangesRequest(resource_types=[MEMBER_TYPE]), metadata=service)
        async for response in stream:
            arrived = time.perf_counter()
            for event in response.events:
                if event.change_type != change_event_pb2.CHANGE_TYPE_EVENT:
                    continue
                change = segment_pb2.MembershipChange()
                event.payload.Unpack(change)
                if change.kind != ENTERED:
                    continue
                future = waiting.pop((change.segment.removeprefix("segments/"),
                                      change.customer.removeprefix("customers/")), None)
                if future is not None and not future.done():
                    future.set_result(arrived)

    watcher = asyncio.create_task(watch())
    latencies: list[float] = []
    acks: list[float] = []
    changes = change_count()
    try:
        await asyncio.sleep(1.0)  # the stream is open and has read the backlog
        for j in range(changes):
            i = j % CUSTOMERS
            target = i + 1 + j // CUSTOMERS  # a branch the customer is not in now
            arrival: asyncio.Future[float] = loop.create_future()
            waiting[(segment_id(target), customer_id(i))] = arrival
            request = profile_service_pb2.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=f"customers/{customer_id(i)}", branch_id=branch(target)),
                update_mask=field_mask_pb2.FieldMask(paths=["branch_id"]), audit=AUDIT)
            started = time.perf_counter()
            await profile.UpdateCustomer(request, metadata=admin, timeout=CALL_TIMEOUT_SECONDS)
            acks.append(time.perf_counter() - started)
            arrived = await asyncio.wait_for(arrival, timeout=ARRIVAL_TIMEOUT_SECONDS)
            latencies.append(arrived - started)
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await watcher
    latencies.sort()
    acks.sort()
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    bench.note(f"{changes} changes: end to end p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
               f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
               f"UpdateCustomer p95 {percentile(acks, 95) * 1000:.0f} ms")
    bench.emit("change_to_feed_p50_ms", p50 * 1000, "ms", floor=percentile(acks, 50) * 1000)
    bench.emit("change_to_feed_p95_ms", p95 * 1000, "ms", floor=percentile(acks, 95) * 1000, headline=True)
    bench.emit("change_to_feed_p99_ms", p99 * 1000, "ms", floor=percentile(acks, 99) * 1000)
    bench.emit("changes", changes, "changes")


async def measure_evaluation(bench: BenchRun, segment_url: str) -> None:
    """`RealTimeMembership.evaluate` for one changed customer against the 50 live segments, each
    in a transaction rolled back; p50 and p99 over EVALUATIONS runs."""
    db = await Database.open(segment_url, pool_size=1, application_name="bench")
    realtime = RealTimeMembership(outbox=Outbox(tables.outbox_event),
                                  change_message=membership_messages.change_to_proto)
    timings: list[float] = []
    cpu: list[float] = []
    backend_cpu = 0.0
    try:
        async with db.engine.connect() as connection:
            backend = int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
        for n in range(EVALUATIONS + 10):
            i = n % CUSTOMERS
            event = change_event_pb2.ChangeEvent(event_id=str(uuid.uuid4()),
                                                 resource_name=f"customers/{customer_id(i)}")
            async with db.engine.connect() as connection:
                transaction = await connection.begin()
                # The read model's change the follower applied just before: the next branch.
                await connection.execute(sa.text(
                    "UPDATE customer_feature SET branch_id = 'L' || lpad(((substr(branch_id, 2)::int + 1) % :k)::text,"
                    " 2, '0') WHERE customer_id = :customer_id"), {"k": SEGMENTS, "customer_id": customer_id(i)})
                started, started_cpu, started_backend = time.perf_counter(), time.thread_time(), process_cpu(backend)
                changes = await realtime.evaluate(connection, event)
                elapsed, elapsed_cpu = time.perf_counter() - started, time.thread_time() - started_cpu
                elapsed_backend = process_cpu(backend) - started_backend
                await transaction.rollback()
            if n >= 10:  # the first ones compile the 50 closures
                timings.append(elapsed)
                cpu.append(elapsed_cpu)
                backend_cpu += elapsed_backend
            if len(changes) != 2:
                raise AssertionError(f"evaluation made {len(changes)} changes, expected an exit and an entry")
    finally:
        await db.dispose()
    timings.sort()
    p50, p99 = percentile(timings, 50) * 1000, percentile(timings, 99) * 1000
    cpu.sort()
    python_cpu, database_cpu = statistics.mean(cpu) * 1000, backend_cpu / len(timings) * 1000
    bench.note(f"evaluation against {SEGMENTS} segments: p50 {p50:.2f} ms, p99 {p99:.2f} ms wall; CPU per "
               f"evaluation {python_cpu:.2f} ms in Python (p99 {percentile(cpu, 99) * 1000:.2f}), "
               f"{database_cpu:.2f} ms in PostgreSQL; load average {os.getloadavg()[0]:.1f}")
    bench.emit("evaluation_p50_ms", p50, "ms")
    bench.emit("evaluation_p99_ms", p99, "ms")
    bench.emit("evaluation_python_cpu_ms", python_cpu, "ms")
    bench.emit("evaluation_database_cpu_ms", database_cpu, "ms")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (a PostgreSQL backend) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
