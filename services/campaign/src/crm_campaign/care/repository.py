"""All SQL about care tasks. Never commits: the caller's unit of work does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_campaign.care.model import CareTask, CareTaskFilter
from crm_campaign.care.tables import care_task as t
from crmkit.db import UnitOfWork

_WRITTEN = ("customer_id", "kind", "title", "description", "assignee", "priority", "due_at", "state", "outcome",
            "outcome_note", "contact_channel", "source", "offer_campaign_id", "offer_id", "creator", "closed_at")


def _from_row(row: Any) -> CareTask:
    return CareTask(care_task_id=row.care_task_id, **{f: getattr(row, f) for f in _WRITTEN},
                    version=row.version, created_at=row.created_at, updated_at=row.updated_at)


class CareTaskRepository:
    async def insert(self, uow: UnitOfWork, task: CareTask, now: datetime) -> CareTask:
        statement = (sa.insert(t).values(care_task_id=task.care_task_id, **{f: getattr(task, f) for f in _WRITTEN},
                                         created_at=now, updated_at=now).returning(t))
        return _from_row((await uow.execute(statement)).one())

    async def get(self, uow: UnitOfWork, care_task_id: str, *, for_update: bool = False) -> CareTask | None:
        query = sa.select(t).where(t.c.care_task_id == care_task_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return _from_row(row) if row is not None else None

    async def update(self, uow: UnitOfWork, task: CareTask, now: datetime) -> CareTask:
        statement = (sa.update(t).where(t.c.care_task_id == task.care_task_id)
                     .values(**{f: getattr(task, f) for f in _WRITTEN}, version=t.c.version + 1, updated_at=now)
                     .returning(t))
        return _from_row((await uow.execute(statement)).one())

    async def delete(self, uow: UnitOfWork, care_task_id: str) -> None:
        await uow.execute(sa.delete(t).where(t.c.care_task_id == care_task_id))

    async def page(self, uow: UnitOfWork, *, query: CareTaskFilter, states: tuple[int, ...],
                   after: tuple[datetime, str] | None, limit: int) -> list[CareTask]:
        """Tasks matching `query` in `states`, earliest due first, after the (due_at, id) key."""
        select = sa.select(t).where(t.c.state.in_(states))
        if query.assignee:
            select = select.where(t.c.assignee == query.assignee)
        if query.customer_id:
            select = select.where(t.c.customer_id == query.customer_id)
        if query.kind:
            select = select.where(t.c.kind == query.kind)
        if query.due_before is not None:
            select = select.where(t.c.due_at < query.due_before)
        if after is not None:
            select = select.where(sa.tuple_(t.c.due_at, t.c.care_task_id) > sa.tuple_(*after))
        select = select.order_by(t.c.due_at, t.c.care_task_id).limit(limit)
        return [_from_row(row) for row in (await uow.execute(select)).all()]
