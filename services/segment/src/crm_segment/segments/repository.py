"""All SQL about segments. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.exc import IntegrityError

from crm_segment.segments.model import EvaluationMode, Segment
from crm_segment.segments.tables import segment as t
from crmkit.db import UnitOfWork

_DEFINITION_FIELDS = ("display_name", "description", "rule", "rule_version", "creator")


def _to_row(segment: Segment) -> dict[str, Any]:
    row = {field: getattr(segment, field) for field in _DEFINITION_FIELDS}
    row["evaluation_mode"] = int(segment.evaluation_mode)
    row["refresh_interval_seconds"] = (
        int(segment.refresh_interval.total_seconds()) if segment.refresh_interval is not None else None)
    row["referenced_features"] = list(segment.referenced_features)
    return row


def _from_row(row: Any) -> Segment:
    return Segment(
        segment_id=row.segment_id,
        **{field: getattr(row, field) for field in _DEFINITION_FIELDS},
        evaluation_mode=EvaluationMode(row.evaluation_mode),
        refresh_interval=(timedelta(seconds=row.refresh_interval_seconds)
                          if row.refresh_interval_seconds is not None else None),
        referenced_features=tuple(row.referenced_features),
        member_count=row.member_count,
        last_materialised_at=row.last_materialised_at,
        last_materialise_operation=row.last_materialise_operation,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SegmentRepository:
    async def insert(self, uow: UnitOfWork, segment: Segment) -> Segment | None:
        """Insert; None when the id or the display name (in any case) is taken."""
        statement = (
            pg.insert(t).values(segment_id=segment.segment_id, **_to_row(segment))
            .on_conflict_do_nothing().returning(t)
        )
        row = (await uow.execute(statement)).first()
        return _from_row(row) if row is not None else None

    async def get(self, uow: UnitOfWork, segment_id: str, *, for_update: bool = False) -> Segment | None:
        query = sa.select(t).where(t.c.segment_id == segment_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return _from_row(row) if row is not None else None

    async def exists(self, uow: UnitOfWork, segment_id: str) -> bool:
        return bool(await uow.scalar(sa.select(sa.exists().where(t.c.segment_id == segment_id))))

    async def display_name_taken(self, uow: UnitOfWork, display_name: str, *, other_than: str = "") -> bool:
        query = sa.exists().where(sa.func.lower(t.c.display_name) == display_name.lower(),
                                  t.c.segment_id != other_than)
        return bool(await uow.scalar(sa.select(query)))

    async def update(self, uow: UnitOfWork, segment: Segment) -> Segment | None:
        """Store the new definition; None when its display name collides with another segment's."""
        statement = (
            sa.update(t).where(t.c.segment_id == segment.segment_id)
            .values(**_to_row(segment), version=t.c.version + 1, updated_at=sa.func.now())
            .returning(t)
        )
        try:
            async with uow.begin_nested():
                row = (await uow.execute(statement)).one()
        except IntegrityError:
            return None
        return _from_row(row)

    async def delete(self, uow: UnitOfWork, segment_id: str) -> None:
        await uow.execute(sa.delete(t).where(t.c.segment_id == segment_id))

    async def page(
        self, uow: UnitOfWork, *, after: tuple[str, str] | None, limit: int, display_name_contains: str = "",
        evaluation_mode: EvaluationMode = EvaluationMode.UNSPECIFIED, feature: str = "", creator: str = "",
    ) -> Sequence[tuple[str, Segment]]:
        """Segments in case-insensitive display-name order after the (sort key, id) of the last page,
        each with its sort key as the database computed it (the next page token carries it)."""
        sort_key = sa.func.lower(t.c.display_name)
        query = sa.select(t, sort_key.label("sort_key")).order_by(sort_key, t.c.segment_id).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(sort_key, t.c.segment_id) > sa.tuple_(*after))
        if display_name_contains:
            query = query.where(sort_key.contains(display_name_contains.lower(), autoescape=True))
        if evaluation_mode is not EvaluationMode.UNSPECIFIED:
            query = query.where(t.c.evaluation_mode == int(evaluation_mode))
        if feature:
            query = query.where(t.c.referenced_features.contains([feature]))
        if creator:
            query = query.where(t.c.creator == creator)
        return [(row.sort_key, _from_row(row)) for row in (await uow.execute(query)).all()]
