"""All SQL of the reports: holdings from profile's feed, detected churn, and the reads behind the
three reports. Never commits: the caller's unit of work (or the feed consumer's transaction) does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.alerting.model import OPEN_STATUSES, AlertStatus
from crm_risk.alerting.tables import alert
from crm_risk.alerts.model import Kind
from crm_risk.customers.model import HoldingChange
from crm_risk.customers.tables import customer
from crm_risk.reports.model import ChurnCase, ChurnDetection, ChurnSnapshot, ChurnType, CreditFacts, FlowCounts
from crm_risk.reports.tables import churn_event, complaint, holding
from crm_risk.scoring.tables import churn_score
from crmkit.db import UnitOfWork

c, h, e, s, a, k = customer.c, holding.c, churn_event.c, churn_score.c, alert.c, complaint.c
# crm.profile.v1.ProductType: what the customer owes the bank.
CREDIT_PRODUCT_TYPES = (9, 10, 11, 12)
CLOSED_HOLDING = 5  # crm.profile.v1.HoldingStatus.HOLDING_STATUS_CLOSED
OUTFLOW_KINDS = (Kind.ABNORMAL_TRANSACTIONS, Kind.LARGE_OUTFLOWS)
EVIDENCE_DAYS = 90


async def put_holding(uow: UnitOfWork, change: HoldingChange) -> bool:
    """Write a holding unless the row already holds a newer version of it."""
    values: dict[str, Any] = {
        "customer_id": change.stamp.customer_id, "removed": change.removed, "product_code": change.product_code,
        "product_type": change.product_type, "status": change.status, "open_date": change.open_date,
        "close_date": change.close_date, "reporting_balance": change.reporting_balance,
        "maturity_date": change.maturity_date}
    insert = pg.insert(holding).values(holding_id=change.holding_id, position=change.stamp.position, **values)
    written = await uow.execute(insert.on_conflict_do_update(
        index_elements=[h.holding_id],
        set_={**{k: insert.excluded[k] for k in values}, "position": insert.excluded.position,
              "updated_at": sa.func.now()},
        where=h.position < insert.excluded.position).returning(h.holding_id))
    return written.first() is not None


async def churn_snapshot(uow: UnitOfWork, customer_id: str, *, exit_reason_attribute: str) -> ChurnSnapshot | None:
    """The live customer's row with their current churn score, or None."""
    exit_reason = (c.feature_values[exit_reason_attribute].astext if exit_reason_attribute
                   else sa.literal(None, sa.Text))
    row = (await uow.execute(
        sa.select(c.customer_id, c.relationship_manager_id, c.branch_id, c.onboarded_on, c.closed_on, c.aum,
                  c.aum_change_90d, c.last_activity_at, c.features_computed_at, exit_reason.label("exit_reason"),
                  s.risk_band, s.top_drivers, s.score_time)
        .select_from(customer.outerjoin(churn_score, s.customer_id == c.customer_id))
        .where(c.customer_id == customer_id, ~c.removed))).first()
    if row is None:
        return None
    return ChurnSnapshot(
        customer_id=row.customer_id, relationship_manager_id=row.relationship_manager_id, branch_id=row.branch_id,
        onboarded_on=row.onboarded_on, closed_on=row.closed_on, aum=row.aum, aum_change_90d=row.aum_change_90d,
        last_activity_at=row.last_activity_at, features_computed_at=row.features_computed_at,
        exit_reason=row.exit_reason or "", score_band=row.risk_band or 0,
        score_drivers=tuple(d["feature"] for d in row.top_drivers or ()), score_time=row.score_time)


async def last_churn_on(uow: UnitOfWork, customer_id: str, churn_type: ChurnType) -> date | None:
    return await uow.scalar(sa.select(sa.func.max(e.detected_on))
                            .where(e.customer_id == customer_id, e.churn_type == int(churn_type)))


async def record_churn(uow: UnitOfWork, detections: Sequence[ChurnDetection]) -> int:
    """Record detections not recorded yet (one per customer, type and day); how many were new."""
    if not detections:
        return 0
    insert = pg.insert(churn_event).values([{
        "customer_id": d.customer_id, "churn_type": int(d.churn_type), "detected_on": d.detected_on,
        "relationship_manager_id": d.relationship_manager_id, "branch_id": d.branch_id,
        "assets_before": d.assets_before, "tenure_months": d.tenure_months, "score_band": d.score_band,
        "score_drivers": list(d.score_drivers)} for d in detections])
    written = await uow.execute(insert.on_conflict_do_nothing().returning(e.customer_id))
    return len(written.all())


