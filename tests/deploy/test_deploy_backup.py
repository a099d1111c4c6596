"""The backup and restore runbook (docs/operations.md, "Back up and restore a database"), run for
real: each service's migrated database, with rows in it, is dumped with `pg_dump --format=custom`
and restored with `pg_restore` into an empty database exactly as the runbook says; the restored
database has the same tables, the same rows (compared by content hash), the same schema revision,
and the service's code finds nothing left to migrate. Against the test PostgreSQL server
(CRM_TEST_DATABASE_URL or the embedded one); skips when the client tools are missing.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
from pathlib import Path

import asyncpg
import pytest

from crmkit.db import pending_migrations
from crmkit.testing import DatabaseFactory, migrated_database

SERVICES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "services").iterdir()
                  if (p / "pyproject.toml").exists())
PG_DUMP, PG_RESTORE = shutil.which("pg_dump"), shutil.which("pg_restore")

TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' ORDER BY 1
"""


async def content(url: str) -> dict[str, tuple[int, str]]:
    """Per table: its row count and an order-independent hash of its rows' text."""
    connection = await asyncpg.connect(url)
    try:
        found = {}
        for (table,) in await connection.fetch(TABLES):
            quoted = '"' + table.replace('"', '""') + '"'
            row = await connection.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), '')) AS h "  # noqa: S608
                f"FROM {quoted} t")
            found[table] = (row["n"], row["h"])
        return found
    finally:
        await connection.close()


async def run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    assert process.returncode == 0, f"{command[0]} failed: {stderr.decode()[-2000:]}"


@pytest.mark.slow
@pytest.mark.skipif(PG_DUMP is None or PG_RESTORE is None, reason="pg_dump/pg_restore are not installed")
@pytest.mark.parametrize("service", SERVICES)
async def test_a_dump_restores_into_an_empty_database_with_every_row(service: str, database_factory: DatabaseFactory,
                                                                     tmp_path: Path) -> None:
    assert PG_DUMP is not None and PG_RESTORE is not None
    spec = importlib.import_module(f"crm_{service}.app").SPEC
    source = await migrated_database(database_factory, spec)
    connection = await asyncpg.connect(source)
    try:  # rows of our own beside what the migrations seeded: an audit-free kit table every service has
        await connection.execute("CREATE TABLE backup_probe (id int PRIMARY KEY, note text)")
        await connection.executemany("INSERT INTO backup_probe VALUES ($1, $2)", [(i, f"row {i}") for i in range(100)])
    finally:
        await connection.close()
    before = await content(source)
    assert before["backup_probe"][0] == 100 and "alembic_version" in before

    dump = tmp_path / f"{service}.dump"
    await run(PG_DUMP, "--format=custom", "--no-owner", "--no-acl", f"--file={dump}", source)
    target = await database_factory.create(f"{service}_restored")
    await run(PG_RESTORE, "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", f"--dbname={target}",
              str(dump))

    assert await content(target) == before
    assert await pending_migrations(spec.migrations, target) == [], "the restored schema is the code's"
