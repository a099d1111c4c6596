"""All SQL about field history and confirmations. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.customers.privacy import PersonalDataVault
from crm_profile.customers.tables import customer as c
from crm_profile.history.rules import Change, ChangeSource, FieldChangeKind
from crm_profile.history.tables import field_change as h
from crm_profile.history.tables import field_confirmation as f


@dataclass(frozen=True)
class StoredChange:
    field_change_id: int
    customer_id: str
    field: str
    kind: FieldChangeKind
    old: str
    new: str
    personal: bool
    changed_at: datetime
    actor: str
    source: ChangeSource
    source_system: str
    origin: str


@dataclass(frozen=True)
class StaleRow:
    customer_id: str
    field: str
    confirmed_at: datetime
    max_age: timedelta
    due_at: datetime


class HistoryRepository:
    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    async def append(self, session: AsyncConnection, customer_id: str, changes: Sequence[Change], *, actor: str,
                     source: ChangeSource, source_system: str, origin: str) -> None:
        if not changes:
            return
        rows = []
        for change in changes:
            row: dict[str, Any] = {
                "customer_id": customer_id, "field": change.field, "kind": int(change.kind),
                "personal": change.personal, "actor": actor, "source": int(source), "source_system": source_system,
                "origin": origin, "old_text": None, "new_text": None, "old_sealed": None, "new_sealed": None,
            }
            for side, text in (("old", change.old), ("new", change.new)):
                if not text:
                    continue
                if change.personal:
                    row[f"{side}_sealed"] = self._vault.seal_field(customer_id, f"history:{change.field}", text)
                else:
                    row[f"{side}_text"] = text
            rows.append(row)
        await session.execute(sa.insert(h), rows)

    async def page(self, session: AsyncConnection, customer_id: str, *, before_id: int | None, limit: int,
                   fields: Sequence[str], start: datetime | None, end: datetime | None) -> list[StoredChange]:
        """Changes newest first; `fields` select themselves and their sub-fields."""
        query = (sa.select(h).where(h.c.customer_id == customer_id)
                 .order_by(h.c.field_change_id.desc()).limit(limit))
        if before_id is not None:
            query = query.where(h.c.field_change_id < before_id)
        if fields:
            query = query.where(sa.or_(*(sa.or_(h.c.field == p, h.c.field.startswith(p + ".", autoescape=True))
                                         for p in fields)))
        if start is not None:
            query = query.where(h.c.changed_at >= start)
        if end is not None:
            query = query.where(h.c.changed_at < end)
        return [self._from_row(row._mapping) for row in (await session.execute(query)).all()]

    def _from_row(self, row: Mapping[str, Any]) -> StoredChange:
        texts = {}
        for side in ("old", "new"):
            sealed = row[f"{side}_sealed"]
            texts[side] = (self._vault.open_field(row["customer_id"], f"history:{row['field']}", sealed)
                           if sealed is not None else row[f"{side}_text"] or "")
        return StoredChange(
            field_change_id=row["field_change_id"], customer_id=row["customer_id"], field=row["field"],
            kind=FieldChangeKind(row["kind"]), old=texts["old"], new=texts["new"], personal=row["personal"],
            changed_at=row["changed_at"], actor=row["actor"], source=ChangeSource(row["source"]),
            source_system=row["source_system"], origin=row["origin"])

    async def erase_personal_values(self, session: AsyncConnection, customer_id: str) -> int:
        """Drop the sealed old and new values of a customer's personal history (right to be
        forgotten); who changed which field when stays. Returns the rows touched."""
        result = await session.execute(sa.update(h).where(h.c.customer_id == customer_id, h.c.personal)
                                       .values(old_sealed=None, new_sealed=None))
        return int(result.rowcount or 0)

    # --- confirmations ---------------------------------------------------------------------------

    async def confirm(self, session: AsyncConnection, customer_id: str, fields: Collection[str]) -> datetime | None:
        """Mark the fields changed or confirmed now (the transaction's time, which it returns)."""
        if not fields:
            return None
        statement = pg.insert(f).values([{"customer_id": customer_id, "field": field} for field in sorted(fields)])
        statement = statement.on_conflict_do_update(
            index_elements=[f.c.customer_id, f.c.field], set_={"confirmed_at": statement.excluded.confirmed_at})
        await session.execute(statement)
        return await session.scalar(sa.select(sa.func.now()))

    async def forget(self, session: AsyncConnection, customer_id: str, fields: Collection[str]) -> None:
        """Drop the confirmations of fields that no longer have a value."""
        if fields:
            await session.execute(sa.delete(f).where(f.c.customer_id == customer_id, f.c.field.in_(sorted(fields))))

    async def stale(
        self, session: AsyncConnection, *, max_ages: Mapping[str, timedelta], customer_id: str | None,
        relationship_manager_id: str, branch_id: str, after: tuple[datetime, str, str] | None, limit: int,
    ) -> list[StaleRow]:
        """Fields whose last confirmation is older than their maximum age, most overdue first.

        One index range scan per field on (field, confirmed_at) -- each branch reads only its
        stale rows in due order and stops after `limit` -- then a merge of at most
        `fields x limit` rows. Cost grows with the stale rows returned, not with the customers.
        """
        if not max_ages:
            return []
        now = await session.scalar(sa.select(sa.func.now()))
        branches = []
        for field, age in sorted(max_ages.items()):
            due = (f.c.confirmed_at + sa.literal(age, sa.Interval)).label("due_at")
            branch = (sa.select(f.c.customer_id, f.c.field, f.c.confirmed_at, sa.literal(age, sa.Interval)
                                .label("max_age"), due)
                      .where(f.c.field == field, f.c.confirmed_at < now - age))
            if after is not None:
                after_due, after_customer, after_field = after
                branch = branch.where(sa.tuple_(f.c.confirmed_at, f.c.customer_id, f.c.field)
                                      > sa.tuple_(sa.literal(after_due - age), after_customer, after_field))
            if customer_id is not None:
                branch = branch.where(f.c.customer_id == customer_id)
            if relationship_manager_id or branch_id:
                branch = branch.join(c, c.c.customer_id == f.c.customer_id)
                if relationship_manager_id:
                    branch = branch.where(c.c.relationship_manager_id == relationship_manager_id)
                if branch_id:
                    branch = branch.where(c.c.branch_id == branch_id)
            branches.append(branch.order_by(f.c.confirmed_at, f.c.customer_id).limit(limit).subquery().select())
        union = sa.union_all(*branches).subquery()
        query = sa.select(union).order_by(union.c.due_at, union.c.customer_id, union.c.field).limit(limit)
        rows = (await session.execute(query)).all()
        return [StaleRow(r.customer_id, r.field, r.confirmed_at, r.max_age, r.due_at) for r in rows]
