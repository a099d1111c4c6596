"""Every service's migration history is one line, and every revision can be undone: a failed
rollout is rolled back by `alembic downgrade` to the previous release's revision."""

from __future__ import annotations

import asyncio
import importlib

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from crmkit.db import alembic_config, migrate
from crmkit.settings import plain_database_url
from crmkit.testing import DatabaseFactory

SERVICES = ("profile", "segment", "campaign", "feedback", "risk")


async def tables(url: str) -> set[str]:
    connection = await asyncpg.connect(plain_database_url(url))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


@pytest.mark.parametrize("service", SERVICES)
async def test_the_history_is_linear_and_downgrades_to_nothing_and_back(
    service: str, database_factory: DatabaseFactory,
) -> None:
    spec = importlib.import_module(f"crm_{service}.app").SPEC
    url = await database_factory.create(f"mig_{service}")
    config = alembic_config(spec.migrations, url)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1, "one head: merge the branches"

    await migrate(spec.migrations, url)
    upgraded = await tables(url)
    assert {"audit_record", "outbox_event", "alembic_version"} <= upgraded
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await tables(url) == {"alembic_version"}
    await migrate(spec.migrations, url)
    assert await tables(url) == upgraded
