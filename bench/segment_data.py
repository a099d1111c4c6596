"""What the segment benchmarks share: a synthetic feature read model of N customers, loaded by
COPY into a fresh segment database (as profile's feed would leave it), and the segment service
run as its own process on it, following no peer feed.

N is 1,000,000 unless `CRM_BENCH_SEGMENT_CUSTOMERS` says otherwise (e.g. 100000 for a quick run).
The rows are seeded, so every run and both benchmarks see the same customers.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc

from bench.environment import free_port, run_to_completion, size_from_env
from bench.harness import BenchRun
from crm.segment.v1 import segment_service_pb2_grpc
from crmkit.auth import Role, issue_token
from crmkit.settings import plain_database_url

DEFAULT_CUSTOMERS = 1_000_000
CUSTOMERS_VARIABLE = "CRM_BENCH_SEGMENT_CUSTOMERS"
COPY_BATCH = 100_000
# Each category's chance of being held (a term deposit makes a fund likelier, payroll a card).
_CATEGORIES = (("SAVINGS", 0.7), ("CURRENT_ACCOUNT", 0.6), ("TERM_DEPOSIT", 0.3), ("CREDIT_CARD", 0.35),
               ("PAYROLL", 0.35), ("LOAN", 0.15), ("MORTGAGE", 0.1), ("INSURANCE", 0.15), ("WEALTH", 0.05),
               ("BOND", 0.05), ("PRECIOUS_METAL", 0.03))
_CHANNELS = (("EMAIL", 0.5), ("SMS", 0.4), ("WECHAT", 0.3), ("MOBILE_APP", 0.35), ("PHONE_CALL", 0.1), ("POST", 0.05))
COLUMNS = ("customer_id", "branch_id", "customer_type", "age_years", "aum", "aum_change_90d", "average_aum_90d",
           "product_categories", "marketing_channels", "days_since_last_activity", "tenure_days", "do_not_contact",
           "do_not_contact_until", "features_as_of")


def customer_count() -> int:
    return size_from_env(CUSTOMERS_VARIABLE, DEFAULT_CUSTOMERS, minimum=1_000)


def synthetic_rows(count: int, *, seed: int = 17) -> Iterator[tuple[object, ...]]:
    """`count` read-model rows in COLUMNS order: ages, money, holdings and consents spread the
    way a retail bank's are (log-normal assets, most holding savings, few wealth products)."""
    rng = random.Random(seed)
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    soon = date(2027, 6, 30)
    for i in range(count):
        held = [name for name, chance in _CATEGORIES if rng.random() < chance]
        if ("TERM_DEPOSIT" in held and rng.random() < 0.45) or rng.random() < 0.08:
            held.append("FUND")
        aum = round(rng.lognormvariate(10.8, 1.4), 2)
        do_not_contact = rng.random() < 0.05
        yield (f"C{i:08d}", f"B{i % 300:03d}", 1 if rng.random() < 0.97 else 2,
               None if rng.random() < 0.04 else rng.randint(18, 90), Decimal(str(aum)),
               Decimal(str(round(rng.gauss(0, 30_000), 2))), Decimal(str(round(aum * rng.uniform(0.8, 1.2), 2))),
               held, [name for name, chance in _CHANNELS if rng.random() < chance], rng.randint(0, 400),
               rng.randint(30, 7_000), do_not_contact,
               soon - timedelta(days=rng.randint(0, 400)) if do_not_contact and rng.random() < 0.3 else None, as_of)


async def load_read_model(bench: BenchRun, database_url: str, count: int) -> None:
    """COPY the synthetic customers into `customer_feature`, then VACUUM ANALYZE it."""
    connection = await asyncpg.connect(plain_database_url(database_url))
    try:
        rows = synthetic_rows(count)
        loaded = 0
        while loaded < count:
            batch = [row for _, row in zip(range(COPY_BATCH), rows, strict=False)]
            await connection.copy_records_to_table("customer_feature", records=batch, columns=list(COLUMNS))
            loaded += len(batch)
        await connection.execute("VACUUM ANALYZE customer_feature")
    finally:
        await connection.close()
    bench.note(f"{count:,} customers in the read model")


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    """The segment service's settings as a deployment sets them, following no peer feed."""
    return {
        **os.environ,
        "CRM_ENV": "development",
        "CRM_HOST": "127.0.0.1",
        "CRM_JWT_SECRET": jwt_secret,
        "CRM_SHUTDOWN_GRACE_SECONDS": "2",
        "CRM_SEGMENT_DATABASE_URL": database_url,
        "CRM_SEGMENT_PORT": str(port),
        "CRM_SEGMENT_PROFILE_TARGET": "",
        "CRM_SEGMENT_OPERATION_POLL_SECONDS": "0.05",
    }


@dataclass(frozen=True)
class SegmentBench:
    stub: segment_service_pb2_grpc.SegmentServiceStub
    database_url: str
    customers: int
    analyst: tuple[tuple[str, str], ...]
    marketer: tuple[tuple[str, str], ...]


@asynccontextmanager
async def segment_service(bench: BenchRun) -> AsyncIterator[SegmentBench]:
    """A fresh, migrated segment database holding N synthetic customers, and the segment service
    serving it as its own process."""
    jwt_secret = secrets.token_urlsafe(48)

    def bearer(role: Role) -> tuple[tuple[str, str], ...]:
        token = issue_token(secret=jwt_secret, subject=f"bench-{role.value}", roles=[role],
                            lifetime_seconds=6 * 3600)
        return (("authorization", f"Bearer {token}"),)

    count = customer_count()
    async with bench.database() as database_url:
        port = free_port()
        env = service_env(database_url, port, jwt_secret)
        bench.note("migrating a fresh database")
        await run_to_completion([sys.executable, "-m", "crm_segment", "migrate"], env=env,
                                log_path=bench.log_path("migrate"))
        # Started before the load: on a busy machine its start-up needs the cores the load takes.
        async with (bench.server("segment", [sys.executable, "-m", "crm_segment", "serve"], env=env,
                                 port=port) as address,
                    grpc.aio.insecure_channel(address) as channel):
            await load_read_model(bench, database_url, count)
            yield SegmentBench(stub=segment_service_pb2_grpc.SegmentServiceStub(channel),
                               database_url=plain_database_url(database_url), customers=count,
                               analyst=bearer(Role.ANALYST), marketer=bearer(Role.MARKETER))
