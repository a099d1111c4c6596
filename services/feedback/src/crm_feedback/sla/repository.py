"""All SQL about SLA policies. Never commits: the caller's unit of work does."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_feedback.sla.calendar import BusinessCalendar
from crm_feedback.sla.rules import ANY, SlaPolicy
from crm_feedback.sla.tables import sla_policy as t
from crmkit.db import UnitOfWork


def _to_row(policy: SlaPolicy) -> dict[str, Any]:
    return {
        "display_name": policy.display_name, "category": policy.category, "priority": policy.priority,
        "respond_within_seconds": int(policy.respond.total_seconds()),
        "resolve_within_seconds": int(policy.resolve.total_seconds()),
        "escalate_on_breach": policy.escalate_on_breach, "clock_mode": policy.clock_mode,
        "pre_breach_escalation_share": policy.pre_breach_escalation_share,
        "calendar": _calendar_json(policy.calendar),
    }


def _calendar_json(calendar: BusinessCalendar | None) -> dict[str, Any] | None:
    if calendar is None:
        return None
    return {"time_zone": calendar.time_zone, "working_days": list(calendar.working_days),
            "day_start": calendar.day_start.isoformat(), "day_end": calendar.day_end.isoformat(),
            "holidays": sorted(d.isoformat() for d in calendar.holidays),
            "extra_working_days": sorted(d.isoformat() for d in calendar.extra_working_days)}


def _calendar_from(stored: dict[str, Any] | None) -> BusinessCalendar | None:
    if stored is None:
        return None
    return BusinessCalendar(
        time_zone=stored["time_zone"], working_days=tuple(stored["working_days"]),
        day_start=time.fromisoformat(stored["day_start"]), day_end=time.fromisoformat(stored["day_end"]),
        holidays=frozenset(date.fromisoformat(d) for d in stored["holidays"]),
        extra_working_days=frozenset(date.fromisoformat(d) for d in stored["extra_working_days"]))


def _from_row(row: Any) -> SlaPolicy:
    return SlaPolicy(
        sla_policy_id=row.sla_policy_id, display_name=row.display_name, category=row.category,
        priority=row.priority, respond_within=timedelta(seconds=row.respond_within_seconds),
        resolve_within=timedelta(seconds=row.resolve_within_seconds), escalate_on_breach=row.escalate_on_breach,
        clock_mode=row.clock_mode, pre_breach_escalation_share=row.pre_breach_escalation_share,
        calendar=_calendar_from(row.calendar), version=row.version, created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SlaPolicyRepository:
    async def insert(self, uow: UnitOfWork, policy: SlaPolicy) -> SlaPolicy | None:
        """Insert; None when the id or the (category, priority) pair is taken."""
        statement = (pg.insert(t).values(sla_policy_id=policy.sla_policy_id, **_to_row(policy))
                     .on_conflict_do_nothing().returning(t))
        row = (await uow.execute(statement)).first()
        return _from_row(row) if row is not None else None

    async def get(self, uow: UnitOfWork, sla_policy_id: str, *, for_update: bool = False) -> SlaPolicy | None:
        query = sa.select(t).where(t.c.sla_policy_id == sla_policy_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return _from_row(row) if row is not None else None

    async def update(self, uow: UnitOfWork, policy: SlaPolicy) -> SlaPolicy:
        statement = (sa.update(t).where(t.c.sla_policy_id == policy.sla_policy_id)
                     .values(**_to_row(policy), version=t.c.version + 1, updated_at=sa.func.now()).returning(t))
        return _from_row((await uow.execute(statement)).one())

    async def delete(self, uow: UnitOfWork, sla_policy_id: str) -> None:
        await uow.execute(sa.delete(t).where(t.c.sla_policy_id == sla_policy_id))

    async def all(self, uow: UnitOfWork) -> list[SlaPolicy]:
        """Every stored policy: at most one per (category, priority) pair, so a small table."""
        return [_from_row(row) for row in (await uow.execute(sa.select(t))).all()]

    async def page(self, uow: UnitOfWork, *, category: int, priority: int, include_wildcards: bool,
                   after: str | None, limit: int) -> list[SlaPolicy]:
        """Policies in id order after `after`, filtered as ListSlaPolicies says."""
        query = sa.select(t).order_by(t.c.sla_policy_id).limit(limit)
        for column, value in ((t.c.category, category), (t.c.priority, priority)):
            if value != ANY:
                query = query.where(column.in_((value, ANY)) if include_wildcards else column == value)
        if after is not None:
            query = query.where(t.c.sla_policy_id > after)
        return [_from_row(row) for row in (await uow.execute(query)).all()]
