"""All SQL about current churn scores. Never commits: the caller's unit of work (or, for batch
scoring's COPY-based write-back on `Database.raw()`, the caller's transaction) does."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.churn.model import Driver
from crm_risk.scoring.model import RiskBand, Score
from crm_risk.scoring.tables import churn_score as t
from crmkit import outbox
from crmkit.db import UnitOfWork


def _from_row(row: Any) -> Score:
    values = dict(row._mapping)
    values["risk_band"] = RiskBand(values["risk_band"])
    values["drivers"] = tuple(Driver(**d) for d in values.pop("top_drivers"))
    return Score(**values)


async def get(uow: UnitOfWork, customer_id: str, *, for_update: bool = False) -> Score | None:
    query = sa.select(t).where(t.c.customer_id == customer_id)
    if for_update:
        query = query.with_for_update()
    row = (await uow.execute(query)).first()
    return _from_row(row) if row is not None else None


def _row(score: Score) -> dict[str, Any]:
    values = {f.name: getattr(score, f.name) for f in dataclasses.fields(Score) if f.name != "drivers"}
    values.update(risk_band=int(score.risk_band), top_drivers=[dataclasses.asdict(d) for d in score.drivers])
    return values


async def put(uow: UnitOfWork, score: Score) -> None:
    await put_many(uow, [score])


async def put_many(uow: UnitOfWork, scores: Sequence[Score]) -> None:
    """Each customer's current score, in one statement."""
    if not scores:
        return
    insert = pg.insert(t).values([_row(s) for s in scores])
    columns = [k for k in _row(scores[0]) if k != "customer_id"]
    await uow.execute(insert.on_conflict_do_update(index_elements=[t.c.customer_id],
                                                   set_={k: insert.excluded[k] for k in columns}))


async def get_many(uow: UnitOfWork, customer_ids: Sequence[str]) -> dict[str, Score]:
    """The current scores of these customers, locked until the transaction ends."""
    rows = (await uow.execute(sa.select(t).where(t.c.customer_id.in_(list(customer_ids))).order_by(t.c.customer_id)
                              .with_for_update())).all()
    return {row.customer_id: _from_row(row) for row in rows}


class Previous(NamedTuple):
    """What the feed rule needs of a customer's score before a batch (`rules.publishes`)."""

    risk_band: RiskBand
    probability: float


_COPIED = ("customer_id", "churn_model_id", "model_version", "probability", "risk_band", "top_drivers",
           "features_as_of", "score_time", "decision_audit", "relationship_manager_id", "branch_id")
_STAGE = "churn_score_stage"
_FEED_STAGE = "churn_score_feed_stage"
# One round trip: the connection's staging tables (emptied at each commit).
_PREPARE = f"""
    SET LOCAL client_min_messages = warning;
    CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (LIKE churn_score INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
    CREATE TEMPORARY TABLE IF NOT EXISTS {_FEED_STAGE} (resource_name text NOT NULL, payload bytea NOT NULL)
        ON COMMIT DELETE ROWS
"""
_LOCK_PREVIOUS = ("SELECT customer_id, risk_band, probability FROM churn_score "
                  "WHERE customer_id = ANY($1::text[]) ORDER BY customer_id FOR UPDATE")
_MERGE = (f"INSERT INTO churn_score ({', '.join(_COPIED)}) SELECT {', '.join(_COPIED)} FROM {_STAGE} "  # noqa: S608 - this module's constants only
          "ON CONFLICT (customer_id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COPIED[1:]))
# The staged events as the outbox's bulk append wants them; one COPY per transaction fills the
# staging table, so a scan yields them in the order they were sent.
_STAGED_FEED = (f"SELECT $1::text, resource_name, $2::smallint, payload, $3::text, $4::text "  # noqa: S608 - constants
                f"FROM {_FEED_STAGE}")


async def prepare(connection: asyncpg.Connection) -> None:
    """Ready the connection's staging tables; inside the write-back's transaction."""
    await connection.execute(_PREPARE)


async def lock_previous(connection: asyncpg.Connection, customer_ids: Sequence[str]) -> dict[str, Previous]:
    """The current scores' bands and probabilities of these customers, locked until commit (in
    id order, as a single score's write-back locks one: no deadlock between them)."""
    rows = await connection.fetch(_LOCK_PREVIOUS, list(customer_ids))
    return {r["customer_id"]: Previous(RiskBand(r["risk_band"]), r["probability"]) for r in rows}


async def copy_put_many(connection: asyncpg.Connection, scores: Sequence[Score]) -> None:
    """`put_many` by COPY into the staging table and one merge (after `prepare`)."""
    await connection.copy_records_to_table(_STAGE, columns=_COPIED, records=[
        (s.customer_id, s.churn_model_id, s.model_version, s.probability, int(s.risk_band),
         json.dumps([dataclasses.asdict(d) for d in s.drivers]), s.features_as_of, s.score_time, s.decision_audit,
         s.relationship_manager_id, s.branch_id) for s in scores])
    await connection.execute(_MERGE)


async def publish(connection: asyncpg.Connection, changes: Sequence[tuple[str, bytes]], *, resource_type: str,
                  change_type: int, actor: str, trace_id: str) -> None:
    """Change events (resource name, packed `Any` payload), in order, by COPY and the outbox's
    bulk append (after `prepare`); the caller commits."""
    if not changes:
        return
    await connection.copy_records_to_table(_FEED_STAGE, columns=("resource_name", "payload"), records=changes)
    await outbox.bulk_append(connection, _STAGED_FEED, resource_type, change_type, actor, trace_id)
