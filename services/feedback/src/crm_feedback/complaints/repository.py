"""All SQL about complaints. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_feedback.complaints.model import (
    OPEN_STATUSES,
    UNASSIGNED,
    Compensation,
    Complaint,
    ComplaintFilter,
    Note,
    Resolution,
    Sla,
    Step,
    TimeRange,
)
from crm_feedback.complaints.privacy import DescriptionVault
from crm_feedback.complaints.tables import complaint as t
from crm_feedback.complaints.tables import complaint_note, complaint_number, complaint_step
from crmkit.db import UnitOfWork

_PLAIN_FIELDS = (
    "complaint_id", "customer_id", "channel", "category", "subcategory", "priority", "branch_id", "status",
    "assignee", "escalation_level", "received_at", "filer", "close_reason", "duplicate_of", "reopen_count",
    "closed_at", "product", "customer_manager",
)
_RESOLUTION_SUMMARY = "resolution.summary"
_STEP_FIELDS = ("action", "from_status", "to_status", "actor", "occurred_at", "assignee", "escalation_level",
                "note_id", "escalation_trigger")

# `order_by` -> (sort column, descending). The complaint id breaks ties, in the same direction.
_ORDERINGS: dict[str, tuple[sa.Column[Any], bool]] = {
    "create_time desc": (t.c.created_at, True),
    "sla.respond_by": (t.c.respond_by, False),
    "sla.resolve_by": (t.c.resolve_by, False),
    "priority desc": (t.c.priority, True),
}
_SORT_ATTRIBUTES = {
    "create_time desc": lambda c: c.created_at,
    "sla.respond_by": lambda c: c.sla.respond_by,
    "sla.resolve_by": lambda c: c.sla.resolve_by,
    "priority desc": lambda c: int(c.priority),
}

# The deadline of the clock that runs now: respond first, then resolve (open complaints only).
_RUNNING_DEADLINE = sa.case(
    (t.c.responded_at.is_(None), t.c.respond_by),
    (t.c.resolved_at.is_(None), t.c.resolve_by),
)


def _breached(deadline: sa.Column[Any], stopped_at: sa.Column[Any], now: datetime) -> sa.ColumnElement[bool]:
    """SQL twin of `sla.rules.is_breached`."""
    return sa.or_(sa.and_(stopped_at.is_(None), deadline <= now), stopped_at > deadline)


def in_book(table: sa.Table, handler: str) -> sa.ColumnElement[bool]:
    """SQL twin of `rules.check_case`: complaints the employee filed, is assigned, or whose
    customer is in their book."""
    return sa.or_(table.c.filer == handler, table.c.assignee == handler, table.c.customer_manager == handler)


def _within(column: sa.ColumnElement[Any], interval: TimeRange) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if interval.start is not None:
        conditions.append(column >= interval.start)
    if interval.end is not None:
        conditions.append(column < interval.end)
    return conditions


class ComplaintRepository:
    def __init__(self, vault: DescriptionVault) -> None:
        self._vault = vault

    def _to_row(self, c: Complaint) -> dict[str, Any]:
        row = {field: getattr(c, field) for field in _PLAIN_FIELDS}
        row.update(
            related_resources=list(c.related_resources), sla_policy=c.sla.policy, respond_by=c.sla.respond_by,
            resolve_by=c.sla.resolve_by, responded_at=c.sla.responded_at, resolved_at=c.sla.resolved_at,
            respond_escalate_at=c.sla.respond_escalate_at, resolve_escalate_at=c.sla.resolve_escalate_at,
            escalate_on_breach=c.sla.escalate_on_breach, version=c.version, created_at=c.created_at,
            updated_at=c.updated_at,
        )
        row.update(self._vault.seal(c.complaint_id, c.description))
        row.update(self._resolution_row(c))
        # Unset timestamps of a new complaint take the database's defaults.
        return {k: v for k, v in row.items() if not (v is None and k in ("created_at", "updated_at"))}

    def _from_row(self, row: Any) -> Complaint:
        return Complaint(
            **{field: getattr(row, field) for field in _PLAIN_FIELDS},
            description=self._vault.open(row),
            related_resources=tuple(row.related_resources),
            sla=Sla(policy=row.sla_policy, respond_by=row.respond_by, resolve_by=row.resolve_by,
                    responded_at=row.responded_at, resolved_at=row.resolved_at,
                    respond_escalate_at=row.respond_escalate_at, resolve_escalate_at=row.resolve_escalate_at,
                    escalate_on_breach=row.escalate_on_breach),
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            resolution=self._resolution_from(row),
        )

    def _resolution_row(self, c: Complaint) -> dict[str, Any]:
        r = c.resolution
        if r is None:
            return {}
        money = r.compensation
        return {
            "resolution_outcome": r.outcome, "resolution_root_cause": r.root_cause, "resolver": r.resolver,
            "resolution_at": r.resolved_at,
            "resolution_summary_sealed": self._vault.seal_text(c.complaint_id, _RESOLUTION_SUMMARY, r.summary),
            "compensation_currency": money.currency_code if money else "",
            "compensation_amount": money.amount if money else None,
        }

    def _resolution_from(self, row: Any) -> Resolution | None:
        if not row.resolution_outcome:
            return None
        money = (Compensation(row.compensation_currency, row.compensation_amount)
                 if row.compensation_amount is not None else None)
        return Resolution(
            outcome=row.resolution_outcome, resolver=row.resolver, resolved_at=row.resolution_at,
            summary=self._vault.open_text(row.complaint_id, _RESOLUTION_SUMMARY, row.resolution_summary_sealed),
            root_cause=row.resolution_root_cause, compensation=money)

    async def next_number(self, uow: UnitOfWork) -> int:
        number = await uow.scalar(sa.select(complaint_number.next_value()))
        assert number is not None
        return int(number)

    async def insert(self, uow: UnitOfWork, complaint: Complaint) -> Complaint:
        row = (await uow.execute(sa.insert(t).values(**self._to_row(complaint)).returning(t))).one()
        return self._from_row(row)

    async def get(self, uow: UnitOfWork, complaint_id: str, *, for_update: bool = False) -> Complaint | None:
        statement = sa.select(t).where(t.c.complaint_id == complaint_id)
        if for_update:
            statement = statement.with_for_update()
        row = (await uow.execute(statement)).first()
        return self._from_row(row) if row is not None else None

    async def update(self, uow: UnitOfWork, complaint: Complaint) -> None:
        """Writes the complaint's changeable columns (the caller holds its row lock)."""
        row = self._to_row(complaint)
        for immutable in ("complaint_id", "customer_id", "channel", "received_at", "filer", "created_at"):
            row.pop(immutable, None)
        await uow.execute(sa.update(t).where(t.c.complaint_id == complaint.complaint_id).values(**row))

    async def next_note_id(self, uow: UnitOfWork, complaint_id: str) -> int:
        n = complaint_note.c
        last = await uow.scalar(sa.select(sa.func.max(n.note_id)).where(n.complaint_id == complaint_id))
        return int(last or 0) + 1

    async def insert_note(self, uow: UnitOfWork, complaint_id: str, note: Note) -> None:
        await uow.execute(sa.insert(complaint_note).values(
            complaint_id=complaint_id, note_id=note.note_id, type=note.type,
            text_sealed=self._vault.seal_text(complaint_id, f"note:{note.note_id}", note.text),
            key_id=self._vault.key_id, contact_channel=note.contact_channel, author=note.author,
            created_at=note.created_at))

    async def insert_step(self, uow: UnitOfWork, complaint_id: str, step: Step) -> None:
        await uow.execute(sa.insert(complaint_step).values(
            complaint_id=complaint_id, **{f: getattr(step, f) for f in _STEP_FIELDS}))

    async def timelines(
        self, uow: UnitOfWork, complaint_ids: Sequence[str],
    ) -> dict[str, tuple[tuple[Note, ...], tuple[Step, ...]]]:
        """Notes and steps of each complaint, oldest first, in two queries for any number of complaints."""
        found: dict[str, tuple[list[Note], list[Step]]] = {cid: ([], []) for cid in complaint_ids}
        if not complaint_ids:
            return {}
        n, s = complaint_note.c, complaint_step.c
        for row in await uow.execute(sa.select(complaint_note).where(n.complaint_id.in_(complaint_ids))
                                     .order_by(n.complaint_id, n.note_id)):
            found[row.complaint_id][0].append(Note(
                note_id=row.note_id, type=row.type, author=row.author, created_at=row.created_at,
                contact_channel=row.contact_channel,
                text=self._vault.open_text(row.complaint_id, f"note:{row.note_id}", row.text_sealed)))
        for row in await uow.execute(sa.select(complaint_step).where(s.complaint_id.in_(complaint_ids))
                                     .order_by(s.complaint_id, s.complaint_step_id)):
            found[row.complaint_id][1].append(Step(**{f: getattr(row, f) for f in _STEP_FIELDS}))
        return {cid: (tuple(notes), tuple(steps)) for cid, (notes, steps) in found.items()}

    async def page(
        self, uow: UnitOfWork, *, query: ComplaintFilter, customer_id: str, ordering: str,
        handler: str | None, after: list[Any] | None, limit: int, now: datetime,
    ) -> Sequence[Complaint]:
        """One page in `ordering` order after the key `after` (from `page_key`); `handler` limits
        the page to complaints that employee filed or is assigned."""
        column, descending = _ORDERINGS[ordering]
        statement = sa.select(t).limit(limit)
        conditions = self._conditions(query, customer_id=customer_id, handler=handler, now=now)
        if after is not None:
            value = datetime.fromisoformat(after[0]) if ordering != "priority desc" else int(after[0])
            key = sa.tuple_(column, t.c.complaint_id)
            conditions.append(key < (value, after[1]) if descending else key > (value, after[1]))
        if descending:
            statement = statement.order_by(column.desc(), t.c.complaint_id.desc())
        else:
            statement = statement.order_by(column.asc(), t.c.complaint_id.asc())
        rows = (await uow.execute(statement.where(*conditions))).all()
        return [self._from_row(row) for row in rows]

    @staticmethod
    def page_key(complaint: Complaint, ordering: str) -> list[Any]:
        """The position of `complaint` in `ordering`, in a JSON-safe form for a page token."""
        value = _SORT_ATTRIBUTES[ordering](complaint)
        return [value.isoformat() if isinstance(value, datetime) else value, complaint.complaint_id]

    @staticmethod
    def _conditions(
        query: ComplaintFilter, *, customer_id: str, handler: str | None, now: datetime,
    ) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if handler is not None:
            conditions.append(in_book(t, handler))
        if customer_id:
            conditions.append(t.c.customer_id == customer_id)
        if query.statuses:
            conditions.append(t.c.status.in_(sorted(set(query.statuses))))
        if query.categories:
            conditions.append(t.c.category.in_(sorted(set(query.categories))))
        if query.priorities:
            conditions.append(t.c.priority.in_(sorted(set(query.priorities))))
        if query.channel:
            conditions.append(t.c.channel == query.channel)
        if query.assignee:
            conditions.append(t.c.assignee == ("" if query.assignee == UNASSIGNED else query.assignee))
        if query.branch_id:
            conditions.append(t.c.branch_id == query.branch_id)
        if query.breached_only:
            conditions.append(sa.or_(_breached(t.c.respond_by, t.c.responded_at, now),
                                     _breached(t.c.resolve_by, t.c.resolved_at, now)))
        if query.min_escalation_level:
            conditions.append(t.c.escalation_level >= query.min_escalation_level)
        conditions += _within(t.c.received_at, query.receive_interval)
        due = _within(_RUNNING_DEADLINE, query.due_interval)
        if due:
            conditions += [t.c.status.in_(sorted(int(s) for s in OPEN_STATUSES)), *due]
        return conditions