async def churn_cases(uow: UnitOfWork, *, first_day: date, end_day: date, branch_id: str,
                      relationship_manager_id: str, exit_reason_attribute: str) -> list[ChurnCase]:
    """Churn detected on days [first_day, end_day) of the given book, with its evidence."""
    outflow_alerts = (
        sa.select(sa.func.count()).select_from(alert)
        .where(a.customer_id == e.customer_id, a.kind.in_([int(k) for k in OUTFLOW_KINDS]),
               a.status != int(AlertStatus.DISMISSED),
               a.trigger_time >= sa.cast(e.detected_on - EVIDENCE_DAYS, sa.DateTime(timezone=True)),
               a.trigger_time < sa.cast(e.detected_on + 1, sa.DateTime(timezone=True)))
        .scalar_subquery())
    complaints = (
        sa.select(sa.func.count()).select_from(complaint)
        .where(k.customer_id == e.customer_id,
               k.filed_at >= sa.cast(e.detected_on - EVIDENCE_DAYS, sa.DateTime(timezone=True)),
               k.filed_at < sa.cast(e.detected_on + 1, sa.DateTime(timezone=True)))
        .scalar_subquery())
    exit_reason = (c.feature_values[exit_reason_attribute].astext if exit_reason_attribute
                   else sa.literal(None, sa.Text))
    query = (sa.select(e.customer_id, e.churn_type, e.detected_on, e.assets_before, e.tenure_months, e.score_band,
                       e.score_drivers, c.aum, exit_reason.label("exit_reason"),
                       outflow_alerts.label("outflow_alerts"), complaints.label("complaints"))
             .select_from(churn_event.outerjoin(customer, c.customer_id == e.customer_id))
             .where(e.detected_on >= first_day, e.detected_on < end_day))
    if branch_id:
        query = query.where(e.branch_id == branch_id)
    if relationship_manager_id:
        query = query.where(e.relationship_manager_id == relationship_manager_id)
    return [ChurnCase(customer_id=r.customer_id, churn_type=ChurnType(r.churn_type), detected_on=r.detected_on,
                      assets_before=r.assets_before, assets_now=r.aum, tenure_months=r.tenure_months,
                      score_band=r.score_band, score_drivers=tuple(r.score_drivers), exit_reason=r.exit_reason or "",
                      outflow_alerts=int(r.outflow_alerts), complaints=int(r.complaints))
            for r in (await uow.execute(query)).all()]


async def flow_counts(uow: UnitOfWork, *, first_day: date, end_day: date, branch_ids: Sequence[str],
                      product_codes: Sequence[str]) -> FlowCounts:
    """Per branch and day: accounts opened and closed, customers gained and lost; and accounts open
    at the start of `first_day`. Accounts count in their customer's current home branch."""
    live = customer.join(holding, h.customer_id == c.customer_id)
    accounts = sa.and_(~c.removed, ~h.removed, *([c.branch_id.in_(list(branch_ids))] if branch_ids else []),
                       *([h.product_code.in_(list(product_codes))] if product_codes else []))
    people = sa.and_(~c.removed, *([c.branch_id.in_(list(branch_ids))] if branch_ids else []))

    async def per_day(table: Any, day: Any, where: Any) -> dict[tuple[str, date], int]:
        rows = (await uow.execute(sa.select(c.branch_id, day, sa.func.count()).select_from(table)
                                  .where(where, day >= first_day, day < end_day).group_by(c.branch_id, day))).all()
        return {(branch, on): int(n) for branch, on, n in rows}

    at_start = (await uow.execute(
        sa.select(c.branch_id, sa.func.count()).select_from(live)
        .where(accounts, h.open_date < first_day, sa.or_(h.close_date.is_(None), h.close_date >= first_day))
        .group_by(c.branch_id))).all()
    return FlowCounts(opened=await per_day(live, h.open_date, accounts),
                      closed=await per_day(live, h.close_date, accounts),
                      new_customers=await per_day(customer, c.onboarded_on, people),
                      lost_customers=await per_day(customer, c.closed_on, people),
                      open_at_start={branch: int(n) for branch, n in at_start})


async def credit_facts(uow: UnitOfWork, customer_id: str, *, age_years: int | None, today: date
                       ) -> CreditFacts | None:
    """The live customer's credit facts (`age_years` as the read model computes it), or None."""
    row = (await uow.execute(
        sa.select(c.customer_id, c.relationship_manager_id, c.data_as_of, c.onboarded_on, c.kyc_status,
                  c.risk_tolerance, c.product_count, c.aum, c.average_aum_90d, c.feature_values, s.probability,
                  s.risk_band)
        .select_from(customer.outerjoin(churn_score, s.customer_id == c.customer_id))
        .where(c.customer_id == customer_id, ~c.removed))).first()
    if row is None:
        return None
    loans = (await uow.execute(
        sa.select(sa.func.count(), sa.func.count(h.reporting_balance), sa.func.sum(h.reporting_balance))
        .where(h.customer_id == customer_id, ~h.removed, h.product_type.in_(CREDIT_PRODUCT_TYPES),
               h.status != CLOSED_HOLDING, h.close_date.is_(None)))).one()
    held, priced, owed = int(loans[0]), int(loans[1]), loans[2]
    open_alerts = await uow.scalar(sa.select(sa.func.count()).select_from(alert).where(
        a.customer_id == customer_id, a.status.in_([int(x) for x in OPEN_STATUSES])))
    complaints_12m = await uow.scalar(sa.select(sa.func.count()).select_from(complaint).where(
        k.customer_id == customer_id, k.filed_at >= sa.cast(today - timedelta(days=365), sa.DateTime(timezone=True))))
    return CreditFacts(
        customer_id=row.customer_id, relationship_manager_id=row.relationship_manager_id, as_of=row.data_as_of,
        onboarded_on=row.onboarded_on, age_years=age_years, kyc_status=row.kyc_status,
        risk_tolerance=row.risk_tolerance, product_count=row.product_count, aum=row.aum,
        average_aum_90d=row.average_aum_90d, feature_values=dict(row.feature_values),
        loan_outstanding=(owed or Decimal(0)) if held == priced else None, open_alerts=int(open_alerts or 0),
        churn_probability=row.probability, churn_risk_band=row.risk_band or 0,
        complaints_12m=int(complaints_12m or 0))

