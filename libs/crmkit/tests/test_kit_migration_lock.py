"""Schema upgrades under the database's migration lock (crmkit.db.MIGRATION_LOCK_KEY), against real
PostgreSQL: two runners started together both succeed and apply each migration once; a runner waits
while another holds the lock; `wait_until_migrated` (the Deployments' init container) returns only
once the code's heads are applied, and also when the schema is ahead of the code (a rollback)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from crmkit.db import MIGRATION_LOCK_KEY, migrate, pending_migrations, wait_until_migrated
from crmkit.testing import DatabaseFactory

# Runners started as processes meet at a barrier first (MIGRATION_BARRIER, a folder each one
# signs), so both open their upgrade at the same moment whatever their start-up times.
ENV = """import os, pathlib, time

import sqlalchemy as sa

from crmkit.db import run_migrations_online

barrier = os.environ.get("MIGRATION_BARRIER")
if barrier:
    (pathlib.Path(barrier) / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(pathlib.Path(barrier).iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
run_migrations_online(sa.MetaData())
"""
# Slow on purpose: the first runner still holds its transaction when the second one starts.
REVISION = """revision = "w1"
down_revision = None
branch_labels = None
depends_on = None

from alembic import op


def upgrade() -> None:
    op.execute("SELECT pg_sleep(1)")
    op.execute("CREATE TABLE widget (id int PRIMARY KEY)")
    op.execute("CREATE TABLE IF NOT EXISTS runs (n int)")
    op.execute("INSERT INTO runs VALUES (1)")


def downgrade() -> None:
    op.execute("DROP TABLE widget")
"""


def scripts(tmp_path: Path) -> Path:
    (tmp_path / "versions").mkdir(parents=True)
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "w1_widget.py").write_text(REVISION)
    return tmp_path


async def fetch(url: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


async def run_migrate_process(location: Path, url: str, barrier: Path) -> tuple[int, str]:
    """A runner as the Job runs it: its own process (Alembic's context is one per process)."""
    code = ("import asyncio, pathlib; from crmkit.db import migrate;"
            f"asyncio.run(migrate(pathlib.Path({str(location)!r}), {url!r}))")
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE,
                                                   env={**os.environ, "MIGRATION_BARRIER": str(barrier)})
    _, stderr = await process.communicate()
    return process.returncode or 0, stderr.decode()[-2000:]


@pytest.mark.slow
async def test_two_runners_at_once_both_succeed_and_migrate_once(database_factory: DatabaseFactory,
                                                                 tmp_path: Path) -> None:
    url = await database_factory.create("miglock")
    location, barrier = scripts(tmp_path / "scripts"), tmp_path / "barrier"
    barrier.mkdir()
    results = await asyncio.gather(run_migrate_process(location, url, barrier),
                                   run_migrate_process(location, url, barrier))
    assert [code for code, _ in results] == [0, 0], results
    assert [r["n"] for r in await fetch(url, "SELECT n FROM runs")] == [1], "the migration ran once"
    assert [r["version_num"] for r in await fetch(url, "SELECT version_num FROM alembic_version")] == ["w1"]
    assert await pending_migrations(location, url) == []


async def test_a_runner_waits_for_the_lock_holder(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    url = await database_factory.create("miglock")
    location = scripts(tmp_path)
    holder = await asyncpg.connect(url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        runner = asyncio.create_task(migrate(location, url))
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        for _ in range(600):  # the runner's start-up (imports, connection) takes a while under load
            if runner.done() or await holder.fetchval(waiting) == 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert not runner.done(), "the runner went ahead while another held the migration lock"
        assert await holder.fetchval(waiting) == 1, "the runner waits on the migration lock"
        await transaction.rollback()
        await asyncio.wait_for(runner, timeout=30)
    finally:
        await holder.close()
    assert await pending_migrations(location, url) == []


async def test_waiting_for_the_schema_ends_at_the_codes_heads_or_beyond(database_factory: DatabaseFactory,
                                                                        tmp_path: Path) -> None:
    url = await database_factory.create("miglock")
    location = scripts(tmp_path)
    assert await pending_migrations(location, url) == ["w1"]
    seen: list[list[str]] = []
    waiter = asyncio.create_task(wait_until_migrated(location, url, poll_seconds=0.1, on_wait=seen.append))
    await asyncio.sleep(0.5)
    assert not waiter.done() and seen == [["w1"]], "reported once, still waiting"
    await migrate(location, url)
    await asyncio.wait_for(waiter, timeout=10)
    # A later release's revision, unknown to this code: the schema is ahead, and a rolled-back
    # image starts on it.
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("UPDATE alembic_version SET version_num = 'x9_from_a_later_release'")
    finally:
        await connection.close()
    assert await pending_migrations(location, url) == []
    await asyncio.wait_for(wait_until_migrated(location, url, poll_seconds=0.1), timeout=10)
