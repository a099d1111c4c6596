"""feedback-intake: FileComplaint throughput and latency, as a ratio to the same rows written by
hand-written SQL, and to a bare gRPC call.

The feedback service runs as its own process (`python -m crm_feedback serve`) on a fresh,
migrated database, without peers (no profile or segment read model to follow: the customer
check and the tier deadline cost nothing here) and with its SLA clock worker off. A channel app
files complaints (a fixed category, so no classifier runs) at concurrency 1 and 16, alternating
in slices with two floors:

- `sql`: one transaction on a plain asyncpg connection (a pool of 16) writing the rows one filing
  writes, copied from a complaint the service filed first (its complaint row, its FILED step, its
  two SLA clocks, its idempotency key, its change event, its audit record): the number, then each
  insert, the audit record last, after the `changes` chain's lock and tail read (the chain's rule,
  crmkit.audit: every audited change of the service queues on that lock from the tail read to its
  commit, the service's path as well as this floor).
- `bare`: an empty gRPC call (bench.bare_grpc) with the same token.

Headline: FileComplaint complaints/s at concurrency 16 over the SQL floor's transactions/s at 16.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc

from bench.environment import free_port, run_to_completion
from bench.feedback_classify import service_env
from bench.floors import bare_grpc_call, bare_grpc_server
from bench.harness import BenchRun, Call, LoadResult, drive_alternating
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2_grpc
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.audit import CHANGES_CHAIN, AuditEntry, canonical_body, canonical_time
from crmkit.auth import Role, issue_token
from crmkit.settings import plain_database_url

CONCURRENCIES = (1, 16)
HEADLINE_CONCURRENCY = 16
WARMUP_SECONDS = 1.0
ROUNDS = 4
CALL_TIMEOUT_SECONDS = 30.0
START_SECONDS = 180.0
CHAIN_LOCK_KEY = 0x43524D415544  # crmkit.audit's `changes` chain lock
# The tables one filing writes, and the column that ties each row to the complaint.
WRITTEN = {"complaint": "complaint_id", "complaint_step": "complaint_id", "sla_clock": "complaint_id",
           "idempotency_key": "resource_name", "outbox_event": "resource_name", "audit_record": "resource_name"}


def intake_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    return {**service_env(database_url, port, jwt_secret), "CRM_FEEDBACK_TRAINING_DIR": "",
            "CRM_FEEDBACK_PROFILE_TARGET": "", "CRM_FEEDBACK_SEGMENT_TARGET": "",
            "CRM_FEEDBACK_SLA_CLOCK_SECONDS": "0", "CRM_ACCESS_LOG": "false", "CRM_LOG_LEVEL": "warning"}


def complaint(index: int) -> complaint_pb2.Complaint:
    return complaint_pb2.Complaint(
        customer=f"customers/B{index % 50_000:09d}", channel=channel_pb2.CHANNEL_MOBILE_APP,
        category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES, subcategory="annual_fee",
        priority=complaint_pb2.COMPLAINT_PRIORITY_MEDIUM, branch_id="BJ-001",
        description="I was charged the annual fee twice this month and nobody answers the hotline.")


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    metadata = (("authorization",
                 f"Bearer {issue_token(secret=jwt_secret, subject='mobile-app', roles=[Role.CHANNEL_APP])}"),)
    async with bench.database() as database_url:
        port = free_port()
        env = intake_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_feedback", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        async with (bench.server("feedback", [sys.executable, "-m", "crm_feedback", "serve"], env=env,
                                 port=port, start_seconds=START_SECONDS) as feedback_address,
                    bare_grpc_server(bench, env=dict(os.environ)) as bare_address,
                    grpc.aio.insecure_channel(feedback_address) as channel):
            stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)

            async def file(index: int) -> object:
                return await stub.FileComplaint(pb.FileComplaintRequest(
                    complaint=complaint(index), request_id=str(uuid.uuid4())), metadata=metadata,
                    timeout=CALL_TIMEOUT_SECONDS)

            template = (await stub.FileComplaint(pb.FileComplaintRequest(
                complaint=complaint(0), request_id=str(uuid.uuid4())), metadata=metadata)).complaint
            pool = await asyncpg.create_pool(plain_database_url(database_url), min_size=max(CONCURRENCIES),
                                             max_size=max(CONCURRENCIES))
            try:
                sql = await sql_floor(pool, template.complaint_id)
                async with bare_grpc_call(bare_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as bare:
                    for concurrency in CONCURRENCIES:
                        measured, by_hand, empty = await drive_alternating(
                            [file, sql, bare], concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS,
                            warmup_seconds=WARMUP_SECONDS)
                        bench.note(f"FileComplaint {measured.summary()}")
                        bench.note(f"SQL floor     {by_hand.summary()}")
                        bench.note(f"bare gRPC     {empty.summary()}")
                        report(bench, measured, by_hand, empty, headline=concurrency == HEADLINE_CONCURRENCY)
            finally:
                await pool.close()


async def sql_floor(pool: asyncpg.Pool, complaint_id: str) -> Call:
    """A `Call` writing, in one transaction, a copy of every row the service wrote for `complaint_id`."""
    async with pool.acquire() as connection:
        statements: dict[str, tuple[str, list[str], list[asyncpg.Record]]] = {}
        for table, key in WRITTEN.items():
            columns = [row["column_name"] for row in await connection.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND is_identity = 'NO'"
                " AND is_generated = 'NEVER'"
                " AND coalesce(column_default, '') NOT LIKE 'nextval%'"
                " ORDER BY ordinal_position", table)]
            value = complaint_id if key == "complaint_id" else f"complaints/{complaint_id}"
            rows = await connection.fetch(f'SELECT {", ".join(columns)} FROM "{table}" WHERE "{key}" = $1',  # noqa: S608
                                          value)
            if not rows:
                raise AssertionError(f"the service wrote no {table} row for {complaint_id}")
            placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            statements[table] = (f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({placeholders})',  # noqa: S608
                                 columns,
                                 list(rows))
    (audit,) = statements["audit_record"][2]
    entry = AuditEntry(principal=audit["principal"], action=audit["action"], resource_name="", purpose=audit["purpose"],
                       actor_roles=tuple(audit["actor_roles"]), method=audit["method"])

    def values(table: str, row: asyncpg.Record, new_id: str) -> list[Any]:
        fresh = {"complaint_id": new_id, "resource_name": f"complaints/{new_id}", "request_id": uuid.uuid4(),
                 "event_id": uuid.uuid4()}
        return [fresh.get(column, row[column]) for column in statements[table][1]]

    async def call(index: int) -> object:
        async with pool.acquire() as connection, connection.transaction():
            number = await connection.fetchval("SELECT nextval('complaint_number')")
            new_id = f"CMP-BENCH-{number:09d}"
            for table in ("idempotency_key", "complaint", "complaint_step", "outbox_event"):
                sql, _, rows = statements[table]
                await connection.execute(sql, *values(table, rows[0], new_id))
            sql, _, clocks = statements["sla_clock"]
            await connection.executemany(sql, [values("sla_clock", row, new_id) for row in clocks])
            await connection.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK_KEY)
            prev = await connection.fetchval("SELECT hash FROM audit_record WHERE chain_id = $1 ORDER BY seq DESC"
                                             " LIMIT 1", CHANGES_CHAIN)
            await connection.execute(statements["audit_record"][0], *_audit_values(
                statements["audit_record"][1], audit, entry, prev, f"complaints/{new_id}"))
        return number

    return call


def _audit_values(columns: Sequence[str], template: asyncpg.Record, entry: AuditEntry, prev: bytes,
                  resource_name: str) -> list[Any]:
    now = datetime.now(UTC)
    own = AuditEntry(principal=entry.principal, action=entry.action, resource_name=resource_name,
                     purpose=entry.purpose, actor_roles=entry.actor_roles, method=entry.method)
    digest = hashlib.sha256(prev + canonical_body(CHANGES_CHAIN, canonical_time(now), own)).digest()
    fresh = {"recorded_at": now, "resource_name": resource_name, "prev_hash": prev, "hash": digest}
    return [fresh.get(column, template[column]) for column in columns]


def report(bench: BenchRun, measured: LoadResult, sql: LoadResult, bare: LoadResult, *, headline: bool) -> None:
    c = measured.concurrency
    bench.emit(f"file_per_s_c{c}", measured.throughput, "complaints/s", floor=sql.throughput, headline=headline)
    bench.emit(f"file_p50_ms_c{c}", measured.p50_ms, "ms", floor=sql.p50_ms)
    bench.emit(f"file_p99_ms_c{c}", measured.p99_ms, "ms", floor=sql.p99_ms)
    bench.emit(f"file_over_bare_grpc_c{c}", measured.throughput, "complaints/s", floor=bare.throughput)
    bench.emit(f"bare_grpc_p50_ms_c{c}", bare.p50_ms, "ms")
