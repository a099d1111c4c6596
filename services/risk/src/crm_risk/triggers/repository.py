"""All SQL of the alert triggers. Never commits: the feed consumer's transaction does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.alerting.tables import alert
from crm_risk.customers.tables import customer
from crm_risk.reports.tables import complaint, holding
from crm_risk.triggers.model import (
    AbnormalTransaction,
    Baseline,
    ContactChange,
    ContactSnapshot,
    FiledComplaint,
    Maturing,
    Transaction,
)
from crm_risk.triggers.tables import (
    abnormal_transaction,
    contact_change,
    contact_digest,
    outflow_bucket,
    transaction_baseline,
)
from crmkit.db import UnitOfWork


async def digests(uow: UnitOfWork, customer_id: str) -> dict[str, str]:
    d = contact_digest.c
    rows = await uow.execute(sa.select(d.field, d.digest).where(d.customer_id == customer_id))
    return {row.field: row.digest for row in rows}


async def store(uow: UnitOfWork, snapshot: ContactSnapshot, changed: Sequence[str]) -> None:
    insert = pg.insert(contact_digest).values([
        {"customer_id": snapshot.customer_id, "field": f, "digest": v} for f, v in snapshot.digests.items()])
    await uow.execute(insert.on_conflict_do_update(index_elements=["customer_id", "field"],
                                                   set_={"digest": insert.excluded.digest}))
    if changed:
        await uow.execute(pg.insert(contact_change).values([
            {"customer_id": snapshot.customer_id, "field": f, "event_id": snapshot.event_id,
             "changed_at": snapshot.occurred_at} for f in changed]).on_conflict_do_nothing())


async def changes_since(uow: UnitOfWork, customer_id: str, since: datetime) -> list[ContactChange]:
    c = contact_change.c
    rows = await uow.execute(sa.select(c.field, c.changed_at, c.event_id)
                             .where(c.customer_id == customer_id, c.changed_at > since))
    return [ContactChange(field=r.field, changed_at=r.changed_at, event_id=r.event_id) for r in rows]


async def complaints_between(uow: UnitOfWork, customer_id: str, since: datetime, until: datetime
                             ) -> list[FiledComplaint]:
    """The customer's complaints filed in (since, until] (ix_complaint_customer)."""
    k = complaint.c
    rows = await uow.execute(sa.select(k.complaint_id, k.filed_at).where(
        k.customer_id == customer_id, k.filed_at > since, k.filed_at <= until))
    return [FiledComplaint(complaint_id=r.complaint_id, customer_id=customer_id, filed_at=r.filed_at) for r in rows]


async def last_alert_at(uow: UnitOfWork, alert_rule_id: str, customer_id: str) -> datetime | None:
    a = alert.c
    return await uow.scalar(sa.select(sa.func.max(a.trigger_time))
                            .where(a.alert_rule_id == alert_rule_id, a.customer_id == customer_id))


async def claim_baseline(uow: UnitOfWork, tx: Transaction) -> Baseline | None:
    """The customer's baseline of the transaction's direction before it, locked; None when the
    transaction was counted already (its feed position is not after the last one counted)."""
    b = transaction_baseline.c
    row = (await uow.execute(sa.select(b.count, b.mean, b.m2, b.position).where(
        b.customer_id == tx.customer_id, b.direction == tx.direction).with_for_update())).first()
    if row is None:
        return Baseline()
    if row.position >= tx.position:
        return None
    return Baseline(count=row._mapping["count"], mean=row.mean, m2=row.m2)


async def store_baseline(uow: UnitOfWork, tx: Transaction, baseline: Baseline) -> None:
    values = {"count": baseline.count, "mean": baseline.mean, "m2": baseline.m2, "position": tx.position}
    insert = pg.insert(transaction_baseline).values(customer_id=tx.customer_id, direction=tx.direction, **values)
    await uow.execute(insert.on_conflict_do_update(index_elements=["customer_id", "direction"], set_=values))


async def add_outflow(uow: UnitOfWork, tx: Transaction, *, hour: datetime, transfer: bool,
                      keep_after: datetime) -> None:
    """Add the transaction to its hour's outflow; drop the customer's hours older than `keep_after`."""
    o = outflow_bucket.c
    insert = pg.insert(outflow_bucket).values(customer_id=tx.customer_id, hour=hour, amount=tx.amount,
                                              transfer_amount=tx.amount if transfer else 0)
    await uow.execute(insert.on_conflict_do_update(index_elements=["customer_id", "hour"], set_={
        "amount": o.amount + insert.excluded.amount,
        "transfer_amount": o.transfer_amount + insert.excluded.transfer_amount}))
    await uow.execute(sa.delete(outflow_bucket).where(o.customer_id == tx.customer_id, o.hour < keep_after))


async def outflow_between(uow: UnitOfWork, customer_id: str, since: datetime, until: datetime, *,
                          transfers: bool) -> Decimal:
    """Money out in the hours starting in [since, until], with or without transfers."""
    o = outflow_bucket.c
    counted = o.amount if transfers else o.amount - o.transfer_amount
    total = await uow.scalar(sa.select(sa.func.coalesce(sa.func.sum(counted), 0)).where(
        o.customer_id == customer_id, o.hour >= since, o.hour <= until))
    return Decimal(total or 0)


async def total_assets(uow: UnitOfWork, customer_id: str) -> Decimal | None:
    """The customer's total assets as profile's features last showed them; None when unknown."""
    value = await uow.scalar(sa.select(customer.c.aum).where(customer.c.customer_id == customer_id))
    return Decimal(value) if value is not None else None


async def maturing(uow: UnitOfWork, customer_id: str, first: date, last: date) -> list[Maturing]:
    """The customer's open holdings maturing on a day in [first, last]."""
    h = holding.c
    rows = await uow.execute(sa.select(h.holding_id, h.maturity_date, h.reporting_balance).where(
        h.customer_id == customer_id, ~h.removed, h.close_date.is_(None), h.maturity_date >= first,
        h.maturity_date <= last).order_by(h.maturity_date, h.holding_id))
    return [Maturing(holding_id=r.holding_id, maturity_date=r.maturity_date, balance=r.reporting_balance)
            for r in rows]


async def record_abnormal(uow: UnitOfWork, alert_rule_id: str, tx: Transaction, z_score: float) -> None:
    await uow.execute(pg.insert(abnormal_transaction).values(
        alert_rule_id=alert_rule_id, customer_id=tx.customer_id, event=tx.event, occurred_at=tx.occurred_at,
        direction=tx.direction, amount=tx.amount, z_score=z_score).on_conflict_do_nothing())


async def abnormal_between(uow: UnitOfWork, alert_rule_id: str, customer_id: str, since: datetime,
                           until: datetime) -> list[AbnormalTransaction]:
    a = abnormal_transaction.c
    rows = await uow.execute(sa.select(a.event, a.occurred_at, a.direction, a.amount, a.z_score).where(
        a.alert_rule_id == alert_rule_id, a.customer_id == customer_id, a.occurred_at > since,
        a.occurred_at <= until))
    return [AbnormalTransaction(event=r.event, occurred_at=r.occurred_at, direction=r.direction, amount=r.amount,
                                z_score=r.z_score) for r in rows]
