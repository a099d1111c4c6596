"""The `changes` audit chain extended inside units of work (`crmkit.audit.append`): concurrent
changes, lone records and several at once, verify as one chain; a change rolled back leaves no
record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from crmkit import audit
from crmkit.db import Database, metadata
from crmkit.testing import DatabaseFactory

kit = metadata()
audit_records = audit.audit_table(kit)


@pytest.fixture(scope="module")
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("kit_audit"))
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    yield database
    await database.dispose()


def entry(i: int, **fields: object) -> audit.AuditEntry:
    return audit.AuditEntry(principal=f"u{i}", action="customer.update", resource_name=f"customers/{i}",
                            purpose="DATA_MANAGEMENT", **fields)  # type: ignore[arg-type]


async def test_concurrent_changes_extend_one_verifiable_chain(db: Database) -> None:
    async def change(i: int) -> None:
        async with db.unit_of_work() as session:
            if i % 5 == 0:
                await audit.append(session, audit_records, [entry(i), entry(i + 1000, fields=("full_name",))])
            else:
                await audit.append(session, audit_records, [entry(i, justification="CASE-1", fields=("mobile",))])

    await asyncio.gather(*(change(i) for i in range(30)))
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await audit.append(session, audit_records, [entry(999)])
            raise RuntimeError("the change fails")
    async with db.unit_of_work(read_only=True) as session:
        assert await audit.verify_chain(session, audit_records) is None
        count = await session.scalar(sa.select(sa.func.count()).select_from(audit_records))
        lone = (await session.execute(sa.select(audit_records).where(audit_records.c.principal == "u1"))).one()
    assert count == 36, "30 changes, 6 of them with two records; the rolled-back one left none"
    assert (lone.justification, list(lone.fields), lone.outcome, lone.hash_recipe) == (
        "CASE-1", ["mobile"], audit.ALLOWED, audit.RECIPE)
    assert lone.hash == audit.record_hash(lone.prev_hash, lone.recorded_at, entry(
        1, justification="CASE-1", fields=("mobile",), actor_roles=tuple(lone.actor_roles), method=lone.method),
        chain_id=audit.CHANGES_CHAIN)
