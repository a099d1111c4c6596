"""All SQL of lifetime value: per-customer summaries of the read model's daily transaction totals,
and the model rows. Nothing here commits: the fit's coordinator writes on its own asyncpg
transaction (`Database.raw()`, so the operation completes in it), RPCs in their unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.clv.model import (
    BgNbdParameters,
    DaySummary,
    FitResult,
    FitSettings,
    GammaGammaParameters,
    HoldoutResult,
    StoredModel,
    TimeUnit,
)
from crm_segment.clv.tables import lifetime_value_model
from crm_segment.tables import operation
from crmkit.operations import SUCCEEDED

m = lifetime_value_model.c

# Per customer in the population (and the segment, when given): their days with a transaction in
# [first, last]. Repeat value needs the first day's amount apart: the first purchase is not a repeat.
_DAY_SUMMARIES = """
    SELECT d.customer_id, min(d.day) AS first_day, max(d.day) AS last_day, count(*) AS days,
           sum(d.amount)::float8 AS total, ((array_agg(d.amount ORDER BY d.day))[1])::float8 AS first_amount
    FROM feature_transaction_day d JOIN customer_feature cf ON cf.customer_id = d.customer_id AND NOT cf.removed
    WHERE d.day BETWEEN $1 AND $2
      AND ($3 = '' OR EXISTS (SELECT 1 FROM segment_member s WHERE s.segment_id = $3
                                                              AND s.customer_id = d.customer_id))
      AND ($4::text[] IS NULL OR d.customer_id = ANY($4::text[]))
    GROUP BY d.customer_id ORDER BY d.customer_id
"""
_SA_DAY_SUMMARIES = sa.text(_DAY_SUMMARIES.replace("$1", ":first").replace("$2", ":last").replace("$3", "''")
                            .replace("$4::text[]", "CAST(:customer_ids AS text[])"))
# Days with a transaction in the holdout, per customer.
_HOLDOUT_DAYS = """
    SELECT customer_id, count(*) AS days FROM feature_transaction_day
    WHERE day >= $1 AND day < $2 GROUP BY customer_id
"""


def _day_summary(row: Any) -> DaySummary:
    return DaySummary(customer_id=row["customer_id"], first_day=row["first_day"], last_day=row["last_day"],
                      days=row["days"], total=row["total"], first_amount=row["first_amount"])


async def day_summaries(connection: asyncpg.Connection, *, first: date, last: date, segment_id: str
                        ) -> list[DaySummary]:
    rows = await connection.fetch(_DAY_SUMMARIES, first, last, segment_id, None)
    return [_day_summary(row) for row in rows]


async def day_summaries_of(connection: AsyncConnection, customer_ids: Sequence[str], *, last: date
                           ) -> list[DaySummary]:
    """The customers' summaries over every day up to `last` (a prediction from then)."""
    rows = await connection.execute(_SA_DAY_SUMMARIES, {"first": date.min, "last": last,
                                                        "customer_ids": list(customer_ids)})
    return [_day_summary(row) for row in rows.mappings()]


async def holdout_days(connection: asyncpg.Connection, *, start: date, end: date) -> dict[str, int]:
    return {row["customer_id"]: row["days"] for row in await connection.fetch(_HOLDOUT_DAYS, start, end)}


async def insert(connection: AsyncConnection, *, model_id: str, settings: FitSettings, operation_id: uuid.UUID,
                 creator: str) -> None:
    s = settings
    await connection.execute(sa.insert(lifetime_value_model).values(
        model_id=model_id, display_name=s.display_name, operation_id=operation_id,
        calibration_start=s.calibration_start, calibration_end=s.calibration_end, holdout_start=s.holdout_start,
        holdout_end=s.holdout_end, time_unit_days=s.unit.days, population_segment_id=s.population_segment_id,
        penalizer=s.penalizer, horizon_days=s.horizon_days, annual_discount_rate=s.annual_discount_rate,
        creator=creator, created_at=sa.func.now()))


async def record_fit(connection: asyncpg.Connection, *, model_id: str, customers: int, result: FitResult,
                     holdout: HoldoutResult | None) -> datetime:
    b, g = result.bgnbd, result.gamma_gamma
    fitted_at: datetime = await connection.fetchval(
        """UPDATE lifetime_value_model SET customer_count = $2, repeat_customer_count = $3, r = $4, alpha = $5,
               a = $6, b = $7, bgnbd_log_likelihood = $8, p = $9, q = $10, gamma = $11,
               gamma_gamma_log_likelihood = $12, frequency_value_correlation = $13, holdout_predicted = $14,
               holdout_actual = $15, holdout_mean_absolute_error = $16, fitted_at = now()
           WHERE model_id = $1 RETURNING fitted_at""",
        model_id, customers, g.customers, b.r, b.alpha, b.a, b.b, b.log_likelihood, g.p, g.q, g.gamma,
        g.log_likelihood, result.frequency_value_correlation, holdout.predicted if holdout else None,
        holdout.actual if holdout else None, holdout.mean_absolute_error if holdout else None)
    return fitted_at


_WITH_STATE = sa.select(lifetime_value_model, operation.c.state).join(
    operation, operation.c.operation_id == m.operation_id)


async def get(connection: AsyncConnection, model_id: str) -> StoredModel | None:
    row = (await connection.execute(_WITH_STATE.where(m.model_id == model_id))).mappings().first()
    return _model(row) if row is not None else None


async def latest_fitted(connection: AsyncConnection) -> StoredModel | None:
    """The most recently fitted succeeded model."""
    row = (await connection.execute(
        _WITH_STATE.where(operation.c.state == SUCCEEDED, m.fitted_at.is_not(None))
        .order_by(m.fitted_at.desc(), m.model_id).limit(1))).mappings().first()
    return _model(row) if row is not None else None


def _model(row: Any) -> StoredModel:
    settings = FitSettings(
        display_name=row["display_name"], calibration_start=row["calibration_start"],
        calibration_end=row["calibration_end"], holdout_start=row["holdout_start"], holdout_end=row["holdout_end"],
        unit=TimeUnit.DAYS if row["time_unit_days"] == 1 else TimeUnit.WEEKS,
        population_segment_id=row["population_segment_id"], penalizer=row["penalizer"],
        horizon_days=row["horizon_days"], annual_discount_rate=float(row["annual_discount_rate"]))
    result = None
    if row["fitted_at"] is not None:
        result = FitResult(
            bgnbd=BgNbdParameters(r=row["r"], alpha=row["alpha"], a=row["a"], b=row["b"],
                                  log_likelihood=row["bgnbd_log_likelihood"], customers=row["customer_count"]),
            gamma_gamma=GammaGammaParameters(p=row["p"], q=row["q"], gamma=row["gamma"],
                                             log_likelihood=row["gamma_gamma_log_likelihood"],
                                             customers=row["repeat_customer_count"]),
            frequency_value_correlation=row["frequency_value_correlation"])
    holdout = None
    if row["holdout_predicted"] is not None:
        holdout = HoldoutResult(predicted=row["holdout_predicted"], actual=row["holdout_actual"],
                                mean_absolute_error=row["holdout_mean_absolute_error"])
    fitted_at: datetime | None = row["fitted_at"]
    return StoredModel(model_id=row["model_id"], settings=settings, operation_id=row["operation_id"],
                       state=row["state"], creator=row["creator"], created_at=row["created_at"],
                       fitted_at=fitted_at, customer_count=row["customer_count"],
                       repeat_customer_count=row["repeat_customer_count"], result=result, holdout=holdout)
