"""All SQL of the calendar read model and its scan. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.triggers.calendar import CalendarFact
from crm_campaign.triggers.tables import trigger_customer_calendar as t
from crm_campaign.triggers.tables import trigger_firing
from crmkit.db import UnitOfWork


class CalendarRepository:
    async def record(self, uow: UnitOfWork, fact: CalendarFact) -> None:
        """The fact merged into the customer's row: the anniversary replaced when given, the last
        activity moved only forward (a late or replayed event never moves it back)."""
        values: dict[str, object] = {"customer_id": fact.customer_id}
        changes: dict[str, object] = {"updated_at": sa.func.now()}
        if fact.onboarded_month_day:
            values.update(onboarded_month_day=fact.onboarded_month_day, onboarded_year=fact.onboarded_year)
            changes.update(onboarded_month_day=fact.onboarded_month_day, onboarded_year=fact.onboarded_year)
        if fact.active_at is not None:
            values["last_active_at"] = fact.active_at
            changes["last_active_at"] = sa.func.greatest(sa.func.coalesce(t.c.last_active_at, fact.active_at),
                                                         fact.active_at)
        statement = pg.insert(t).values(**values)
        await uow.execute(statement.on_conflict_do_update(index_elements=[t.c.customer_id], set_=changes))

    async def anniversaries(self, uow: UnitOfWork, month_days: Sequence[int], *, after: str, limit: int
                            ) -> list[tuple[str, int, int]]:
        """(customer id, month-day, year) of relationships begun on one of `month_days`, by id."""
        rows = await uow.execute(
            sa.select(t.c.customer_id, t.c.onboarded_month_day, t.c.onboarded_year)
            .where(t.c.onboarded_month_day.in_(list(month_days)), t.c.customer_id > after)
            .order_by(t.c.customer_id).limit(limit))
        return [(row.customer_id, row.onboarded_month_day, row.onboarded_year) for row in rows]

    async def dormant(self, uow: UnitOfWork, *, inactive_before: datetime, rule_ids: Sequence[str], after: str,
                      limit: int) -> list[tuple[str, datetime]]:
        """(customer id, last activity) of customers inactive since before `inactive_before`
        whom some of `rule_ids` has not yet fired for on this spell of inactivity, by id."""
        key = sa.literal("dormancy:") + sa.func.to_char(sa.func.timezone("UTC", t.c.last_active_at), "YYYY-MM-DD")
        fired = (sa.select(sa.func.count()).select_from(trigger_firing)
                 .where(trigger_firing.c.customer_id == t.c.customer_id, trigger_firing.c.event_key == key,
                        trigger_firing.c.trigger_rule_id.in_(list(rule_ids))).scalar_subquery())
        rows = await uow.execute(
            sa.select(t.c.customer_id, t.c.last_active_at)
            .where(t.c.last_active_at < inactive_before, t.c.customer_id > after, fired < len(rule_ids))
            .order_by(t.c.customer_id).limit(limit))
        return [(row.customer_id, row.last_active_at) for row in rows]
