"""segment-materialise: materialising a segment of (nearly) every one of N customers (1,000,000
by default), with its membership history, against the same writes in hand-written SQL.

The segment service runs as its own process on a fresh database whose read model holds the
synthetic customers (`bench.segment_data`). The floor comes first: in one transaction on one
asyncpg connection, the hand-written `INSERT INTO segment_member ... SELECT` of the rule's
customers and `INSERT INTO membership_change ... SELECT` of their entries, rolled back (then the
tables are vacuumed). Then a segment with the same rule is created and materialised through the
RPC; the time runs from MaterialiseSegment to the operation's SUCCEEDED (polled every 20 ms).
Headline: that time (goal <= 2 s) against the floor. For information, a second materialisation
after 5 % of the customers stopped qualifying (only exits to record).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from bench.harness import BenchRun
from bench.segment_data import SegmentBench, segment_service
from crm.common.v1 import operation_pb2
from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb

RULE = "tenure_days >= 30 && aum >= 0.0"
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 1_800.0
LEAVING_SHARE = 0.05

_FLOOR = """
    WITH now_in AS MATERIALIZED (
             SELECT customer_id FROM customer_feature WHERE NOT removed AND tenure_days >= 30 AND aum >= 0),
         came AS (INSERT INTO segment_member (segment_id, customer_id, entered_at, rule_version)
                  SELECT 'floor', customer_id, now(), 1 FROM now_in RETURNING customer_id)
    INSERT INTO membership_change (segment_id, customer_id, kind, cause, changed_at, rule_version)
    SELECT 'floor', customer_id, 1, 1, now(), 1 FROM came"""


async def run(bench: BenchRun) -> None:
    async with segment_service(bench) as segment:
        floor = await floor_seconds(segment.database_url)
        bench.note(f"hand-written writes: {floor:.2f} s")
        created = await segment.stub.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
            segment_id="everyone", display_name="Everyone", rule=RULE)), metadata=segment.analyst)
        first, result = await materialise(segment, created.segment.name)
        bench.note(f"first materialisation: {first:.2f} s, {result.member_count:,} members, "
                   f"{result.entered_count:,} entered")
        if result.entered_count != segment.customers:
            raise AssertionError(f"{result.entered_count} entered, expected {segment.customers}")
        bench.emit("materialise_seconds", first, "s", floor=floor, headline=True)
        bench.emit("materialise_members_per_s", result.member_count / first, "members/s",
                   floor=result.member_count / floor)
        leaving = await make_some_leave(segment.database_url, segment.customers)
        second, changed = await materialise(segment, created.segment.name)
        bench.note(f"second materialisation: {second:.2f} s, {changed.left_count:,} left")
        if changed.left_count != leaving:
            raise AssertionError(f"{changed.left_count} left, expected {leaving}")
        bench.emit("rematerialise_seconds_5pct_left", second, "s")
        bench.emit("members", result.member_count, "customers")


async def floor_seconds(url: str) -> float:
    connection = await asyncpg.connect(url)
    try:
        transaction = connection.transaction()
        await transaction.start()
        started = time.perf_counter()
        await connection.execute(_FLOOR)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
        await connection.execute("VACUUM ANALYZE segment_member")
        await connection.execute("VACUUM ANALYZE membership_change")
    finally:
        await connection.close()
    return elapsed


async def materialise(segment: SegmentBench, name: str) -> tuple[float, segment_pb2.MaterialiseSegmentResult]:
    """Seconds from the request to SUCCEEDED, and the result."""
    started = time.perf_counter()
    response = await segment.stub.MaterialiseSegment(pb.MaterialiseSegmentRequest(
        name=name, request_id=str(uuid.uuid4())), metadata=segment.analyst)
    operation = response.operation
    while operation.state not in (operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
                                  operation_pb2.OPERATION_STATE_CANCELLED):
        if time.perf_counter() - started > TIMEOUT_SECONDS:
            raise TimeoutError("the materialisation did not finish")
        await asyncio.sleep(POLL_SECONDS)
        operation = (await segment.stub.GetOperation(pb.GetOperationRequest(name=operation.name),
                                                     metadata=segment.analyst)).operation
    elapsed = time.perf_counter() - started
    if operation.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        raise AssertionError(f"the materialisation ended {operation.state}: {operation.error.message}")
    result = segment_pb2.MaterialiseSegmentResult()
    operation.response.Unpack(result)
    return elapsed, result


async def make_some_leave(url: str, customers: int) -> int:
    """Every 20th customer's tenure drops below the rule's; how many."""
    connection = await asyncpg.connect(url)
    try:
        status = await connection.execute(
            "UPDATE customer_feature SET tenure_days = 10 WHERE (substr(customer_id, 2)::int % $1) = 0",
            round(1 / LEAVING_SHARE))
        await connection.execute("VACUUM ANALYZE customer_feature")
    finally:
        await connection.close()
    return int(status.split()[-1])
