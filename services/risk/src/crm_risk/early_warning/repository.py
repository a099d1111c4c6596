"""The early-warning list's one query: current scores and open alerts per customer, joined.
Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from crm_risk.alerting.model import OPEN_STATUSES
from crm_risk.alerting.tables import alert as a
from crm_risk.alerts.model import Kind
from crm_risk.churn.model import Driver
from crm_risk.early_warning.model import Candidate, ReasonKind, WarningFilter
from crm_risk.scoring.model import RiskBand
from crm_risk.scoring.tables import churn_score as s
from crmkit.db import UnitOfWork


async def page(uow: UnitOfWork, *, where: WarningFilter, after: Sequence[Any] | None, limit: int
               ) -> list[Candidate]:
    """Customers with a high current score or an open alert, highest probability first (customers
    listed for alerts alone, without a score, last)."""
    alerts = (sa.select(
        a.c.customer_id, sa.func.count().label("open_alerts"),
        sa.func.count().filter(a.c.kind == int(Kind.LARGE_OUTFLOWS)).label("open_large_outflows"),
        sa.func.min(a.c.trigger_time).label("first_alert_time"),
        sa.func.max(a.c.relationship_manager_id).label("alert_manager"),
        sa.func.max(a.c.branch_id).label("alert_branch"))
        .where(a.c.status.in_([int(x) for x in OPEN_STATUSES])).group_by(a.c.customer_id).subquery())
    customer_id = sa.func.coalesce(s.c.customer_id, alerts.c.customer_id)
    manager = sa.func.coalesce(s.c.relationship_manager_id, alerts.c.alert_manager)
    branch = sa.func.coalesce(s.c.branch_id, alerts.c.alert_branch)
    rank = sa.func.coalesce(s.c.probability, -1.0)
    open_alerts = sa.func.coalesce(alerts.c.open_alerts, 0)
    large = sa.func.coalesce(alerts.c.open_large_outflows, 0)
    query = (sa.select(customer_id.label("customer_id"), manager.label("manager"), branch.label("branch"),
                       s.c.churn_model_id, s.c.probability, s.c.risk_band, s.c.top_drivers, s.c.score_time,
                       open_alerts.label("open_alerts"), large.label("large"), alerts.c.first_alert_time)
             .select_from(s.join(alerts, s.c.customer_id == alerts.c.customer_id, full=True))
             .where(sa.or_(s.c.risk_band == int(RiskBand.HIGH), open_alerts > 0))
             .order_by(rank.desc(), customer_id.desc()).limit(limit))
    if where.relationship_manager_id:
        query = query.where(manager == where.relationship_manager_id)
    if where.branch_id:
        query = query.where(branch == where.branch_id)
    if where.min_risk_band:
        query = query.where(s.c.risk_band >= where.min_risk_band)
    if where.reason_kinds:
        wanted = set(where.reason_kinds)
        conditions = []
        if ReasonKind.HIGH_CHURN_RISK in wanted:
            conditions.append(s.c.risk_band == int(RiskBand.HIGH))
        if ReasonKind.LARGE_OUTFLOW in wanted:
            conditions.append(large > 0)
        if ReasonKind.OPEN_ALERT in wanted:
            conditions.append(open_alerts > large)
        query = query.where(sa.or_(*conditions) if conditions else sa.false())
    if after is not None:
        query = query.where(sa.tuple_(rank, customer_id) < sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    rows = (await uow.execute(query)).all()
    return [Candidate(
        customer_id=r.customer_id, relationship_manager_id=r.manager or "", branch_id=r.branch or "",
        churn_model_id=r.churn_model_id or "", probability=r.probability, risk_band=r.risk_band or 0,
        drivers=tuple(Driver(**d) for d in (r.top_drivers or ())), score_time=r.score_time,
        open_alerts=int(r.open_alerts), open_large_outflows=int(r.large), first_alert_time=r.first_alert_time)
        for r in rows]
