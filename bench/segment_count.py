"""segment-count: PreviewSegment's count over N customers (1,000,000 by default) for three
typical rules, against the hand-written SQL count of the same rule on the same table.

The segment service runs as its own process on a fresh database whose read model holds the
synthetic customers (`bench.segment_data`). For each rule, after one warm-up, `RUNS` previews
through the RPC (the whole answer: the count, a sample of 10, the population and the
freshness) alternate with `RUNS` runs of the hand-written `SELECT count(*)` on one asyncpg
connection; each figure is the median, and the bench fails unless both counted the same
customers. Also, for information, the compiled CEL condition's own count on the same connection
(the SQL the compiler writes, without the preview's other work). Headline: the slowest rule's
preview time, with its hand-written SQL as the floor (goals: ratio <= 1.5 and <= 0.3 s).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import asyncpg

from bench.harness import BenchRun
from bench.segment_data import SegmentBench, segment_service
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.segments.rules import compile_rule

RUNS = 5
CALL_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Rule:
    name: str
    cel: str
    # The same selection, written by hand over `customer_feature`.
    sql: str


RULES = (
    Rule("young_affluent_payroll", 'aum >= 500000.0 && age < 35 && "PAYROLL" in product_categories',
         "aum >= 500000 AND age_years < 35 AND 'PAYROLL' = ANY(product_categories)"),
    Rule("fund_prospects_by_email",
         '"TERM_DEPOSIT" in product_categories && !("FUND" in product_categories) '
         '&& "EMAIL" in marketing_channels && !do_not_contact',
         "'TERM_DEPOSIT' = ANY(product_categories) AND NOT 'FUND' = ANY(product_categories) "
         "AND 'EMAIL' = ANY(marketing_channels) "
         "AND NOT (do_not_contact AND (do_not_contact_until IS NULL OR do_not_contact_until >= current_date))"),
    Rule("dormant_and_draining", "days_since_last_activity > 90 && aum_change_90d < -10000.0 && tenure_days > 365",
         "days_since_last_activity > 90 AND aum_change_90d < -10000 AND tenure_days > 365"),
)


def hand_written(rule: Rule) -> str:
    return f"SELECT count(*) FROM customer_feature WHERE NOT removed AND {rule.sql}"  # noqa: S608 - bench text


async def run(bench: BenchRun) -> None:
    async with segment_service(bench) as segment:
        connection = await asyncpg.connect(segment.database_url)
        try:
            worst: tuple[float, float, str] | None = None
            for rule in RULES:
                preview_seconds, sql_seconds, compiled_seconds = await measure(bench, segment, connection, rule)
                bench.emit(f"preview_seconds_{rule.name}", preview_seconds, "s", floor=sql_seconds)
                bench.emit(f"compiled_count_seconds_{rule.name}", compiled_seconds, "s", floor=sql_seconds)
                if worst is None or preview_seconds > worst[0]:
                    worst = (preview_seconds, sql_seconds, rule.name)
        finally:
            await connection.close()
    assert worst is not None
    bench.note(f"slowest rule: {worst[2]}")
    bench.emit("preview_seconds_slowest_rule", worst[0], "s", floor=worst[1], headline=True)
    bench.emit("customers", segment.customers, "customers")


async def measure(bench: BenchRun, segment: SegmentBench, connection: asyncpg.Connection, rule: Rule
                  ) -> tuple[float, float, float]:
    """(preview, hand-written, compiled condition) median seconds for one rule."""
    compiled = compile_rule(rule.cel).condition
    assert compiled is not None, f"{rule.name} does not compile"
    compiled_sql = f"SELECT count(*) FROM customer_feature cf WHERE NOT cf.removed AND {compiled.text}"  # noqa: S608
    request = pb.PreviewSegmentRequest(rule=rule.cel, sample_size=10)

    async def preview() -> int:
        response = await segment.stub.PreviewSegment(request, metadata=segment.marketer,
                                                     timeout=CALL_TIMEOUT_SECONDS)
        return int(response.count)

    async def by_hand() -> int:
        return int(await connection.fetchval(hand_written(rule)))

    async def by_compiler() -> int:
        return int(await connection.fetchval(compiled_sql, *compiled.params))

    counts = {await preview(), await by_hand(), await by_compiler()}  # warm-up, and the same answer
    if len(counts) != 1:
        raise AssertionError(f"{rule.name}: the preview, the hand-written SQL and the compiled SQL disagree: {counts}")
    timings: dict[str, list[float]] = {"preview": [], "sql": [], "compiled": []}
    for _ in range(RUNS):
        for name, call in (("sql", by_hand), ("preview", preview), ("compiled", by_compiler)):
            started = time.perf_counter()
            await call()
            timings[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    bench.note(f"{rule.name}: {counts.pop():,} customers; preview {medians['preview'] * 1000:.0f} ms, "
               f"hand-written {medians['sql'] * 1000:.0f} ms, compiled {medians['compiled'] * 1000:.0f} ms")
    return medians["preview"], medians["sql"], medians["compiled"]
