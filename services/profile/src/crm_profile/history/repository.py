"""All SQL about field history and confirmations. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.attributes.tables import customer_attribute
from crm_profile.customers.model import ACTIVE
from crm_profile.customers.tables import customer as c
from crm_profile.customers.tables import customer_external_id
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.history.model import ChangeSource, FieldChangeKind
from crm_profile.history.rules import RECORD, Change, FieldValue
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
    # For one field of a creation entry, as history.service lists it: the field's place (1, 2,
    # ...) among those the creation set; 0 for a stored change.
    part: int = 0

    @property
    def entry_id(self) -> str:
        """The id in the entry's resource name: the row's id, `<id>-<part>` for a creation's field."""
        return f"{self.field_change_id}-{self.part}" if self.part else str(self.field_change_id)


@dataclass(frozen=True)
class StaleRow:
    customer_id: str
    field: str
    confirmed_at: datetime
    max_age: timedelta
    due_at: datetime


# Core field path -> "the customer row holds a value for it", as history.rules decides (no empty
# text, no 0 enum, no NULL; personal values are sealed only when not empty). Attributes and
# external ids live in their own tables (`_has_value`).
_CORE_VALUE: dict[str, sa.ColumnElement[bool]] = {
    "customer_type": c.c.customer_type != 0,
    "full_name": c.c.full_name_sealed.is_not(None),
    "birth_date": c.c.birth_date.is_not(None),
    "gender": c.c.gender != 0,
    "nationality": c.c.nationality != "",
    "id_document.type": c.c.id_type != 0,
    "id_document.number": c.c.id_number_sealed.is_not(None),
    "id_document.issuing_country": c.c.id_issuing_country != "",
    "id_document.expires_on": c.c.id_expires_on.is_not(None),
    "mobile_phone": c.c.mobile_phone_sealed.is_not(None),
    "email": c.c.email_sealed.is_not(None),
    "address": c.c.address_sealed.is_not(None),
    "occupation": c.c.occupation != "",
    "kyc_status": c.c.kyc_status != 0,
    "risk_tolerance": c.c.risk_tolerance != 0,
    "relationship_manager_id": c.c.relationship_manager_id != "",
    "branch_id": c.c.branch_id != "",
    "onboarded_on": c.c.onboarded_on.is_not(None),
    "closed_on": c.c.closed_on.is_not(None),
    "preferred_language": c.c.preferred_language != "",
    "external_ids": sa.exists().where(customer_external_id.c.customer_id == c.c.customer_id),
}


