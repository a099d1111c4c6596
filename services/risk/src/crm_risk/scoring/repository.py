"""All SQL about current churn scores. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.churn.model import Driver
from crm_risk.scoring.model import RiskBand, Score
from crm_risk.scoring.tables import churn_score as t
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
