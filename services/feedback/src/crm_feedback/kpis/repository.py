"""All SQL of the KPIs: survey figures, complaint figures, grouped or not. Never commits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm_feedback.complaints.tables import complaint as c
from crm_feedback.kpis.model import CategoryCounts, KpiQuery, Kpis
from crm_feedback.kpis.rules import BRANCH, CHANNEL, PERIODS, PRODUCT
from crm_feedback.sla.tables import sla_clock as k
from crm_feedback.surveys.model import SurveyKind
from crm_feedback.surveys.tables import survey_response as r
from crmkit.db import UnitOfWork

TOTAL = ""


def _key(dimension: int, columns: Mapping[int, sa.ColumnElement[Any]], moment: sa.ColumnElement[Any]
         ) -> sa.ColumnElement[Any]:
    if not dimension:
        return sa.literal(TOTAL).label("key")
    if dimension in PERIODS:
        return sa.cast(sa.func.date_trunc(PERIODS[dimension], sa.func.timezone("UTC", moment)), sa.Date).label("key")
    return columns[dimension].label("key")


def _seconds(value: Any) -> timedelta | None:
    return timedelta(seconds=float(value)) if value is not None else None


class KpiRepository:
    async def survey_figures(self, uow: UnitOfWork, query: KpiQuery, dimension: int) -> dict[object, Kpis]:
        key = _key(dimension, {BRANCH: r.c.branch_id, PRODUCT: r.c.product, CHANNEL: r.c.channel}, r.c.submitted_at)
        nps, csat, ces = (r.c.kind == int(SurveyKind.NPS), r.c.kind == int(SurveyKind.CSAT),
                          r.c.kind == int(SurveyKind.CES))
        conditions = [r.c.submitted_at >= query.start, r.c.submitted_at < query.end]
        for value, column in ((query.channel, r.c.channel), (query.branch_id, r.c.branch_id),
                              (query.touchpoint, r.c.touchpoint), (query.product, r.c.product),
                              (query.survey.removeprefix("surveys/"), r.c.survey_id)):
            if value:
                conditions.append(column == value)
        statement = sa.select(
            key, sa.func.count().filter(nps).label("nps"),
            sa.func.count().filter(sa.and_(nps, r.c.score >= 9)).label("promoters"),
            sa.func.count().filter(sa.and_(nps, r.c.score.between(7, 8))).label("passives"),
            sa.func.count().filter(sa.and_(nps, r.c.score <= 6)).label("detractors"),
            sa.func.avg(r.c.score).filter(csat).label("csat"), sa.func.count().filter(csat).label("csat_n"),
            sa.func.avg(r.c.score).filter(ces).label("ces"), sa.func.count().filter(ces).label("ces_n"),
        ).where(*conditions).group_by(key)
        found: dict[object, Kpis] = {}
        for row in await uow.execute(statement):
            found[row.key] = Kpis(
                nps_responses=row.nps, promoters=row.promoters, passives=row.passives, detractors=row.detractors,
                csat_average=float(row.csat) if row.csat is not None else None, csat_responses=row.csat_n,
                ces_average=float(row.ces) if row.ces is not None else None, ces_responses=row.ces_n)
        return found

    async def complaint_figures(self, uow: UnitOfWork, query: KpiQuery, dimension: int, *, now: datetime
                                ) -> dict[object, Kpis]:
        columns = {BRANCH: c.c.branch_id, PRODUCT: c.c.product, CHANNEL: c.c.channel}
        filters = [column == value for value, column in ((query.channel, c.c.channel),
                                                         (query.branch_id, c.c.branch_id),
                                                         (query.product, c.c.product)) if value]
        horizon = min(query.end, now)
        breached = sa.exists(sa.select(k.c.complaint_id).where(
            k.c.complaint_id == c.c.complaint_id, k.c.due_at < horizon,
            sa.or_(k.c.stopped_at.is_(None), k.c.stopped_at > k.c.due_at),
            sa.not_(sa.and_(k.c.cancelled, k.c.stopped_at <= k.c.due_at))))
        resolved = sa.or_(c.c.resolved_at < query.end, c.c.closed_at < query.end)
        key = _key(dimension, columns, c.c.received_at)
        received = (sa.select(key, c.c.category, sa.func.count().label("received"),
                              sa.func.count().filter(resolved).label("resolved"),
                              sa.func.count().filter(breached).label("breached"))
                    .where(c.c.received_at >= query.start, c.c.received_at < query.end, *filters)
                    .group_by(key, c.c.category))
        found: dict[object, Kpis] = defaultdict(Kpis)
        for row in await uow.execute(received):
            kpis = found[row.key]
            kpis.complaints_received += row.received
            kpis.by_category.append(CategoryCounts(row.category, row.received, row.resolved, row.breached))
        for stamp, attribute in ((c.c.responded_at, "median_time_to_respond"),
                                 (c.c.resolved_at, "median_time_to_resolve")):
            key = _key(dimension, columns, stamp)
            elapsed = sa.func.extract("epoch", stamp - c.c.received_at)
            medians = (sa.select(key, sa.func.percentile_cont(0.5).within_group(elapsed).label("median"))
                       .where(stamp >= query.start, stamp < query.end, *filters).group_by(key))
            for row in await uow.execute(medians):
                setattr(found[row.key], attribute, _seconds(row.median))
        for kpis in found.values():
            kpis.by_category.sort(key=lambda counts: (-counts.received, counts.category))
        return dict(found)
