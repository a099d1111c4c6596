"""profile-events: events/s through the IngestEvents client stream, 1,000,000 events, none lost.

`CRM_BENCH_EVENTS=100000` sends fewer (for measuring while working on the path; the goal is
about the full million, whose indexes outgrow the database's buffers).

The profile service runs as its own process (`python -m crm_profile serve`) on a fresh, migrated
database with a few thousand customers created through the real CreateCustomer RPC. A million
synthetic events of every type (channel visits, logins, product views, applications, card
payments, payroll credits), spread over the last 60 days (so three month partitions, created on
demand), are sent as 1,000 batches of 1,000 over a few concurrent IngestEvents streams, the way
several channel feeds would send them. Every event goes through the whole path: validation,
customer lookup, the id ledger, COPY into its month partition, a change-feed row, commit.

The batches are built and serialised before the clock starts and sent as raw bytes, so the
bench process spends almost no CPU while measuring (it shares the machine with the service and
PostgreSQL).

Then the checks: accepted = 1,000,000 with no duplicate and no rejection, and the database
holds exactly that many events and change-feed rows (none lost); a resend of the first batches
is counted as duplicates and stores nothing. Last, the floor: the same stored rows, read back,
COPYed raw into an unindexed, unpartitioned table of the same columns in one transaction.
Headline: events/s (goal >= 20,000/s); its ratio to the raw COPY rate is reported beside it.

Beside it, for information: the CPU time per event of the service process and of its PostgreSQL
backends during the ingest (read from /proc; Linux only). On a shared machine events/s follows
whatever else runs; CPU per event does not, and says what a dedicated core buys.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
from google.protobuf import timestamp_pb2
from google.type import money_pb2

from bench.environment import free_port, run_to_completion, size_from_env
from bench.floors import copy_floor
from bench.harness import BenchRun
from bench.profile_service import RELATIONSHIP_MANAGER, load_customers, service_env
from crm.profile.v1 import event_pb2, profile_service_pb2_grpc
from crmkit.auth import Role, issue_token

EVENTS = 1_000_000
EVENTS_VARIABLE = "CRM_BENCH_EVENTS"  # a smaller count, while working on the path
BATCH = 1_000
# Concurrent IngestEvents calls, each sending an equal share of the batches.
STREAMS = 4
RESEND_BATCHES = 20
DAYS_BACK = 60
CALL_TIMEOUT_SECONDS = 1800.0
INGEST_METHOD = "/crm.profile.v1.ProfileService/IngestEvents"
FLOOR_TABLE = "event_copy_floor"


def event_count() -> int:
    return size_from_env(EVENTS_VARIABLE, EVENTS)


async def run(bench: BenchRun) -> None:
    events = event_count()
    jwt_secret = secrets.token_urlsafe(48)
    channel_token = issue_token(secret=jwt_secret, subject="bench-feed", roles=[Role.CHANNEL_APP],
                                lifetime_seconds=6 * 3600)
    rm_token = issue_token(secret=jwt_secret, subject=RELATIONSHIP_MANAGER, roles=[Role.RELATIONSHIP_MANAGER],
                           lifetime_seconds=6 * 3600)
    feed = (("authorization", f"Bearer {channel_token}"),)
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_profile", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        async with (bench.server("profile", [sys.executable, "-m", "crm_profile", "serve"], env=env,
                                 port=port) as address,
                    grpc.aio.insecure_channel(address) as channel):
            customer_ids = await load_customers(bench, profile_service_pb2_grpc.ProfileServiceStub(channel),
                                                (("authorization", f"Bearer {rm_token}"),))
            bench.note(f"building {events:,} events in batches of {BATCH:,}")
            batches = build_batches(customer_ids, events=events, batch=BATCH, seed=17)
            ingest = channel.stream_unary(INGEST_METHOD, request_serializer=None,
                                          response_deserializer=event_pb2.IngestEventsResponse.FromString)

            bench.note(f"ingesting over {STREAMS} concurrent streams")
            cpu = await CpuMeter.start(database_url, port)
            started = time.perf_counter()
            responses = await asyncio.gather(*(
                ingest(_stream(batches[i::STREAMS]), metadata=feed, timeout=CALL_TIMEOUT_SECONDS)
                for i in range(STREAMS)))
            elapsed = time.perf_counter() - started
            service_cpu, database_cpu = await cpu.stop()
            accepted = sum(r.accepted_count for r in responses)
            duplicates = sum(r.duplicate_count for r in responses)
            rejected = sum(r.rejected_count for r in responses)
            bench.note(f"IngestEvents: {accepted:,} accepted, {duplicates} duplicates, {rejected} rejected "
                       f"in {elapsed:.1f}s = {accepted / elapsed:,.0f} events/s")
            if (accepted, duplicates, rejected) != (events, 0, 0):
                raise AssertionError(f"expected {events:,} accepted and nothing else, got "
                                     f"{accepted:,} / {duplicates} / {rejected}")
            await check_none_lost(bench, database_url, accepted)

            resend = batches[:RESEND_BATCHES]
            resend_events = min(len(resend) * BATCH, events)
            resent = await ingest(_stream(resend), metadata=feed, timeout=CALL_TIMEOUT_SECONDS)
            if (resent.accepted_count, resent.duplicate_count) != (0, resend_events):
                raise AssertionError(f"a resend stored events again: {resent}")
            await check_none_lost(bench, database_url, accepted)
            bench.note(f"resent {resend_events:,} events: all counted as duplicates, none stored")

        floor = await copy_floor_of_stored_rows(bench, database_url)
        bench.emit("ingest_events_per_s", accepted / elapsed, "events/s", floor=floor.rows_per_second,
                   headline=True)
        bench.emit("ingest_seconds", elapsed, "s")
        bench.emit("copy_floor_rows_per_s", floor.rows_per_second, "rows/s")
        bench.emit("events_stored", accepted, "events")
        if service_cpu is not None and database_cpu is not None:
            bench.emit("service_cpu_us_per_event", service_cpu / accepted * 1e6, "us")
            bench.emit("database_cpu_us_per_event", database_cpu / accepted * 1e6, "us")
            bench.note(f"CPU per event: service {service_cpu / accepted * 1e6:.1f} us, "
                       f"PostgreSQL backends {database_cpu / accepted * 1e6:.1f} us; "
                       f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


class CpuMeter:
    """CPU seconds used by the service process and the database's backends between start and stop,
    from /proc (None where it cannot be read: not Linux, or PostgreSQL on another machine)."""

    def __init__(self, database_url: str, service_pid: int | None, backends: dict[int, float]) -> None:
        self._database_url = database_url
        self._service_pid = service_pid
        self._service_start = _cpu_seconds(service_pid) if service_pid is not None else None
        self._backends = backends

    @classmethod
    async def start(cls, database_url: str, port: int) -> CpuMeter:
        return cls(database_url, _pid_listening_on(port), await _backend_cpu(database_url))

    async def stop(self) -> tuple[float | None, float | None]:
        service = None
        if self._service_pid is not None and self._service_start is not None:
            now = _cpu_seconds(self._service_pid)
            service = now - self._service_start if now is not None else None
        ended = await _backend_cpu(self._database_url)
        database = sum(seconds - self._backends.get(pid, 0.0) for pid, seconds in ended.items()) if ended else None
        return service, database


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid_listening_on(port: int) -> int | None:
    """The process whose environment sets CRM_PROFILE_PORT to `port` (the server this bench started)."""
    wanted = f"CRM_PROFILE_PORT={port}".encode()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if wanted in environ.read().split(b"\0") and b"serve" in cmdline.read():
                    return pid
        except OSError:
            continue
    return None


async def _backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds so far of every backend connected to the bench's database."""
    connection = await asyncpg.connect(database_url)
    try:
        pids = [r[0] for r in await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    finally:
        await connection.close()
    found = {pid: _cpu_seconds(pid) for pid in pids}
    return {pid: seconds for pid, seconds in found.items() if seconds is not None}


async def _stream(payloads: Sequence[bytes]) -> AsyncIterator[bytes]:
    for payload in payloads:
        yield payload


async def check_none_lost(bench: BenchRun, database_url: str, accepted: int) -> None:
    """Count what the database holds: every accepted event once, and one feed row for each."""
    connection = await asyncpg.connect(database_url)
    try:
        events, ids, feed = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM customer_event), (SELECT count(*) FROM customer_event_id), "
            "(SELECT count(*) FROM outbox_event WHERE resource_type = 'crm.profile.v1.CustomerEvent')")
    finally:
        await connection.close()
    bench.note(f"stored: {events:,} events, {ids:,} ids in the ledger, {feed:,} change-feed rows")
    if not events == ids == feed == accepted:
        raise AssertionError(f"accepted {accepted:,} but stored {events:,} events / {ids:,} ids / {feed:,} feed rows")


