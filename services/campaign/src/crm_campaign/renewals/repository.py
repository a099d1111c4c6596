"""All SQL about renewals. A renewal's state, renewed amount and last contact are worked out when
read, from the holdings and dispatches campaign holds, so they are always as current as the feed:
decided once the holding rolled over or the grace period has passed, contacted once a dispatch
reached the customer inside the renewal window."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crm_campaign.book.tables import customer_manager
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.renewals import rules
from crm_campaign.renewals.model import Renewal, RenewalFilter, RenewalState, RenewalSummary
from crm_campaign.renewals.tables import renewal, renewal_holding
from crmkit.db import UnitOfWork

ZERO = sa.literal(Decimal(0), sa.Numeric(24, 9))


def _computed(today: date) -> sa.Subquery:
    """Every renewal listed today (maturity within the window ahead or past), with its derived columns."""
    r, h, c, d = renewal.c, renewal_holding.alias("placed").c, customer_manager.c, dispatch.c
    grace_end = r.maturity_date + rules.GRACE.days
    other_renewal = renewal.alias("other")
    other = other_renewal.c

    def distance(maturity: Any) -> Any:
        return sa.func.abs(h.open_date - maturity)

    # Money placed at the bank around the maturity: deposits and investments of the same customer
    # and currency opened within the grace period either side, other than the maturing holding.
    # A placement near two maturities counts once, for the nearer (then the smaller id).
    placement = sa.and_(
        h.customer_id == r.customer_id, h.holding_id != r.holding_id, h.currency == r.currency,
        h.product_type.in_([int(t) for t in rules.PLACEMENT_TYPES]),
        h.open_date >= r.maturity_date - rules.GRACE.days, h.open_date <= grace_end,
        ~sa.select(sa.literal(1)).where(
            other.customer_id == r.customer_id, other.currency == r.currency, other.renewal_id != r.renewal_id,
            other.holding_id != h.holding_id,
            h.open_date >= other.maturity_date - rules.GRACE.days,
            h.open_date <= other.maturity_date + rules.GRACE.days,
            sa.or_(distance(other.maturity_date) < distance(r.maturity_date),
                   sa.and_(distance(other.maturity_date) == distance(r.maturity_date),
                           other.renewal_id < r.renewal_id))).correlate_except(other_renewal).exists())
    placed = (
        sa.select(sa.func.coalesce(sa.func.sum(h.balance), ZERO).label("amount"),
                  sa.func.coalesce(sa.func.sum(h.reporting_balance), ZERO).label("reporting"))
        .where(placement).lateral("placement"))
    largest = (sa.select(h.product_code).where(placement)
               .order_by(h.balance.desc(), h.product_code).limit(1).scalar_subquery())
    contact = (sa.select(sa.func.max(d.sent_at))
               .where(d.customer_id == r.customer_id, d.sent_at.is_not(None),
                      d.sent_at >= sa.cast(r.maturity_date - rules.WINDOW.days, sa.DateTime(timezone=True)),
                      d.sent_at < sa.cast(grace_end + 1, sa.DateTime(timezone=True)))
               .scalar_subquery())
    renewed = sa.func.coalesce(r.rolled_over_amount, ZERO) + placed.c.amount
    renewed_reporting = sa.func.coalesce(r.rolled_over_reporting_amount, ZERO) + placed.c.reporting
    decided = sa.or_(r.rolled_over_on.is_not(None), grace_end < today)
    last_contact = contact.label("last_contact_at")
    state = sa.case(
        (sa.and_(decided, r.maturing_amount > 0, renewed >= r.maturing_amount * rules.RENEWED_SHARE),
         int(RenewalState.RENEWED)),
        (sa.and_(decided, renewed > 0), int(RenewalState.PARTIALLY_RENEWED)),
        (decided, int(RenewalState.LAPSED)),
        (contact.is_not(None), int(RenewalState.CONTACTED)),
        else_=int(RenewalState.UPCOMING))
    return (
        sa.select(
            r.renewal_id, r.customer_id, r.holding_id, r.product_code, r.currency, r.maturity_date,
            r.maturing_amount, r.maturing_reporting_amount, r.created_at, r.updated_at,
            sa.func.coalesce(c.relationship_manager_id, "").label("relationship_manager_id"),
            state.label("state"), decided.label("decided"),
            renewed.label("renewed_amount"), renewed_reporting.label("renewed_reporting_amount"),
            sa.case((r.rolled_over_on.is_not(None), r.product_code), else_=sa.func.coalesce(largest, ""))
            .label("renewed_product_code"),
            sa.case((decided, sa.func.coalesce(r.rolled_over_on, grace_end))).label("decide_date"),
            last_contact)
        .select_from(renewal.outerjoin(customer_manager, c.customer_id == r.customer_id).join(placed, sa.true()))
        .where(r.maturity_date <= today + rules.WINDOW)
        .subquery("computed"))


def _filtered(computed: sa.Subquery, where: RenewalFilter) -> list[sa.ColumnElement[bool]]:
    k = computed.c
    conditions: list[sa.ColumnElement[bool]] = []
    if where.customer_id:
        conditions.append(k.customer_id == where.customer_id)
    if where.relationship_manager_id:
        conditions.append(k.relationship_manager_id == where.relationship_manager_id)
    if where.states:
        conditions.append(k.state.in_([int(s) for s in where.states]))
    if where.product_code:
        conditions.append(k.product_code == where.product_code)
    if where.maturity_from is not None:
        conditions.append(k.maturity_date >= where.maturity_from)
    if where.maturity_to is not None:
        conditions.append(k.maturity_date <= where.maturity_to)
    return conditions


def _renewal(row: Any) -> Renewal:
    decided = bool(row.decided)
    return Renewal(
        renewal_id=row.renewal_id, customer_id=row.customer_id, holding_id=row.holding_id,
        product_code=row.product_code, currency=row.currency, maturity_date=row.maturity_date,
        maturing_amount=Decimal(row.maturing_amount), state=RenewalState(row.state),
        renewed_amount=Decimal(row.renewed_amount) if decided else None,
        renewed_product_code=row.renewed_product_code if decided and row.renewed_amount > 0 else "",
        relationship_manager_id=row.relationship_manager_id, last_contact_at=row.last_contact_at,
        decide_date=row.decide_date, created_at=row.created_at, updated_at=row.updated_at)


class RenewalRepository:
    async def page(self, uow: UnitOfWork, where: RenewalFilter, *, today: date, after: tuple[date, str] | None,
                   limit: int) -> list[Renewal]:
        """Renewals earliest maturity first (then by id), after `after`."""
        computed = _computed(today)
        k = computed.c
        query = sa.select(computed).where(*_filtered(computed, where)).order_by(k.maturity_date, k.renewal_id)
        if after is not None:
            query = query.where(sa.tuple_(k.maturity_date, k.renewal_id) > sa.tuple_(*after))
        return [_renewal(row) for row in (await uow.execute(query.limit(limit))).all()]

    async def summary(self, uow: UnitOfWork, where: RenewalFilter, *, today: date) -> RenewalSummary:
        computed = _computed(today)
        k = computed.c
        conditions = _filtered(computed, where)
        counts = (await uow.execute(
            sa.select(k.state, sa.func.count()).where(*conditions).group_by(k.state).order_by(k.state))).all()
        totals = (await uow.execute(sa.select(
            sa.func.coalesce(sa.func.sum(k.maturing_reporting_amount), ZERO),
            sa.func.coalesce(sa.func.sum(k.maturing_reporting_amount).filter(k.decided), ZERO),
            sa.func.coalesce(sa.func.sum(k.renewed_reporting_amount).filter(k.decided), ZERO),
        ).where(*conditions))).one()
        maturing, maturing_decided, renewed = (Decimal(v) for v in totals)
        return RenewalSummary(
            count=sum(int(n) for _, n in counts),
            state_counts=tuple((RenewalState(s), int(n)) for s, n in counts),
            maturing_amount=maturing, renewed_amount=renewed,
            retention_rate=rules.retention_rate(maturing=maturing_decided, renewed=renewed))
