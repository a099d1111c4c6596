"""All SQL reading the audit log (the kit's `audit_record`) and the anchors its purge keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa

from crm_profile.privacy.audit_log.model import AuditFilter, AuditRow
from crm_profile.privacy.audit_log.tables import audit_anchor
from crm_profile.tables import audit_record as a
from crmkit.db import UnitOfWork

# The verb of a stored action (`customer.read` -> `read`), what AuditAction filters match.
_VERB = sa.func.substring(a.c.action, r"[^.]*$")
STREAM_ROWS = 2000


def _row(row: Any) -> AuditRow:
    return AuditRow(seq=row.seq, chain_id=row.chain_id, recorded_at=row.recorded_at, principal=row.principal,
                    action=row.action, resource_name=row.resource_name, purpose=row.purpose,
                    justification=row.justification, trace_id=row.trace_id, prev_hash=row.prev_hash, hash=row.hash,
                    actor_roles=tuple(row.actor_roles), method=row.method, fields=tuple(row.fields),
                    outcome=row.outcome, hash_recipe=row.hash_recipe)


def about_customer(customer_id: str) -> sa.ColumnElement[bool]:
    """Records about the customer or something under it (`customers/X/holdings/H`); the index on
    (resource_name text_pattern_ops, seq) serves both."""
    name = f"customers/{customer_id}"
    return sa.or_(a.c.resource_name == name, a.c.resource_name.startswith(name + "/", autoescape=True))


class AuditRepository:
    async def page(self, uow: UnitOfWork, narrowing: AuditFilter, *, verbs: Sequence[str], after: int | None,
                   limit: int) -> list[AuditRow]:
        query = sa.select(a).order_by(a.c.seq).limit(limit)
        if after is not None:
            query = query.where(a.c.seq > after)
        if narrowing.customer_id:
            query = query.where(about_customer(narrowing.customer_id))
        if narrowing.actor:
            query = query.where(a.c.principal == narrowing.actor)
        if narrowing.purpose:
            query = query.where(a.c.purpose == narrowing.purpose)
        if verbs:
            query = query.where(_VERB.in_(list(verbs)))
        if narrowing.start is not None:
            query = query.where(a.c.recorded_at >= narrowing.start)
        if narrowing.end is not None:
            query = query.where(a.c.recorded_at < narrowing.end)
        return [_row(r) for r in await uow.execute(query)]

    async def newest(self, uow: UnitOfWork) -> int:
        return int(await uow.scalar(sa.select(sa.func.max(a.c.seq))) or 0)

    async def oldest(self, uow: UnitOfWork) -> int:
        return int(await uow.scalar(sa.select(sa.func.min(a.c.seq))) or 0)

    async def tails_before(self, uow: UnitOfWork, start: int) -> dict[str, bytes]:
        """Each chain's hash just before `start`: the anchor the purge left (a chain's kept records
        all come after it), overridden by the chain's last record before `start`, if any."""
        tails = {row.chain_id: row.last_hash for row in await uow.execute(
            sa.select(audit_anchor.c.chain_id, audit_anchor.c.last_hash))}
        if start > 1:
            rows = await uow.execute(sa.text(
                "SELECT DISTINCT ON (chain_id) chain_id, hash FROM audit_record WHERE seq < :start"
                " ORDER BY chain_id, seq DESC"), {"start": start})
            tails.update({row.chain_id: row.hash for row in rows})
        return tails

    async def heads(self, uow: UnitOfWork) -> list[bytes]:
        """The newest record's hash of every chain."""
        rows = await uow.execute(sa.text(
            "SELECT DISTINCT ON (chain_id) hash FROM audit_record ORDER BY chain_id, seq DESC"))
        return [row.hash for row in rows]

    async def hash_of(self, uow: UnitOfWork, seq: int) -> bytes | None:
        return await uow.scalar(sa.select(a.c.hash).where(a.c.seq == seq))

    async def stream(self, uow: UnitOfWork, *, start: int, end: int) -> AsyncIterator[AuditRow]:
        """Records from `start` to `end` in sequence order, read in pages (a server-side cursor
        would hold the snapshot just the same, at more cost per row)."""
        after = start - 1
        while after < end:
            rows = (await uow.execute(sa.select(a).where(a.c.seq > after, a.c.seq <= end).order_by(a.c.seq)
                                          .limit(STREAM_ROWS))).all()
            if not rows:
                return
            for row in rows:
                yield _row(row)
            after = rows[-1].seq

    async def of_customer(self, uow: UnitOfWork, customer_id: str, *, after: int,
                          limit: int) -> list[AuditRow]:
        rows = await uow.execute(sa.select(a).where(about_customer(customer_id), a.c.seq > after)
                                     .order_by(a.c.seq).limit(limit))
        return [_row(r) for r in rows]
