"""All SQL about SLA clocks: their rows, the worker's claim, breaches and the breach report.
Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_feedback.complaints.repository import in_book
from crm_feedback.complaints.tables import complaint as c
from crm_feedback.sla.clocks import Breach, BreachFilter, BreachSnapshot, ReportFilter, ReportRow
from crm_feedback.sla.rules import ClockEvent, ClockState, Due, RunningClock, SlaClock
from crm_feedback.sla.tables import sla_clock as t
from crmkit.db import UnitOfWork

# Report dimensions (ReportDimension) -> the SQL of the group key.
DIMENSION_CATEGORY, DIMENSION_PRIORITY, DIMENSION_CHANNEL, DIMENSION_BRANCH, DIMENSION_ASSIGNEE = 1, 2, 3, 4, 5
DIMENSION_DAY, DIMENSION_WEEK, DIMENSION_MONTH, DIMENSION_PRODUCT = 6, 7, 8, 9
_PERIODS = {DIMENSION_DAY: "day", DIMENSION_WEEK: "week", DIMENSION_MONTH: "month"}


def _group_key(dimension: int) -> sa.ColumnElement[Any]:
    if dimension in _PERIODS:
        return sa.cast(sa.func.date_trunc(_PERIODS[dimension], sa.func.timezone("UTC", t.c.due_at)), sa.Date)
    return {DIMENSION_CATEGORY: c.c.category, DIMENSION_PRIORITY: c.c.priority, DIMENSION_CHANNEL: c.c.channel,
            DIMENSION_BRANCH: c.c.branch_id, DIMENSION_ASSIGNEE: c.c.assignee,
            DIMENSION_PRODUCT: c.c.product}[dimension]


def _breached(now: datetime) -> sa.ColumnElement[bool]:
    """Stopped after the deadline, or still running at or past it (sla.rules.is_breached)."""
    return sa.or_(t.c.stopped_at > t.c.due_at, sa.and_(t.c.stopped_at.is_(None), t.c.due_at <= now))


def _counted() -> sa.ColumnElement[bool]:
    """A clock cancelled before its deadline (withdrawn, duplicate) neither met nor missed it."""
    return sa.not_(sa.and_(t.c.cancelled, t.c.stopped_at <= t.c.due_at))


class SlaClockRepository:
    async def sync(self, uow: UnitOfWork, states: Sequence[ClockState], *, snapshot: BreachSnapshot,
                   now: datetime) -> list[tuple[SlaClock, int]]:
        """Store the clocks as the workflow left them (a stopped clock is never changed again), and
        record as breached, now, the clocks this stopped after their deadline that no one recorded
        yet; returns those (clock, cycle)."""
        if not states:
            return []
        rows = [{"complaint_id": s.complaint_id, "clock": int(s.clock), "cycle": s.cycle, "sla_policy": s.sla_policy,
                 "started_at": s.started_at, "due_at": s.due_at, "escalate_at": s.escalate_at,
                 "escalate_on_breach": s.escalate_on_breach, "stopped_at": s.stopped_at,
                 "cancelled": s.cancelled} for s in states]
        # One statement for any number of rows (executemany): a multi-row VALUES would be compiled
        # anew on every call (it has no cache key).
        insert = pg.insert(t)
        changing = ("sla_policy", "due_at", "escalate_at", "escalate_on_breach", "stopped_at", "cancelled")
        await uow.execute(insert.on_conflict_do_update(
            index_elements=[t.c.complaint_id, t.c.clock, t.c.cycle],
            set_={name: insert.excluded[name] for name in changing}, where=t.c.stopped_at.is_(None)), rows)
        if all(s.stopped_at is None for s in states):
            return []  # nothing stopped, so nothing stopped late (a filing, most re-triages)
        late = (sa.update(t)
                .where(t.c.complaint_id == states[0].complaint_id, t.c.breached_at.is_(None),
                       t.c.stopped_at > t.c.due_at)
                .values(breached_at=now, **_snapshot_values(snapshot))
                .returning(t.c.clock, t.c.cycle))
        return [(SlaClock(row.clock), row.cycle) for row in await uow.execute(late)]

    async def claim(self, uow: UnitOfWork, *, now: datetime, limit: int) -> list[str]:
        """Complaints with a clock event due, row-locked; a complaint another replica (or an RPC)
        holds is skipped, so two workers never take the same complaint at once."""
        due = sa.select(t.c.complaint_id).where(t.c.stopped_at.is_(None), _event_due(now))
        statement = (sa.select(c.c.complaint_id).where(c.c.complaint_id.in_(due)).order_by(c.c.complaint_id)
                     .limit(limit).with_for_update(skip_locked=True))
        return list((await uow.execute(statement)).scalars())

    async def running_due(self, uow: UnitOfWork, complaint_id: str, *, now: datetime) -> list[RunningClock]:
        """The complaint's clocks with an event due now (read under the complaint's lock)."""
        rows = await uow.execute(sa.select(t).where(t.c.complaint_id == complaint_id, t.c.stopped_at.is_(None),
                                                    _event_due(now)).order_by(t.c.clock, t.c.cycle))
        return [RunningClock(clock=SlaClock(r.clock), cycle=r.cycle, due_at=r.due_at, escalate_at=r.escalate_at,
                             escalate_on_breach=r.escalate_on_breach, warned=r.escalated_at is not None,
                             breached=r.breached_at is not None) for r in rows]

    async def mark(self, uow: UnitOfWork, complaint_id: str, events: Sequence[Due], *, now: datetime,
                   snapshot: BreachSnapshot) -> None:
        """Record that the worker handled these events (so no replica handles them again)."""
        for e in events:
            values: dict[str, Any] = {"escalated_at": sa.func.coalesce(t.c.escalated_at, now)}
            if e.event is ClockEvent.BREACH:
                values.update(breached_at=now, **_snapshot_values(snapshot))
            await uow.execute(sa.update(t).where(t.c.complaint_id == complaint_id, t.c.clock == int(e.clock),
                                                 t.c.cycle == e.cycle).values(**values))

    async def breach(self, uow: UnitOfWork, complaint_id: str, clock: SlaClock, cycle: int, *,
                     now: datetime) -> Breach:
        row = (await uow.execute(_breach_select().where(t.c.complaint_id == complaint_id, t.c.clock == int(clock),
                                                        t.c.cycle == cycle))).one()
        return _breach_from(row, now=now)

    async def breaches(self, uow: UnitOfWork, *, query: BreachFilter, customer_id: str, handler: str | None,
                       now: datetime, after: list[Any] | None, limit: int) -> list[Breach]:
        """Breached clocks, latest deadline first, after the page key `after`."""
        conditions = [_breached(now), _counted()]
        if query.due_start is not None:
            conditions.append(t.c.due_at >= query.due_start)
        if query.due_end is not None:
            conditions.append(t.c.due_at < query.due_end)
        if query.clock:
            conditions.append(t.c.clock == query.clock)
        for value, snapshot_column, current in (
                (query.category, t.c.breach_category, c.c.category),
                (query.priority, t.c.breach_priority, c.c.priority),
                (query.branch_id, t.c.breach_branch_id, c.c.branch_id),
                (query.assignee, t.c.breach_assignee, c.c.assignee)):
            if value:
                conditions.append(sa.func.coalesce(snapshot_column, current) == value)
        if customer_id:
            conditions.append(c.c.customer_id == customer_id)
        if query.running_only:
            conditions.append(t.c.stopped_at.is_(None))
        if handler is not None:
            conditions.append(in_book(c, handler))
        if after is not None:
            key = sa.tuple_(t.c.due_at, t.c.complaint_id, t.c.clock, t.c.cycle)
            conditions.append(key < (datetime.fromisoformat(after[0]), after[1], after[2], after[3]))
        statement = (_breach_select().where(*conditions)
                     .order_by(t.c.due_at.desc(), t.c.complaint_id.desc(), t.c.clock.desc(), t.c.cycle.desc())
                     .limit(limit))
        return [_breach_from(row, now=now) for row in await uow.execute(statement)]

    async def report(self, uow: UnitOfWork, *, query: ReportFilter, handler: str | None,
                     now: datetime) -> tuple[list[ReportRow], ReportRow]:
        """Clocks due in the period whose outcome is known (stopped, or past the deadline)."""
        breached = _breached(now)
        overdue = sa.func.extract("epoch", sa.func.coalesce(t.c.stopped_at, now) - t.c.due_at)
        conditions = [t.c.due_at >= query.start, t.c.due_at < query.end, _counted(),
                      sa.or_(t.c.stopped_at.is_not(None), t.c.due_at <= now)]
        for value, column in ((query.category, c.c.category), (query.priority, c.c.priority),
                              (query.channel, c.c.channel), (query.branch_id, c.c.branch_id),
                              (query.product, c.c.product)):
            if value:
                conditions.append(column == value)
        if handler is not None:
            conditions.append(in_book(c, handler))
        respond, resolve = t.c.clock == int(SlaClock.RESPOND), t.c.clock == int(SlaClock.RESOLVE)
        figures = [
            sa.func.count().filter(respond).label("respond_due"),
            sa.func.count().filter(sa.and_(respond, breached)).label("respond_breached"),
            sa.func.count().filter(resolve).label("resolve_due"),
            sa.func.count().filter(sa.and_(resolve, breached)).label("resolve_breached"),
            sa.func.percentile_cont(0.5).within_group(overdue).filter(breached).label("median_overdue"),
            sa.func.max(overdue).filter(breached).label("max_overdue"),
        ]
        source = t.join(c, c.c.complaint_id == t.c.complaint_id)
        total = (await uow.execute(sa.select(*figures).select_from(source).where(*conditions))).one()
        rows = []
        if query.group_by:
            key = _group_key(query.group_by).label("key")
            found = await uow.execute(sa.select(key, *figures).select_from(source).where(*conditions).group_by(key))
            rows = [_row(r, r.key) for r in found]
            rows.sort(key=lambda r: (-(r.respond_breached + r.resolve_breached), str(r.key)))
        return rows, _row(total, None)


def _event_due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(sa.and_(t.c.breached_at.is_(None), t.c.due_at <= now),
                  sa.and_(t.c.escalated_at.is_(None), t.c.breached_at.is_(None), t.c.escalate_at <= now))


def _snapshot_values(snapshot: BreachSnapshot) -> dict[str, Any]:
    return {"breach_category": snapshot.category, "breach_priority": snapshot.priority,
            "breach_branch_id": snapshot.branch_id, "breach_assignee": snapshot.assignee,
            "breach_escalation_level": snapshot.escalation_level}


def _breach_select() -> sa.Select[Any]:
    return sa.select(
        t.c.complaint_id, t.c.clock, t.c.cycle, t.c.due_at, t.c.stopped_at, t.c.sla_policy, c.c.customer_id,
        c.c.channel, sa.func.coalesce(t.c.breach_category, c.c.category).label("category"),
        sa.func.coalesce(t.c.breach_priority, c.c.priority).label("priority"),
        sa.func.coalesce(t.c.breach_branch_id, c.c.branch_id).label("branch_id"),
        sa.func.coalesce(t.c.breach_assignee, c.c.assignee).label("assignee"),
        sa.func.coalesce(t.c.breach_escalation_level, c.c.escalation_level).label("escalation_level"),
    ).select_from(t.join(c, c.c.complaint_id == t.c.complaint_id))


def _breach_from(row: Any, *, now: datetime | None = None) -> Breach:
    end = row.stopped_at or now or row.due_at
    return Breach(complaint_id=row.complaint_id, customer_id=row.customer_id, clock=SlaClock(row.clock),
                  cycle=row.cycle, due_at=row.due_at, stopped_at=row.stopped_at, channel=row.channel,
                  sla_policy=row.sla_policy,
                  snapshot=BreachSnapshot(row.category, row.priority, row.branch_id, row.assignee,
                                          row.escalation_level),
                  overdue=max(end - row.due_at, timedelta(0)))


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=float(value)) if value is not None else None


def _row(r: Any, key: object) -> ReportRow:
    return ReportRow(key=key, respond_due=r.respond_due, respond_breached=r.respond_breached,
                     resolve_due=r.resolve_due, resolve_breached=r.resolve_breached,
                     median_overdue=_seconds(r.median_overdue), max_overdue=_seconds(r.max_overdue))