def _has_value(path: str) -> sa.ColumnElement[bool]:
    if path in _CORE_VALUE:
        return _CORE_VALUE[path]
    attribute_id = path.removeprefix("attributes.")
    return sa.exists().where(customer_attribute.c.customer_id == c.c.customer_id,
                             customer_attribute.c.attribute_id == attribute_id)


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
        """Stored entries newest first; `fields` select themselves and their sub-fields, and every
        creation entry (field `RECORD`: it may list them -- history.service lists it per field)."""
        query = (sa.select(h).where(h.c.customer_id == customer_id)
                 .order_by(h.c.field_change_id.desc()).limit(limit))
        if before_id is not None:
            query = query.where(h.c.field_change_id < before_id)
        if fields:
            query = query.where(sa.or_(h.c.field == RECORD,
                                       *(sa.or_(h.c.field == p, h.c.field.startswith(p + ".", autoescape=True))
                                         for p in fields)))
        if start is not None:
            query = query.where(h.c.changed_at >= start)
        if end is not None:
            query = query.where(h.c.changed_at < end)
        return [self._from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def first_olds(self, session: AsyncConnection, customer_id: str, fields: Collection[str], *,
                         after_id: int, before_id: int | None) -> dict[str, FieldValue]:
        """The old value of each field's first change after entry `after_id` (and before entry
        `before_id`, if given): what the field held until then."""
        if not fields:
            return {}
        query = (sa.select(h.c.customer_id, h.c.field, h.c.old_text, h.c.old_sealed, h.c.personal)
                 .ext(pg.distinct_on(h.c.field))
                 .where(h.c.customer_id == customer_id, h.c.field.in_(sorted(fields)),
                        h.c.field_change_id > after_id)
                 .order_by(h.c.field, h.c.field_change_id))
        if before_id is not None:
            query = query.where(h.c.field_change_id < before_id)
        return {row.field: FieldValue(self._text(row._mapping, "old"), row.personal)
                for row in (await session.execute(query)).all()}

    async def later_creation(self, session: AsyncConnection, customer_id: str, *, after_id: int) -> int | None:
        """The id of the next creation entry of the customer id after `after_id`, if it was
        created again (its history outlives a deleted record)."""
        return await session.scalar(sa.select(sa.func.min(h.c.field_change_id)).where(
            h.c.customer_id == customer_id, h.c.field == RECORD, h.c.field_change_id > after_id))

    def _text(self, row: RowMapping, side: str) -> str:
        sealed = row[f"{side}_sealed"]
        if sealed is not None:
            return self._vault.open_field(row["customer_id"], f"history:{row['field']}", sealed)
        return row[f"{side}_text"] or ""

    def _from_row(self, row: RowMapping) -> StoredChange:
        return StoredChange(
            field_change_id=row["field_change_id"], customer_id=row["customer_id"], field=row["field"],
            kind=FieldChangeKind(row["kind"]), old=self._text(row, "old"), new=self._text(row, "new"),
            personal=row["personal"],
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

        A field's last confirmation is its `field_confirmation` row, or -- while it has none --
        the customer's creation (which confirms every field it sets and writes no rows), as long
        as the field has a value. Per field, two branches each read only stale rows in due
        order and stop after `limit`: an index range scan on field_confirmation (field,
        confirmed_at), and the customers created before the cut-off that have the field but no
        confirmation of it (through the book's or branch's index when one is given, by primary
        key for one customer). Then a merge of at most `2 x fields x limit` rows.
        """
        if not max_ages:
            return []
        now = (await session.execute(sa.select(sa.func.now()))).scalar_one()
        branches = []
        for field, age in sorted(max_ages.items()):
            max_age = sa.literal(age, sa.Interval).label("max_age")
            # Only live customers: a merged one is served by its survivor, an erased one has nothing
            # left to refresh (the join goes by primary key, row by row, in the index's due order).
            confirmed = (sa.select(f.c.customer_id, f.c.field, f.c.confirmed_at, max_age,
                                   (f.c.confirmed_at + sa.literal(age, sa.Interval)).label("due_at"))
                         .join(c, c.c.customer_id == f.c.customer_id)
                         .where(f.c.field == field, f.c.confirmed_at < now - age, c.c.state == ACTIVE))
            created = (sa.select(c.c.customer_id, sa.literal(field, sa.Text).label("field"),
                                 c.c.created_at.label("confirmed_at"), max_age,
                                 (c.c.created_at + sa.literal(age, sa.Interval)).label("due_at"))
                       .where(c.c.created_at < now - age, c.c.state == ACTIVE, _has_value(field),
                              ~sa.exists().where(f.c.customer_id == c.c.customer_id, f.c.field == field)))
            if after is not None:
                after_due, after_customer, after_field = after
                since = sa.literal(after_due - age)
                confirmed = confirmed.where(sa.tuple_(f.c.confirmed_at, f.c.customer_id, f.c.field)
                                            > sa.tuple_(since, after_customer, after_field))
                created = created.where(sa.tuple_(c.c.created_at, c.c.customer_id, sa.literal(field, sa.Text))
                                        > sa.tuple_(since, after_customer, after_field))
            if customer_id is not None:
                confirmed = confirmed.where(f.c.customer_id == customer_id)
                created = created.where(c.c.customer_id == customer_id)
            if relationship_manager_id or branch_id:
                if relationship_manager_id:
                    confirmed = confirmed.where(c.c.relationship_manager_id == relationship_manager_id)
                    created = created.where(c.c.relationship_manager_id == relationship_manager_id)
                if branch_id:
                    confirmed = confirmed.where(c.c.branch_id == branch_id)
                    created = created.where(c.c.branch_id == branch_id)
            branches.append(confirmed.order_by(f.c.confirmed_at, f.c.customer_id).limit(limit).subquery().select())
            branches.append(created.order_by(c.c.created_at, c.c.customer_id).limit(limit).subquery().select())
        union = sa.union_all(*branches).subquery()
        query = sa.select(union).order_by(union.c.due_at, union.c.customer_id, union.c.field).limit(limit)
        rows = (await session.execute(query)).all()
        return [StaleRow(r.customer_id, r.field, r.confirmed_at, r.max_age, r.due_at) for r in rows]
