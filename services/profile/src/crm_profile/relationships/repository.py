"""All SQL about relationships. Never commits: the caller's unit of work does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.relationships.model import SPOUSE, Relationship
from crm_profile.relationships.tables import customer_relationship as t

_COLUMNS = ("relationship_id", "customer_id", "related_customer_id", "type", "ownership_percent",
            "guaranteed_holding", "start_date", "source_system", "mirror_id", "created_by", "created_at")


def _from_row(row: RowMapping) -> Relationship:
    return Relationship(**{c: row[c] for c in _COLUMNS})


def _to_row(relationship: Relationship) -> dict[str, Any]:
    row = {c: getattr(relationship, c) for c in _COLUMNS}
    if row["created_at"] is None:
        del row["created_at"]
    return row


def to_json(relationship: Relationship) -> dict[str, Any]:
    """A stored form for a merge's undo data."""
    row = _to_row(relationship)
    return {**row, "relationship_id": str(row["relationship_id"]), "mirror_id": str(row["mirror_id"]),
            "ownership_percent": None if row["ownership_percent"] is None else str(row["ownership_percent"]),
            "start_date": None if row["start_date"] is None else row["start_date"].isoformat(),
            "created_at": relationship.created_at.isoformat() if relationship.created_at else None}


def from_json(value: Mapping[str, Any]) -> Relationship:
    return Relationship(
        customer_id=value["customer_id"], related_customer_id=value["related_customer_id"], type=value["type"],
        ownership_percent=None if value["ownership_percent"] is None else Decimal(value["ownership_percent"]),
        guaranteed_holding=value["guaranteed_holding"],
        start_date=None if value["start_date"] is None else date.fromisoformat(value["start_date"]),
        source_system=value["source_system"], relationship_id=uuid.UUID(value["relationship_id"]),
        mirror_id=uuid.UUID(value["mirror_id"]), created_by=value["created_by"],
        created_at=None if value["created_at"] is None else datetime.fromisoformat(value["created_at"]),
    )


class RelationshipRepository:
    async def insert_pair(self, session: AsyncConnection, link: Relationship, mirror: Relationship
                          ) -> tuple[Relationship, Relationship]:
        rows = (await session.execute(sa.insert(t).returning(t), [_to_row(link), _to_row(mirror)])).all()
        stored = {row.relationship_id: _from_row(row._mapping) for row in rows}
        return stored[link.relationship_id], stored[mirror.relationship_id]

    async def get(self, session: AsyncConnection, relationship_id: uuid.UUID) -> Relationship | None:
        row = (await session.execute(sa.select(t).where(t.c.relationship_id == relationship_id))).first()
        return _from_row(row._mapping) if row is not None else None

    async def of_customer(self, session: AsyncConnection, customer_id: str) -> list[Relationship]:
        rows = (await session.execute(sa.select(t).where(t.c.customer_id == customer_id))).all()
        return [_from_row(row._mapping) for row in rows]

    async def find(self, session: AsyncConnection, *, customer_id: str, related_customer_id: str,
                   relationship_type: int) -> Relationship | None:
        row = (await session.execute(sa.select(t).where(
            t.c.customer_id == customer_id, t.c.related_customer_id == related_customer_id,
            t.c.type == relationship_type))).first()
        return _from_row(row._mapping) if row is not None else None

    async def has_spouse(self, session: AsyncConnection, customer_ids: Iterable[str]) -> bool:
        found = await session.scalar(sa.select(sa.func.count()).where(
            t.c.customer_id.in_(list(customer_ids)), t.c.type == SPOUSE))
        return bool(found)

    async def page(self, session: AsyncConnection, customer_id: str, *, types: Sequence[int],
                   after: tuple[int, str] | None, limit: int) -> list[Relationship]:
        query = (sa.select(t).where(t.c.customer_id == customer_id)
                 .order_by(t.c.type, t.c.related_customer_id).limit(limit))
        if types:
            query = query.where(t.c.type.in_(list(types)))
        if after is not None:
            query = query.where(sa.tuple_(t.c.type, t.c.related_customer_id) > sa.tuple_(*after))
        return [_from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def delete_pairs(self, session: AsyncConnection, links: Sequence[Relationship]) -> None:
        ids = [i for link in links for i in (link.relationship_id, link.mirror_id)]
        if ids:
            await session.execute(sa.delete(t).where(t.c.relationship_id.in_(ids)))

    async def reattach(self, session: AsyncConnection, ids: Sequence[uuid.UUID], *, from_customer: str,
                       to_customer: str) -> list[Relationship]:
        """Links of `from_customer` (and their mirrors) now belong to `to_customer`; returns every
        row changed. Links no longer held by `from_customer` are left alone."""
        if not ids:
            return []
        moved = (await session.execute(
            sa.update(t).where(t.c.relationship_id.in_(list(ids)), t.c.customer_id == from_customer)
            .values(customer_id=to_customer).returning(t))).all()
        mirror_ids = [row.mirror_id for row in moved]
        mirrors = (await session.execute(
            sa.update(t).where(t.c.relationship_id.in_(mirror_ids), t.c.related_customer_id == from_customer)
            .values(related_customer_id=to_customer).returning(t))).all() if mirror_ids else []
        return [_from_row(row._mapping) for row in (*moved, *mirrors)]
