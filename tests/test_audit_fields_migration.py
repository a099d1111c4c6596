"""Audit records written before the audit-fields revision keep their recipe-1 hashes: after the
upgrade they read as recipe 1, allowed, with no fields, and the whole chain still verifies, new
recipe-2 records included."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import asyncpg
import sqlalchemy as sa

from crm_profile.app import SPEC
from crm_profile.tables import audit_record
from crmkit import audit
from crmkit.db import Database, migrate
from crmkit.settings import plain_database_url
from crmkit.testing import DatabaseFactory

BEFORE = "0013"  # the profile revision before 2026_12_07_0014_audit_fields


async def test_records_from_before_the_revision_still_verify(database_factory: DatabaseFactory) -> None:
    url = await database_factory.create("audit_fields")
    await migrate(SPEC.migrations, url, BEFORE)
    at = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
    body = json.dumps([at.isoformat(), "rm-7", "customer.read", "customers/C1", "CUSTOMER_SERVICE", "", ""],
                      separators=(",", ":")).encode()
    old_hash = hashlib.sha256(audit.GENESIS_HASH + body).digest()
    connection = await asyncpg.connect(plain_database_url(url))
    try:
        await connection.execute(
            "INSERT INTO audit_record (chain_id, recorded_at, principal, action, resource_name, purpose,"
            " justification, trace_id, prev_hash, hash) VALUES ('changes', $1, 'rm-7', 'customer.read',"
            " 'customers/C1', 'CUSTOMER_SERVICE', '', '', $2, $3)", at, audit.GENESIS_HASH, old_hash)
    finally:
        await connection.close()

    await migrate(SPEC.migrations, url)
    db = await Database.open(url)
    try:
        async with db.unit_of_work() as session:
            await audit.append(session, audit_record, [audit.AuditEntry(
                principal="rm-7", action="customer.update", resource_name="customers/C1", purpose="CUSTOMER_SERVICE",
                fields=("email",))])
        async with db.unit_of_work(read_only=True) as session:
            rows = (await session.execute(sa.select(audit_record).order_by(audit_record.c.seq))).all()
            assert [(r.hash_recipe, r.outcome, list(r.fields)) for r in rows] == [
                (1, "ALLOWED", []), (2, "ALLOWED", ["email"])]
            assert rows[1].prev_hash == old_hash
            assert await audit.verify_chain(session, audit_record) is None
    finally:
        await db.dispose()
