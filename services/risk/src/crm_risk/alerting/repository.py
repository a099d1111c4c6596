"""All SQL about alerts. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_risk.alerting.model import (
    OPEN_STATUSES,
    Alert,
    AlertFilter,
    AlertStatus,
    Evidence,
    ResponseCounts,
)
from crm_risk.alerting.tables import alert as t
from crmkit.db import UnitOfWork

_FIELDS = [f.name for f in dataclasses.fields(Alert)]


def _evidence_json(evidence: tuple[Evidence, ...]) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(e), "occur_time": e.occur_time.isoformat() if e.occur_time else None}
            for e in evidence]


def _from_row(row: Any) -> Alert:
    values = {name: row._mapping[name] for name in _FIELDS}
    values["status"] = AlertStatus(values["status"])
    values["evidence"] = tuple(
        Evidence(**{**e, "occur_time": datetime.fromisoformat(e["occur_time"]) if e["occur_time"] else None})
        for e in values["evidence"])
    return Alert(**values)


def _to_row(alert: Alert) -> dict[str, Any]:
    row = {name: getattr(alert, name) for name in _FIELDS}
    row["status"] = int(alert.status)
    row["evidence"] = _evidence_json(alert.evidence)
    return row


async def insert(uow: UnitOfWork, alert: Alert) -> Alert:
    row = (await uow.execute(sa.insert(t).values(_to_row(alert)).returning(t))).one()
    return _from_row(row)


async def get(uow: UnitOfWork, alert_id: str, *, for_update: bool = False) -> Alert | None:
    query = sa.select(t).where(t.c.alert_id == alert_id)
    if for_update:
        query = query.with_for_update()
    row = (await uow.execute(query)).first()
    return _from_row(row) if row is not None else None


async def update(uow: UnitOfWork, alert: Alert, *, now: datetime) -> Alert:
    """The alert's new state, its version bumped."""
    values = _to_row(alert)
    del values["alert_id"]
    values.update(version=alert.version + 1, update_time=now)
    row = (await uow.execute(sa.update(t).where(t.c.alert_id == alert.alert_id).values(values).returning(t))).one()
    return _from_row(row)


async def due_unanswered(uow: UnitOfWork, *, now: datetime, limit: int) -> list[Alert]:
    """OPEN alerts past their due time, locked; rows another replica holds are skipped, and a row
    it escalated and committed no longer matches when re-read under the lock."""
    query = (sa.select(t).where(t.c.status == int(AlertStatus.OPEN), t.c.due_time <= now)
             .order_by(t.c.due_time).limit(limit).with_for_update(skip_locked=True))
    return [_from_row(row) for row in (await uow.execute(query)).all()]


async def count_open_for_rule(uow: UnitOfWork, alert_rule_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(t).where(
        t.c.alert_rule_id == alert_rule_id, t.c.status.in_([int(s) for s in OPEN_STATUSES]))
    return int((await uow.execute(query)).scalar_one())


def _filtered(query: sa.Select[Any], where: AlertFilter, *, now: datetime) -> sa.Select[Any]:
    if where.statuses:
        query = query.where(t.c.status.in_(where.statuses))
    if where.kinds:
        query = query.where(t.c.kind.in_(where.kinds))
    if where.min_severity:
        query = query.where(t.c.severity >= where.min_severity)
    if where.alert_rule_id:
        query = query.where(t.c.alert_rule_id == where.alert_rule_id)
    if where.customer_id:
        query = query.where(t.c.customer_id == where.customer_id)
    if where.assignee:
        query = query.where(t.c.assignee == ("" if where.assignee == "unassigned" else where.assignee))
    if where.relationship_manager_id:
        query = query.where(t.c.relationship_manager_id == where.relationship_manager_id)
    if where.branch_id:
        query = query.where(t.c.branch_id == where.branch_id)
    if where.breached_only:
        query = query.where(sa.or_(t.c.respond_time > t.c.due_time,
                                   sa.and_(t.c.respond_time.is_(None), t.c.due_time <= now)))
    if where.due_from is not None:
        query = query.where(t.c.due_time >= where.due_from)
    if where.due_before is not None:
        query = query.where(t.c.due_time < where.due_before)
    if where.trigger_from is not None:
        query = query.where(t.c.trigger_time >= where.trigger_from)
    if where.trigger_before is not None:
        query = query.where(t.c.trigger_time < where.trigger_before)
    return query


def page_key(alert: Alert, order: str) -> list[Any]:
    """The position a page ends at, as JSON."""
    if order == "due_time":
        return [alert.due_time.isoformat(), alert.alert_id]
    if order == "trigger_time desc":
        return [alert.trigger_time.isoformat(), alert.alert_id]
    return [alert.severity, alert.alert_id]


async def page(uow: UnitOfWork, *, where: AlertFilter, order: str, after: list[Any] | None, limit: int,
               now: datetime) -> list[Alert]:
    query = _filtered(sa.select(t), where, now=now).limit(limit)
    if order == "due_time":
        query = query.order_by(t.c.due_time, t.c.alert_id)
        if after is not None:
            query = query.where(sa.tuple_(t.c.due_time, t.c.alert_id)
                                > sa.tuple_(sa.literal(datetime.fromisoformat(after[0])), sa.literal(after[1])))
    elif order == "trigger_time desc":
        query = query.order_by(t.c.trigger_time.desc(), t.c.alert_id.desc())
        if after is not None:
            query = query.where(sa.tuple_(t.c.trigger_time, t.c.alert_id)
                                < sa.tuple_(sa.literal(datetime.fromisoformat(after[0])), sa.literal(after[1])))
    else:
        query = query.order_by(t.c.severity.desc(), t.c.alert_id.desc())
        if after is not None:
            query = query.where(sa.tuple_(t.c.severity, t.c.alert_id)
                                < sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    return [_from_row(row) for row in (await uow.execute(query)).all()]


async def response_counts(uow: UnitOfWork, *, start: datetime, end: datetime, kinds: tuple[int, ...],
                          branch_id: str, now: datetime) -> ResponseCounts:
    """One aggregate over the alerts raised in [start, end)."""
    answered = t.c.respond_time.is_not(None)
    query = sa.select(
        sa.func.count().label("raised"),
        sa.func.count().filter(answered, t.c.respond_time <= t.c.due_time).label("handled_in_time"),
        sa.func.count().filter(answered, t.c.respond_time > t.c.due_time).label("handled_late"),
        sa.func.count().filter(~answered, t.c.due_time <= now).label("unhandled_breached"),
        sa.func.count().filter(~answered, t.c.due_time > now).label("pending"),
    ).where(t.c.trigger_time >= start, t.c.trigger_time < end)
    if kinds:
        query = query.where(t.c.kind.in_(kinds))
    if branch_id:
        query = query.where(t.c.branch_id == branch_id)
    row = (await uow.execute(query)).one()
    return ResponseCounts(**{k: int(v) for k, v in row._mapping.items()})
