"""All SQL about current churn scores. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
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


async def put(uow: UnitOfWork, score: Score) -> None:
    values = {f.name: getattr(score, f.name) for f in dataclasses.fields(Score) if f.name != "drivers"}
    values.update(risk_band=int(score.risk_band), top_drivers=[dataclasses.asdict(d) for d in score.drivers])
    insert = pg.insert(t).values(values)
    await uow.execute(insert.on_conflict_do_update(index_elements=[t.c.customer_id],
                                                   set_={k: insert.excluded[k] for k in values if k != "customer_id"}))
