"""All SQL about consents and contact preferences. Never commits: the caller's unit of work does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.consents.model import (
    OPT_OUT,
    ConsentEvidence,
    ConsentRecord,
    ContactPreferences,
    ContactWindow,
)
from crm_profile.consents.tables import consent_record as r
from crm_profile.consents.tables import contact_preference as p
from crm_profile.identity.tables import customer_merge

# MERGE-sourced records of a merge that was undone no longer count (the ledger keeps them).
_UNMERGED = 2
_COUNTS = sa.or_(
    r.c.merge_id.is_(None),
    ~sa.exists().where(customer_merge.c.merge_id == r.c.merge_id, customer_merge.c.state == _UNMERGED),
)


def _record(row: RowMapping) -> ConsentRecord:
    return ConsentRecord(
        record_id=row["record_id"], customer_id=row["customer_id"], origin_customer_id=row["origin_customer_id"],
        purpose=row["purpose"], channel=row["channel"], decision=row["decision"],
        evidence=ConsentEvidence(source=row["source"], source_reference=row["source_reference"],
                                 effective_at=row["effective_at"], text_version=row["text_version"],
                                 recorded_by=row["recorded_by"]),
        expire_at=row["expire_at"], recorded_at=row["recorded_at"], recorder=row["recorder"], seq=row["seq"],
        merge_id=row["merge_id"],
    )


class ConsentRepository:
    async def append(self, session: AsyncConnection, records: Sequence[ConsentRecord], *, batch_id: uuid.UUID,
                     recorder: str) -> list[ConsentRecord]:
        """Append records in the given order; returns them as stored."""
        rows = []
        for record in records:
            assert record.evidence is not None
            rows.append({
                "record_id": uuid.uuid4(), "customer_id": record.customer_id,
                "origin_customer_id": record.origin_customer_id or record.customer_id,
                "purpose": record.purpose, "channel": record.channel, "decision": record.decision,
                "source": record.evidence.source, "source_reference": record.evidence.source_reference,
                "effective_at": record.evidence.effective_at, "text_version": record.evidence.text_version,
                "recorded_by": record.evidence.recorded_by, "expire_at": record.expire_at, "recorder": recorder,
                "batch_id": batch_id, "merge_id": record.merge_id,
            })
        if not rows:
            return []
        stored = (await session.execute(sa.insert(r).returning(r), rows)).all()
        by_id = {row.record_id: _record(row._mapping) for row in stored}
        return [by_id[row["record_id"]] for row in rows]

    async def batch(self, session: AsyncConnection, batch_id: uuid.UUID) -> list[ConsentRecord]:
        rows = (await session.execute(sa.select(r).where(r.c.batch_id == batch_id).order_by(r.c.seq))).all()
        return [_record(row._mapping) for row in rows]

    async def counting(self, session: AsyncConnection, customer_id: str, *, purposes: Iterable[int] = (),
                       channels: Iterable[int] = ()) -> list[ConsentRecord]:
        """Every record that counts towards the customer's current state (optionally some pairs)."""
        query = sa.select(r).where(r.c.customer_id == customer_id, _COUNTS)
        if purposes := list(purposes):
            query = query.where(r.c.purpose.in_(purposes))
        if channels := list(channels):
            query = query.where(r.c.channel.in_(channels))
        return [_record(row._mapping) for row in (await session.execute(query)).all()]

    async def history(self, session: AsyncConnection, customer_id: str, *, purposes: Iterable[int],
                      channels: Iterable[int], before_seq: int | None, limit: int) -> list[ConsentRecord]:
        """The ledger newest first (`seq` follows `record_time`)."""
        query = sa.select(r).where(r.c.customer_id == customer_id, _COUNTS).order_by(r.c.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(r.c.seq < before_seq)
        if purposes := list(purposes):
            query = query.where(r.c.purpose.in_(purposes))
        if channels := list(channels):
            query = query.where(r.c.channel.in_(channels))
        return [_record(row._mapping) for row in (await session.execute(query)).all()]

    async def move_all(self, session: AsyncConnection, *, from_customer: str, to_customer: str) -> list[ConsentRecord]:
        """Serve every record of one customer under another (a merge); returns them as moved."""
        rows = (await session.execute(
            sa.update(r).where(r.c.customer_id == from_customer).values(customer_id=to_customer).returning(r))).all()
        return [_record(row._mapping) for row in rows]

    async def move_back(self, session: AsyncConnection, record_ids: Sequence[uuid.UUID], *, from_customer: str,
                        to_customer: str) -> list[ConsentRecord]:
        """Serve the given records (still under `from_customer`) under `to_customer` again (an unmerge)."""
        if not record_ids:
            return []
        rows = (await session.execute(
            sa.update(r).where(r.c.record_id.in_(list(record_ids)), r.c.customer_id == from_customer)
            .values(customer_id=to_customer).returning(r))).all()
        return [_record(row._mapping) for row in rows]

    async def opt_outs_since(self, session: AsyncConnection, customer_id: str, since: datetime) -> list[ConsentRecord]:
        """Opt-outs recorded on the customer itself (not merged in, not by a merge) after `since`."""
        query = sa.select(r).where(
            r.c.customer_id == customer_id, r.c.origin_customer_id == customer_id, r.c.merge_id.is_(None),
            r.c.decision == OPT_OUT, r.c.recorded_at >= since).order_by(r.c.seq)
        return [_record(row._mapping) for row in (await session.execute(query)).all()]


def _windows_to_json(windows: Sequence[ContactWindow]) -> list[dict[str, Any]]:
    return [{"days": list(w.days), "start": list(w.start or ()), "end": list(w.end or ())} for w in windows]


def _windows_from_json(value: Sequence[Mapping[str, Any]]) -> tuple[ContactWindow, ...]:
    return tuple(ContactWindow(days=tuple(w["days"]), start=tuple(w["start"]) or None,
                               end=tuple(w["end"]) or None) for w in value)


class PreferenceRepository:
    async def get(self, session: AsyncConnection, customer_id: str, *, language: str,
                  for_update: bool = False) -> ContactPreferences:
        """The stored preferences, or the empty ones every customer starts with (version 0)."""
        query = sa.select(p).where(p.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        if row is None:
            return ContactPreferences(customer_id=customer_id, language=language)
        return self._from_row(row._mapping, language)

    @staticmethod
    def _from_row(row: RowMapping, language: str) -> ContactPreferences:
        return ContactPreferences(
            customer_id=row["customer_id"], preferred_channels=tuple(row["preferred_channels"]),
            contact_windows=_windows_from_json(row["contact_windows"]), time_zone=row["time_zone"],
            language=language, do_not_contact=row["do_not_contact"],
            do_not_contact_reason=row["do_not_contact_reason"], do_not_contact_note=row["do_not_contact_note"],
            do_not_contact_at=row["do_not_contact_at"], do_not_contact_until=row["do_not_contact_until"],
            version=row["version"], updated_at=row["updated_at"],
        )

    async def save(self, session: AsyncConnection, preferences: ContactPreferences) -> ContactPreferences:
        """Insert or replace; the version goes up by one."""
        values = {
            "preferred_channels": list(preferences.preferred_channels),
            "contact_windows": _windows_to_json(preferences.contact_windows),
            "time_zone": preferences.time_zone, "do_not_contact": preferences.do_not_contact,
            "do_not_contact_reason": preferences.do_not_contact_reason,
            "do_not_contact_note": preferences.do_not_contact_note,
            "do_not_contact_at": preferences.do_not_contact_at,
            "do_not_contact_until": preferences.do_not_contact_until,
        }
        statement = (
            pg.insert(p).values(customer_id=preferences.customer_id, **values)
            .on_conflict_do_update(index_elements=[p.c.customer_id],
                                   set_={**values, "version": p.c.version + 1, "updated_at": sa.func.now()})
            .returning(p)
        )
        row = (await session.execute(statement)).one()
        return self._from_row(row._mapping, preferences.language)

    async def delete(self, session: AsyncConnection, customer_id: str) -> None:
        await session.execute(sa.delete(p).where(p.c.customer_id == customer_id))


def preferences_to_json(preferences: ContactPreferences) -> dict[str, Any]:
    """A stored form for a merge's undo data (the language lives on the customer and is left out)."""
    return {
        "preferred_channels": list(preferences.preferred_channels),
        "contact_windows": _windows_to_json(preferences.contact_windows), "time_zone": preferences.time_zone,
        "do_not_contact": preferences.do_not_contact, "do_not_contact_reason": preferences.do_not_contact_reason,
        "do_not_contact_note": preferences.do_not_contact_note,
        "do_not_contact_at": preferences.do_not_contact_at.isoformat() if preferences.do_not_contact_at else None,
        "do_not_contact_until": preferences.do_not_contact_until.isoformat()
        if preferences.do_not_contact_until else None,
    }


def preferences_from_json(customer_id: str, value: Mapping[str, Any], *, language: str) -> ContactPreferences:
    return ContactPreferences(
        customer_id=customer_id, preferred_channels=tuple(value["preferred_channels"]),
        contact_windows=_windows_from_json(value["contact_windows"]), time_zone=value["time_zone"], language=language,
        do_not_contact=value["do_not_contact"], do_not_contact_reason=value["do_not_contact_reason"],
        do_not_contact_note=value["do_not_contact_note"],
        do_not_contact_at=datetime.fromisoformat(value["do_not_contact_at"]) if value["do_not_contact_at"] else None,
        do_not_contact_until=date.fromisoformat(value["do_not_contact_until"])
        if value["do_not_contact_until"] else None,
    )
