"""All SQL of the retention policies and the purge. Never commits: the caller's unit of work does.

The purge works set-wise where data has its own time (events, audit records) and customer by
customer through the erasure path where it is counted from the end of the relationship.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.attributes.model import DataClass
from crm_profile.customers.model import ACTIVE, ERASED
from crm_profile.customers.tables import customer
from crm_profile.events.repository import partition_name
from crm_profile.events.rules import TRANSACTION_TYPES
from crm_profile.events.tables import customer_event
from crm_profile.privacy.audit_log.tables import audit_anchor
from crm_profile.privacy.retention.model import RetentionAction, RetentionAnchor, RetentionPolicy
from crm_profile.privacy.retention.tables import retention_policy
from crm_profile.tables import audit_record
from crmkit.db import UnitOfWork

_TX_TYPES = sorted(TRANSACTION_TYPES)
_PARTITION = re.compile(r"customer_event_p([0-9]{4})_([0-9]{2})")
_PARTITIONS = sa.text("""
    SELECT child.relname FROM pg_inherits
    JOIN pg_class child ON child.oid = pg_inherits.inhrelid
    JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
    WHERE parent.relname = 'customer_event'""")
# The append-only trigger of the audit log (crmkit.kit_schema): the purge alone lifts it, inside
# its own transaction (the statement needs the table's owner, and the change is transactional).
_AUDIT_TRIGGER_OFF = "ALTER TABLE audit_record DISABLE TRIGGER audit_record_append_only"
_AUDIT_TRIGGER_ON = "ALTER TABLE audit_record ENABLE TRIGGER audit_record_append_only"


def _policy(row: Any, minimum: timedelta) -> RetentionPolicy:
    return RetentionPolicy(
        data_class=DataClass(row.data_class), retention=timedelta(days=row.retention_days),
        anchor=RetentionAnchor(row.anchor), action=RetentionAction(row.action),
        overrides_erasure=row.overrides_erasure, legal_basis=row.legal_basis, minimum=minimum,
        version=row.version, updated_at=row.updated_at, last_purge_at=row.last_purge_at)


def _event_types(classes: Sequence[DataClass]) -> sa.ColumnElement[bool]:
    wanted = set(classes)
    is_transaction = customer_event.c.event_type.in_(_TX_TYPES)
    if {DataClass.TRANSACTION, DataClass.BEHAVIOUR} <= wanted:
        return sa.true()
    return is_transaction if DataClass.TRANSACTION in wanted else sa.not_(is_transaction)


class RetentionRepository:
    def __init__(self, minimums: Mapping[DataClass, timedelta]) -> None:
        self._minimums = dict(minimums)

    # --- policies --------------------------------------------------------------------------------

    async def policies(self, uow: UnitOfWork) -> dict[DataClass, RetentionPolicy]:
        rows = await uow.execute(sa.select(retention_policy).order_by(retention_policy.c.data_class))
        return {DataClass(r.data_class): _policy(r, self._minimum(r.data_class)) for r in rows}

    async def get(self, uow: UnitOfWork, data_class: DataClass, *,
                  for_update: bool = False) -> RetentionPolicy | None:
        query = sa.select(retention_policy).where(retention_policy.c.data_class == int(data_class))
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return _policy(row, self._minimum(row.data_class)) if row is not None else None

    async def page(self, uow: UnitOfWork, *, after: int | None, limit: int) -> list[RetentionPolicy]:
        query = sa.select(retention_policy).order_by(retention_policy.c.data_class).limit(limit)
        if after is not None:
            query = query.where(retention_policy.c.data_class > after)
        return [_policy(r, self._minimum(r.data_class)) for r in await uow.execute(query)]

    async def update(self, uow: UnitOfWork, policy: RetentionPolicy) -> RetentionPolicy:
        t = retention_policy
        row = (await uow.execute(sa.update(t).where(t.c.data_class == int(policy.data_class)).values(
            retention_days=policy.retention.days, anchor=int(policy.anchor), action=int(policy.action),
            overrides_erasure=policy.overrides_erasure, legal_basis=policy.legal_basis, version=t.c.version + 1,
            updated_at=sa.func.now()).returning(t))).one()
        return _policy(row, self._minimum(row.data_class))

    async def mark_purged(self, uow: UnitOfWork, classes: Sequence[DataClass]) -> None:
        await uow.execute(sa.update(retention_policy).where(
            retention_policy.c.data_class.in_([int(c) for c in classes])).values(last_purge_at=sa.func.now()))

    def _minimum(self, data_class: int) -> timedelta:
        return self._minimums.get(DataClass(data_class), timedelta(0))

    # --- customers whose relationship ended ------------------------------------------------------

    async def closed_customers(self, uow: UnitOfWork, *, closed_before: date, after: str,
                               limit: int) -> list[tuple[str, date]]:
        """Live and erased customers whose relationship ended before the date, in id order."""
        c = customer
        rows = await uow.execute(
            sa.select(c.c.customer_id, c.c.closed_on)
            .where(c.c.closed_on < closed_before, c.c.state.in_([ACTIVE, ERASED]), c.c.customer_id > after)
            .order_by(c.c.customer_id).limit(limit))
        return [(r.customer_id, r.closed_on) for r in rows]

    # --- events by their own time ----------------------------------------------------------------

    async def count_events(self, uow: UnitOfWork, classes: Sequence[DataClass], *, before: datetime,
                           anonymised: bool = False) -> int:
        e = customer_event
        query = sa.select(sa.func.count()).select_from(e).where(e.c.occur_time < before, _event_types(classes))
        if anonymised:  # what an anonymising purge still has to do
            query = query.where(e.c.customer_id != "")
        return int(await uow.scalar(query) or 0)

    async def event_months(self, uow: UnitOfWork) -> list[date]:
        months = []
        for (name,) in await uow.execute(_PARTITIONS):
            match = _PARTITION.fullmatch(name)
            if match is not None:
                months.append(date(int(match[1]), int(match[2]), 1))
        return sorted(months)

    async def drop_month(self, uow: UnitOfWork, month: date, classes: Sequence[DataClass]) -> int | None:
        """Drop a month's partition when every event in it is of `classes`; its size, or None when
        it holds others (then its due rows are deleted row by row)."""
        table = partition_name(month)  # a name built from a date: safe to interpolate
        wanted = set(classes)
        if not {DataClass.TRANSACTION, DataClass.BEHAVIOUR} <= wanted:
            other_types = "NOT IN" if DataClass.TRANSACTION in wanted else "IN"
            types = ", ".join(str(t) for t in _TX_TYPES)
            others = await uow.scalar(sa.text(
                f"SELECT EXISTS (SELECT 1 FROM {table} WHERE event_type {other_types} ({types}))"))  # noqa: S608
            if others:
                return None
        size = int(await uow.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608
        await uow.execute(sa.text(
            f"DELETE FROM customer_event_id WHERE event_id IN (SELECT event_id FROM {table})"))  # noqa: S608
        await uow.execute(sa.text(f"DROP TABLE {table}"))
        return size

    async def delete_events(self, uow: UnitOfWork, classes: Sequence[DataClass], *, before: datetime,
                            limit: int) -> int:
        e = customer_event
        doomed = (sa.select(e.c.customer_id, e.c.occur_time, e.c.event_id)
                  .where(e.c.occur_time < before, _event_types(classes)).limit(limit))
        deleted = (await uow.execute(
            sa.delete(e).where(sa.tuple_(e.c.customer_id, e.c.occur_time, e.c.event_id).in_(doomed),
                               e.c.occur_time < before).returning(e.c.event_id))).scalars().all()
        if deleted:
            await uow.execute(sa.text("DELETE FROM customer_event_id WHERE event_id = ANY(:ids)"),
                                  {"ids": list(deleted)})
        return len(deleted)

    async def anonymise_events(self, uow: UnitOfWork, classes: Sequence[DataClass], *, before: datetime,
                               limit: int) -> int:
        """Unlink events from their customer: type, channel, time and amounts stay for aggregates."""
        e = customer_event
        doomed = (sa.select(e.c.customer_id, e.c.occur_time, e.c.event_id)
                  .where(e.c.occur_time < before, e.c.customer_id != "", _event_types(classes)).limit(limit))
        result = await uow.execute(
            sa.update(e).where(sa.tuple_(e.c.customer_id, e.c.occur_time, e.c.event_id).in_(doomed),
                               e.c.occur_time < before)
            .values(customer_id="", original_customer_id=None, holding_id=None, application_id=None,
                    properties=None))
        return int(result.rowcount or 0)

    # --- audit records ---------------------------------------------------------------------------

    async def audit_due(self, uow: UnitOfWork, *, before: datetime) -> dict[str, int]:
        """Per chain, the last record to purge: those older than `before`, but never a chain's newest
        (the chain goes on from it)."""
        a = audit_record
        heads = sa.select(a.c.chain_id, sa.func.max(a.c.seq).label("head")).group_by(a.c.chain_id).subquery()
        rows = await uow.execute(
            sa.select(a.c.chain_id, sa.func.max(a.c.seq)).join(heads, heads.c.chain_id == a.c.chain_id)
            .where(a.c.recorded_at < before, a.c.seq < heads.c.head).group_by(a.c.chain_id))
        return {chain: through for chain, through in rows}

    async def count_audit(self, uow: UnitOfWork, through: Mapping[str, int]) -> int:
        a = audit_record
        total = 0
        for chain, last in through.items():
            total += int(await uow.scalar(sa.select(sa.func.count()).where(
                a.c.chain_id == chain, a.c.seq <= last)) or 0)
        return total

    async def purge_audit(self, uow: UnitOfWork, through: Mapping[str, int], *, after: int,
                          limit: int) -> tuple[int, int]:
        """Delete the next records due (in sequence order, so each chain loses a prefix) and move
        each chain's anchor to its last deleted record; (records deleted, last sequence looked at)."""
        a = audit_record
        rows = (await uow.execute(
            sa.select(a.c.seq, a.c.chain_id, a.c.hash).where(a.c.seq > after, a.c.seq <= max(through.values()))
            .order_by(a.c.seq).limit(limit))).all()
        if not rows:
            return 0, max(through.values())
        doomed = [r for r in rows if r.seq <= through.get(r.chain_id, 0)]
        if doomed:
            anchors: dict[str, Any] = {}
            for row in doomed:
                anchors[row.chain_id] = row
            await uow.execute(sa.text(_AUDIT_TRIGGER_OFF))
            await uow.execute(sa.delete(a).where(a.c.seq.in_([r.seq for r in doomed])))
            await uow.execute(sa.text(_AUDIT_TRIGGER_ON))
            for chain, row in anchors.items():
                statement = pg.insert(audit_anchor).values(chain_id=chain, purged_through_seq=row.seq,
                                                           last_hash=row.hash)
                await uow.execute(statement.on_conflict_do_update(
                    index_elements=[audit_anchor.c.chain_id],
                    set_={"purged_through_seq": row.seq, "last_hash": row.hash, "purged_at": sa.func.now()}))
        return len(doomed), rows[-1].seq
