"""risk-suitability: CheckSuitability throughput at concurrency 16, as a ratio to a bare gRPC call.

The risk service runs as its own process (`python -m crm_risk serve`, following no profile feed)
on a fresh, migrated database whose customer read model is loaded with synthetic customers the
way the profile feed follower leaves them (one COPY). Then the campaign service's identity checks
random customers against products of random risk levels for marketing, each decision audited in
its own transaction (the path campaign calls), alternating in slices with the bare gRPC floor at
the same concurrency. Headline: CheckSuitability qps at concurrency 16 over the bare call's.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
from datetime import UTC, date, datetime

import asyncpg
import grpc

from bench.environment import free_port, run_to_completion
from bench.floors import bare_grpc_call, bare_grpc_server
from bench.harness import BenchRun, LoadResult, drive_alternating
from crm.common.v1 import product_risk_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crmkit.auth import Role, issue_token

CUSTOMERS = 20_000
CONCURRENCIES = (1, 16)
HEADLINE_CONCURRENCY = 16
WARMUP_SECONDS = 1.0
ROUNDS = 5
CALL_TIMEOUT_SECONDS = 10.0


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    """The risk service's settings, as a deployment would set them, without a profile to follow."""
    return {**os.environ, "CRM_ENV": "development", "CRM_HOST": "127.0.0.1", "CRM_JWT_SECRET": jwt_secret,
            "CRM_SHUTDOWN_GRACE_SECONDS": "2", "CRM_RISK_DATABASE_URL": database_url, "CRM_RISK_PORT": str(port),
            "CRM_RISK_PROFILE_TARGET": "", "CRM_RISK_ALERT_ESCALATION_POLL_SECONDS": "0"}


async def load_customers(database_url: str) -> list[str]:
    """Synthetic read-model rows (tolerance, KYC, age, vulnerability, assessment expiry) by COPY."""
    rng = random.Random(17)
    now = datetime.now(UTC)
    rows = [(f"B{i:07d}", rng.randint(0, 5), rng.choice([2, 2, 2, 2, 1, 3]), rng.randint(17, 90),
             now.date(), rng.random() < 0.03, date(2027 if rng.random() < 0.9 else 2025, 6, 30), now)
            for i in range(CUSTOMERS)]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table(
            "customer", records=rows, columns=["customer_id", "risk_tolerance", "kyc_status", "age_years", "age_on",
                                              "vulnerable", "assessment_expiry", "data_as_of"])
    finally:
        await connection.close()
    return [row[0] for row in rows]


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    token = issue_token(secret=jwt_secret, subject="service:campaign", roles=[Role.SERVICE],
                        lifetime_seconds=6 * 3600)
    metadata = (("authorization", f"Bearer {token}"),)
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_risk", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        customer_ids = await load_customers(database_url)
        bench.note(f"{len(customer_ids)} customers in the read model")
        rng = random.Random(7)
        checks = [pb.CheckSuitabilityRequest(
            customer=f"customers/{rng.choice(customer_ids)}", product_code=f"FUND-{rng.randint(1, 40)}",
            product_risk_level=rng.choice(list(product_risk_pb2.ProductRiskLevel.values())[1:]),
            context="campaigns/bench") for _ in range(50_000)]
        async with (bench.server("risk", [sys.executable, "-m", "crm_risk", "serve"], env=env,
                                 port=port) as risk_address,
                    bare_grpc_server(bench, env=dict(os.environ)) as bare_address,
                    grpc.aio.insecure_channel(risk_address) as channel):
            stub = risk_service_pb2_grpc.RiskServiceStub(channel)
            first = (await stub.CheckSuitability(checks[0], metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)).result
            if not first.decision_audit:
                raise AssertionError("CheckSuitability did not audit its decision")

            async def check(index: int) -> object:
                return await stub.CheckSuitability(checks[index % len(checks)], metadata=metadata,
                                                   timeout=CALL_TIMEOUT_SECONDS)

            async with bare_grpc_call(bare_address, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS) as bare:
                for concurrency in CONCURRENCIES:
                    floor, measured = await drive_alternating(
                        [bare, check], concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS,
                        warmup_seconds=WARMUP_SECONDS)
                    bench.note(f"bare gRPC        {floor.summary()}")
                    bench.note(f"CheckSuitability {measured.summary()}")
                    report(bench, measured, floor, headline=concurrency == HEADLINE_CONCURRENCY)


def report(bench: BenchRun, measured: LoadResult, floor: LoadResult, *, headline: bool) -> None:
    c = measured.concurrency
    bench.emit(f"check_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput, headline=headline)
    bench.emit(f"check_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"check_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms)
