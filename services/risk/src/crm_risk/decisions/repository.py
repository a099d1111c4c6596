"""All SQL about decision audits. Never commits: the deciding transaction does."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_risk.decisions.model import DecisionAudit, DecisionFilter, DecisionType
from crm_risk.decisions.tables import decision_audit as t
from crmkit.db import UnitOfWork


def _from_row(row: Any) -> DecisionAudit:
    values = dict(row._mapping)
    values["decision_type"] = DecisionType(values["decision_type"])
    values["reason_codes"] = tuple(values["reason_codes"])
    return DecisionAudit(**values)


async def insert_many(uow: UnitOfWork, rows: Sequence[dict[str, Any]]) -> None:
    """One statement for all of a call's decisions (a batch check records up to 1000)."""
    if rows:
        await uow.execute(sa.insert(t), list(rows))


_COPIED = ("decision_audit_id", "decision_type", "customer_id", "decided_by", "decider_version", "outcome",
           "reason_codes", "inputs", "inputs_sha256", "context", "requester", "trace_id", "decide_time")


async def copy_many(connection: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """`insert_many` for bulk work on a raw connection: one COPY (a batch scoring's chunk)."""
    if rows:
        await connection.copy_records_to_table(t.name, columns=_COPIED, records=[
            tuple(json.dumps(row[c]) if c == "inputs" else row[c] for c in _COPIED) for row in rows])


async def page(uow: UnitOfWork, *, before: int | None, limit: int, where: DecisionFilter) -> list[DecisionAudit]:
    """Newest first."""
    query = sa.select(t).order_by(t.c.sequence.desc()).limit(limit)
    if before is not None:
        query = query.where(t.c.sequence < before)
    if where.customer_id:
        query = query.where(t.c.customer_id == where.customer_id)
    if where.decision_type:
        query = query.where(t.c.decision_type == where.decision_type)
    if where.decided_by:
        query = query.where(t.c.decided_by == where.decided_by)
    if where.context:
        query = query.where(t.c.context == where.context)
    if where.decide_from is not None:
        query = query.where(t.c.decide_time >= where.decide_from)
    if where.decide_before is not None:
        query = query.where(t.c.decide_time < where.decide_before)
    return [_from_row(row) for row in (await uow.execute(query)).all()]