async def copy_floor_of_stored_rows(bench: BenchRun, database_url: str):  # type: ignore[no-untyped-def]
    """Raw COPY of the very rows the ingest stored, into a plain table of the same columns."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE customer_event)")
        columns = [r[0] for r in await connection.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'customer_event'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum")]
        rows = await connection.fetch(f"SELECT {', '.join(columns)} FROM customer_event")  # noqa: S608
    finally:
        await connection.close()
    bench.note(f"raw COPY floor: {len(rows):,} stored rows into an unindexed table")
    timing = await copy_floor(database_url, table=FLOOR_TABLE, columns=columns, records=[tuple(r) for r in rows])
    bench.note(f"raw COPY {timing.rows:,} rows in {timing.seconds:.2f}s = {timing.rows_per_second:,.0f} rows/s")
    return timing


# --- synthetic events -------------------------------------------------------------------------

_PAGES = ("home", "fund-detail", "card-offers", "loan-calculator", "deposit-rates", "transfer")
_PRODUCTS = ("TD-1Y-CNY", "TD-3Y-CNY", "FUND-BAL-01", "WM-180D", "CC-PLATINUM", "CC-GOLD", "LOAN-HOME", "LOAN-AUTO")
_MCCS = ("5411", "5812", "5541", "5999", "4121", "5311")
# (weight, kind) of the event mix: mostly visits and logins, then views and card payments.
_MIX = ((40, "visit"), (20, "login"), (15, "view"), (15, "payment"), (5, "payroll"), (3, "card"), (2, "loan"))


def build_batches(customer_ids: Sequence[str], *, events: int, batch: int, seed: int) -> list[bytes]:
    """`events` valid events of `customer_ids`, serialised as IngestEventsRequest batches."""
    rng = random.Random(seed)
    kinds = [kind for weight, kind in _MIX for _ in range(weight)]
    now = int(datetime.now(UTC).timestamp())
    span = int(timedelta(days=DAYS_BACK).total_seconds())
    payloads = []
    for start in range(0, events, batch):
        request = event_pb2.IngestEventsRequest()
        for _ in range(min(batch, events - start)):
            request.events.append(_event(rng, rng.choice(customer_ids), rng.choice(kinds), now - rng.randrange(span)))
        payloads.append(request.SerializeToString())
    return payloads


def _event(rng: random.Random, customer_id: str, kind: str, when: int) -> event_pb2.CustomerEvent:
    customer = f"customers/{customer_id}"
    event = event_pb2.CustomerEvent(
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), customer=customer,
        occur_time=timestamp_pb2.Timestamp(seconds=when, nanos=rng.randrange(1_000_000) * 1000),
        source_system="mobile-banking", channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING)
    if kind == "visit":
        event.event_type = event_pb2.EVENT_TYPE_CHANNEL_VISIT
        event.channel = rng.choice((event_pb2.EVENT_CHANNEL_MOBILE_BANKING, event_pb2.EVENT_CHANNEL_WEB_BANKING,
                                    event_pb2.EVENT_CHANNEL_WECHAT, event_pb2.EVENT_CHANNEL_BRANCH))
        event.properties["page"] = rng.choice(_PAGES)
    elif kind == "login":
        event.event_type = event_pb2.EVENT_TYPE_LOGIN
        event.login.success = rng.random() > 0.05
        event.login.method = rng.choice(("password", "sms-otp", "face"))
    elif kind == "view":
        event.event_type = event_pb2.EVENT_TYPE_PRODUCT_VIEW
        event.product_code = rng.choice(_PRODUCTS)
    elif kind in ("card", "loan"):
        event.event_type = event_pb2.EVENT_TYPE_CARD_APPLICATION if kind == "card" else \
            event_pb2.EVENT_TYPE_LOAN_APPLICATION
        event.product_code = "CC-PLATINUM" if kind == "card" else "LOAN-HOME"
        event.application.application_id = f"APP-{rng.getrandbits(40):010x}"
        event.application.outcome = rng.choice((event_pb2.APPLICATION_OUTCOME_SUBMITTED,
                                                event_pb2.APPLICATION_OUTCOME_APPROVED))
    else:
        payroll = kind == "payroll"
        event.event_type = event_pb2.EVENT_TYPE_PAYROLL_CREDIT if payroll else event_pb2.EVENT_TYPE_TRANSACTION
        event.channel = event_pb2.EVENT_CHANNEL_BACK_OFFICE if payroll else event_pb2.EVENT_CHANNEL_POS
        event.source_system = "core-banking"
        detail = event.transaction
        detail.amount.CopyFrom(money_pb2.Money(currency_code="CNY", units=rng.randrange(5, 30_000),
                                               nanos=rng.randrange(100) * 10_000_000))
        detail.direction = event_pb2.TRANSACTION_DIRECTION_CREDIT if payroll else \
            event_pb2.TRANSACTION_DIRECTION_DEBIT
        detail.kind = event_pb2.TRANSACTION_KIND_SALARY if payroll else event_pb2.TRANSACTION_KIND_CARD_PAYMENT
        detail.holding = f"{customer}/holdings/{'SA' if payroll else 'CARD'}-1"
        if not payroll:
            detail.merchant_category_code = rng.choice(_MCCS)
    return event
