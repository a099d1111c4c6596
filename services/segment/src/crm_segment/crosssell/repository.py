"""All SQL of association-rule runs: the start inserts the run in the RPC's unit of work
(SQLAlchemy Core); reads and the worker's outcome run on plain asyncpg connections. Nothing
here opens or commits a transaction. A run's state is as for clustering runs
(`clusters.repository`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.crosssell.model import (
    AssociationRule,
    AssociationRun,
    MiningSpec,
    RuleFilter,
    RuleMiningResult,
    RuleOrder,
    StoredRule,
)
from crm_segment.crosssell.rules import target_rule
from crm_segment.crosssell.tables import association_run
from crmkit.operations import FAILED, SUCCEEDED

_RUN = f"""
    SELECT r.*, CASE WHEN r.completed_at IS NOT NULL THEN {int(SUCCEEDED)}
                     ELSE coalesce(o.state, {int(FAILED)}) END AS state,
           coalesce(r.completed_at, o.end_time) AS ended_at
    FROM association_run r LEFT JOIN operation o ON o.operation_id = r.operation_id"""  # noqa: S608 - fixed text
# Fixed text per order; the caller's choice only picks one.
_ORDER_COLUMN = {RuleOrder.LIFT: "lift", RuleOrder.CONFIDENCE: "confidence", RuleOrder.SUPPORT: "support"}


async def insert_run(uow: AsyncConnection, *, run_id: uuid.UUID, operation_id: uuid.UUID, spec: MiningSpec,
                     creator: str) -> None:
    await uow.execute(sa.insert(association_run).values(
        run_id=run_id, operation_id=operation_id, population_segment_id=spec.population_segment_id,
        min_support=spec.min_support, min_confidence=spec.min_confidence, min_lift=spec.min_lift,
        max_rule_size=spec.max_rule_size, max_rules=spec.max_rules, creator=creator))


async def get_run(connection: asyncpg.Connection, run_id: uuid.UUID) -> AssociationRun | None:
    row = await connection.fetchrow(f"{_RUN} WHERE r.run_id = $1", run_id)
    return None if row is None else _run_of(row)


async def latest_run(connection: asyncpg.Connection) -> AssociationRun | None:
    row = await connection.fetchrow(
        f"{_RUN} WHERE r.completed_at IS NOT NULL ORDER BY r.completed_at DESC, r.run_id LIMIT 1")
    return None if row is None else _run_of(row)


async def rules_page(connection: asyncpg.Connection, run_id: uuid.UUID, where: RuleFilter, *,
                     after: tuple[float, int] | None, limit: int) -> list[StoredRule]:
    """Rules of the run matching the filter, the chosen measure descending then rule id, after
    the previous page's last (measure, rule id)."""
    column = _ORDER_COLUMN[where.order]
    rows = await connection.fetch(
        f"""SELECT * FROM association_rule
            WHERE run_id = $1 AND lift >= $2 AND confidence >= $3
              AND (cardinality($4::text[]) = 0 OR antecedent <@ $4::text[])
              AND ($5::text = '' OR consequent = $5::text)
              AND ($6::float8 IS NULL OR ({column}, -rule_id) < ($6::float8, -$7::int))
            ORDER BY {column} DESC, rule_id LIMIT $8""",  # noqa: S608 - the order column is fixed text
        run_id, where.min_lift, where.min_confidence, list(where.held_items), where.consequent_item,
        after[0] if after else None, after[1] if after else 0, limit)
    return [_rule_of(row) for row in rows]


async def population_baskets(connection: asyncpg.Connection, population_segment_id: str) -> dict[str, frozenset[str]]:
    """Customer -> the product categories they hold, over the run's population."""
    if population_segment_id:
        rows = await connection.fetch(
            """SELECT cf.customer_id, cf.product_categories FROM customer_feature cf
               JOIN segment_member sm ON sm.customer_id = cf.customer_id AND sm.segment_id = $1
               WHERE NOT cf.removed""", population_segment_id)
    else:
        rows = await connection.fetch(
            "SELECT cf.customer_id, cf.product_categories FROM customer_feature cf WHERE NOT cf.removed")
    return {row[0]: frozenset(row[1]) for row in rows}


async def record_outcome(connection: asyncpg.Connection, run_id: uuid.UUID, result: RuleMiningResult,
                         rules: Sequence[StoredRule], features_as_of: datetime | None) -> None:
    await connection.execute(
        """UPDATE association_run SET completed_at = now(), customer_count = $2, rule_count = $3,
                  matching_rule_count = $4, features_as_of = $5 WHERE run_id = $1""",
        run_id, result.basket_count, len(rules), result.matching_rule_count, features_as_of)
    await connection.executemany(
        """INSERT INTO association_rule (run_id, rule_id, antecedent, consequent, support, confidence, lift,
                                         both_count, antecedent_count, consequent_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        [(run_id, r.rule_id, list(r.rule.antecedent), r.rule.consequent, r.rule.support, r.rule.confidence,
          r.rule.lift, r.rule.both_count, r.rule.antecedent_count, r.rule.consequent_count) for r in rules])


def _rule_of(row: Any) -> StoredRule:
    rule = AssociationRule(antecedent=tuple(row["antecedent"]), consequent=row["consequent"], support=row["support"],
                           confidence=row["confidence"], lift=row["lift"], antecedent_count=row["antecedent_count"],
                           consequent_count=row["consequent_count"], both_count=row["both_count"])
    return StoredRule(rule_id=row["rule_id"], rule=rule, target_rule=target_rule(rule))


def _run_of(row: Any) -> AssociationRun:
    spec = MiningSpec(population_segment_id=row["population_segment_id"], min_support=row["min_support"],
                      min_confidence=row["min_confidence"], min_lift=row["min_lift"],
                      max_rule_size=row["max_rule_size"], max_rules=row["max_rules"])
    return AssociationRun(
        run_id=str(row["run_id"]), operation_id=str(row["operation_id"]), state=row["state"], spec=spec,
        creator=row["creator"], created_at=row["created_at"], completed_at=row["completed_at"],
        ended_at=row["ended_at"], customer_count=row["customer_count"], rule_count=row["rule_count"],
        matching_rule_count=row["matching_rule_count"], features_as_of=row["features_as_of"])
