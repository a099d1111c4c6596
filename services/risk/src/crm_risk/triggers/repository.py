"""All SQL of the alert triggers. Never commits: the feed consumer's transaction does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.alerting.tables import alert
from crm_risk.reports.tables import complaint
from crm_risk.triggers.model import ContactChange, ContactSnapshot, FiledComplaint
from crm_risk.triggers.tables import contact_change, contact_digest
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
