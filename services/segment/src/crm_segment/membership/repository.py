"""All SQL of membership, on plain asyncpg connections: rule conditions come from
`crm_segment.cel.to_sql` as text with `$n` parameters, which this module numbers on from.
Nothing here opens or commits a transaction; the caller's does.

The population of every rule is the read model's customers that profile has not removed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from crm_segment.cel import SqlCondition
from crm_segment.membership.model import ChangeCause, ChangeKind, Member, MembershipChange
from crmkit.outbox import bulk_append

_POPULATION = "FROM customer_feature cf WHERE NOT cf.removed"


def _after(condition: SqlCondition, count: int) -> list[str]:
    """Placeholders for `count` more parameters after the condition's own."""
    first = len(condition.params) + 1
    return [f"${n}" for n in range(first, first + count)]


# The sample keeps each row with a chance expected to keep this many times the sample size of
# matches (by the planner's estimate of the rule's selectivity); at or above this chance, every row.
_OVERSAMPLE = 20
_SAMPLED_SHARE = 0.5


async def count_and_sample(connection: asyncpg.Connection, condition: SqlCondition, size: int
                           ) -> tuple[int, int, list[str]]:
    """(customers the condition selects, customers in the population, a uniform random sample of
    at most `size` of the selected), in one scan. The sample is drawn as the scan goes: each row
    is kept with one chance (a Bernoulli sample: the rule is evaluated only for the kept share),
    and `ORDER BY random()` picks among the kept matches, so every match is equally likely. On
    the rare draw that keeps fewer than `size` matches (or when the planner overestimated the
    selection), a second scan samples every matching row instead: uniform either way."""
    chance = await _sampling_chance(connection, condition, size)
    limit, keep = _after(condition, 2)
    row = await connection.fetchrow(
        f"""SELECT count(*) FILTER (WHERE {condition.text}) AS matching, count(*) AS total,
                   (array_agg(cf.customer_id ORDER BY random())
                        FILTER (WHERE random() < {keep}::float8 AND {condition.text}))[1:{limit}::int] AS sample
            {_POPULATION}""",
        *condition.params, size, chance)
    assert row is not None
    matching, total, sample = int(row["matching"]), int(row["total"]), list(row["sample"] or [])
    if len(sample) < min(size, matching):
        sample = await sample_matching(connection, condition, size)
    return matching, total, sample


async def _sampling_chance(connection: asyncpg.Connection, condition: SqlCondition, size: int) -> float:
    """The chance to keep a row for the sample: 1 for a small selection, else enough to expect
    `_OVERSAMPLE` times `size` matches by the planner's estimate (one planning, no scan)."""
    if size == 0:
        return 0.0
    plan = await connection.fetchval(
        f"EXPLAIN (FORMAT JSON) SELECT 1 {_POPULATION} AND {condition.text}",
        *condition.params)
    estimate = float(json.loads(plan)[0]["Plan"]["Plan Rows"])
    share = _OVERSAMPLE * size / estimate if estimate > 0 else 1.0
    return 1.0 if share >= _SAMPLED_SHARE else share


async def sample_matching(connection: asyncpg.Connection, condition: SqlCondition, size: int) -> list[str]:
    """A uniform random sample of at most `size` of the customers the condition selects, from
    every row."""
    (limit,) = _after(condition, 1)
    rows = await connection.fetch(
        f"SELECT cf.customer_id {_POPULATION} AND {condition.text} ORDER BY random() LIMIT {limit}::int",
        *condition.params, size)
    return [row["customer_id"] for row in rows]


async def features_as_of(connection: asyncpg.Connection) -> datetime | None:
    value: datetime | None = await connection.fetchval("SELECT max(features_as_of) FROM customer_feature")
    return value


async def lock_segment(connection: asyncpg.Connection, segment_id: str) -> asyncpg.Record | None:
    """The segment's rule and version, locked until the transaction ends (one materialisation
    of a segment at a time, and none while it is deleted)."""
    record: asyncpg.Record | None = await connection.fetchrow(
        "SELECT rule, rule_version FROM segment WHERE segment_id = $1 FOR UPDATE", segment_id)
    return record


async def segment_rule(connection: asyncpg.Connection, segment_id: str) -> str | None:
    rule: str | None = await connection.fetchval("SELECT rule FROM segment WHERE segment_id = $1", segment_id)
    return rule


async def segment_exists(connection: asyncpg.Connection, segment_id: str) -> bool:
    return bool(await connection.fetchval("SELECT EXISTS (SELECT 1 FROM segment WHERE segment_id = $1)",
                                          segment_id))


async def replace_members(connection: asyncpg.Connection, condition: SqlCondition, *, segment_id: str,
                          rule_version: int, cause: ChangeCause, operation_id: uuid.UUID) -> tuple[int, int, int]:
    """Make the members exactly the customers the condition selects, recording each entry and
    exit in the history, in one statement; (members, entered, left)."""
    segment, version, why, operation = _after(condition, 4)
    row = await connection.fetchrow(
        f"""WITH now_in AS MATERIALIZED (SELECT cf.customer_id {_POPULATION} AND {condition.text}),
             gone AS (DELETE FROM segment_member m WHERE m.segment_id = {segment}::text
                      AND NOT EXISTS (SELECT 1 FROM now_in i WHERE i.customer_id = m.customer_id)
                      RETURNING m.customer_id),
             came AS (INSERT INTO segment_member (segment_id, customer_id, entered_at, rule_version)
                      SELECT {segment}::text, customer_id, now(), {version}::bigint FROM now_in
                      ON CONFLICT (segment_id, customer_id) DO NOTHING RETURNING customer_id),
             history AS (INSERT INTO membership_change
                             (segment_id, customer_id, kind, cause, changed_at, rule_version, operation_id)
                         SELECT {segment}::text, customer_id, {int(ChangeKind.ENTERED)}, {why}::smallint, now(),
                                {version}::bigint, {operation}::uuid FROM came
                         UNION ALL
                         SELECT {segment}::text, customer_id, {int(ChangeKind.LEFT)}, {why}::smallint, now(),
                                {version}::bigint, {operation}::uuid FROM gone)
           SELECT (SELECT count(*) FROM now_in) AS members, (SELECT count(*) FROM came) AS entered,
                  (SELECT count(*) FROM gone) AS left_""",  # noqa: S608 - rule values are bound parameters
        *condition.params, segment_id, rule_version, int(cause), operation_id)
    assert row is not None
    return int(row["members"]), int(row["entered"]), int(row["left_"])


# A materialisation's own history rows: changed_at is the transaction's now() (one value), so the
# segment's history index finds them without reading the segment's older history.
_CHANGES_OF_RUN = """SELECT * FROM membership_change
                     WHERE segment_id = $1 AND changed_at = now() AND operation_id = $2 ORDER BY change_id"""
# One SegmentMember event per (name, encoded Any payload) pair, in the order given.
_MEMBER_EVENTS = """SELECT $1::text, u.name, $2::smallint, u.payload, $3::text, $4::text
                    FROM unnest($5::text[], $6::bytea[]) WITH ORDINALITY AS u (name, payload, n) ORDER BY u.n"""


async def changes_of_run(connection: asyncpg.Connection, *, segment_id: str, operation_id: uuid.UUID,
                         batch: int) -> AsyncIterator[list[MembershipChange]]:
    """The entries and exits this transaction's materialisation recorded, `batch` at a time."""
    chunk: list[MembershipChange] = []
    async for row in connection.cursor(_CHANGES_OF_RUN, segment_id, operation_id, prefetch=batch):
        chunk.append(_change(row))
        if len(chunk) == batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def publish_members(connection: asyncpg.Connection, changes: Sequence[tuple[str, bytes]], *,
                          resource_type: str, change_type: int, actor: str, trace_id: str) -> int:
    """Append one change event per (resource name, encoded payload), in the caller's transaction."""
    return await bulk_append(connection, _MEMBER_EVENTS, resource_type, change_type, actor, trace_id,
                             [name for name, _ in changes], [payload for _, payload in changes])


async def record_materialised(connection: asyncpg.Connection, *, segment_id: str, member_count: int,
                              operation_name: str) -> None:
    """Membership is not the definition: neither the etag nor `update_time` moves."""
    await connection.execute(
        """UPDATE segment SET member_count = $2, last_materialised_at = now(), last_materialise_operation = $3
           WHERE segment_id = $1""", segment_id, member_count, operation_name)


async def members_page(connection: asyncpg.Connection, *, segment_id: str, entered_after: datetime | None,
                       after: str | None, limit: int) -> list[Member]:
    args: list[Any] = [segment_id]
    clauses = ["segment_id = $1"]
    if entered_after is not None:
        args.append(entered_after)
        clauses.append(f"entered_at >= ${len(args)}")
    if after is not None:
        args.append(after)
        clauses.append(f"customer_id > ${len(args)}")
    args.append(limit)
    rows = await connection.fetch(
        f"SELECT * FROM segment_member WHERE {' AND '.join(clauses)} ORDER BY customer_id LIMIT ${len(args)}",  # noqa: S608 - clauses are fixed text
        *args)
    return [Member(segment_id=r["segment_id"], customer_id=r["customer_id"], entered_at=r["entered_at"],
                   rule_version=r["rule_version"]) for r in rows]


async def member_count(connection: asyncpg.Connection, *, segment_id: str, entered_after: datetime | None) -> int:
    return int(await connection.fetchval(
        "SELECT count(*) FROM segment_member WHERE segment_id = $1 AND ($2::timestamptz IS NULL OR entered_at >= $2)",
        segment_id, entered_after))


async def changes_page(connection: asyncpg.Connection, *, segment_id: str | None, customer_id: str | None,
                       kind: ChangeKind | None, since: datetime | None, until: datetime | None,
                       after: tuple[datetime, int] | None, limit: int) -> list[MembershipChange]:
    """Newest first: by change time, then by change id."""
    args: list[Any] = []
    clauses: list[str] = []
    for column, value in (("segment_id = ", segment_id), ("customer_id = ", customer_id),
                          ("kind = ", int(kind) if kind is not None else None), ("changed_at >= ", since),
                          ("changed_at < ", until)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column}${len(args)}")
    if after is not None:
        args.extend(after)
        clauses.append(f"(changed_at, change_id) < (${len(args) - 1}::timestamptz, ${len(args)}::bigint)")
    args.append(limit)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await connection.fetch(
        f"SELECT * FROM membership_change {where} ORDER BY changed_at DESC, change_id DESC LIMIT ${len(args)}",  # noqa: S608 - clauses are fixed text
        *args)
    return [_change(r) for r in rows]


def _change(row: asyncpg.Record) -> MembershipChange:
    return MembershipChange(change_id=row["change_id"], segment_id=row["segment_id"], customer_id=row["customer_id"],
                            kind=ChangeKind(row["kind"]), cause=ChangeCause(row["cause"]),
                            changed_at=row["changed_at"], rule_version=row["rule_version"],
                            operation_id=row["operation_id"], source_event_id=row["source_event_id"])

