"""The embedded PostgreSQL: roles and databases idempotently, and a password really required."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from crm_cli import postgres


@pytest.fixture(scope="module")
def server(pg_home_module: Path) -> Iterator[postgres.EmbeddedPostgres]:
    pgdata = pg_home_module / "pgdata"
    running = postgres.start(pgdata)
    try:
        yield running
    finally:
        postgres.stop(running)


def hba_methods(server: postgres.EmbeddedPostgres) -> set[str]:
    rules = [line.split() for line in (server.pgdata / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {rule[3] if rule[0] == "local" else rule[4] for rule in rules}


async def connect(server: postgres.EmbeddedPostgres, user: str, password: str | None,
                  database: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(**server.connect_kwargs(user=user, password=password,  # type: ignore[arg-type]
                                                         database=database or user))


async def test_pgserver_trusts_everyone_until_prepare_locks_it_down(server: postgres.EmbeddedPostgres) -> None:
    assert hba_methods(server) == {"trust"}  # what pgserver's initdb writes
    assert await postgres.prepare(server, {"crm_alpha": "first-password"}) == ["crm_alpha"]
    assert hba_methods(server) == {"peer", "scram-sha-256"}
    assert await postgres.password_required(server, "crm_alpha")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await connect(server, "crm_alpha", None)
    connection = await connect(server, "crm_alpha", "first-password")
    try:
        assert await connection.fetchval("SELECT current_user") == "crm_alpha"
        privileged = "SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        assert not await connection.fetchval(privileged)
        await connection.execute("CREATE TABLE t (id int)")  # the owner may build its schema
    finally:
        await connection.close()


async def test_prepare_is_idempotent_and_keeps_passwords_in_step(server: postgres.EmbeddedPostgres) -> None:
    await postgres.prepare(server, {"crm_alpha": "first-password", "crm_beta": "beta-password"})
    assert await postgres.prepare(server, {"crm_alpha": "second-password", "crm_beta": "beta-password"}) == []
    (await connect(server, "crm_alpha", "second-password")).terminate()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await connect(server, "crm_alpha", "first-password")


async def test_a_service_role_cannot_open_another_services_database(server: postgres.EmbeddedPostgres) -> None:
    await postgres.prepare(server, {"crm_alpha": "second-password", "crm_beta": "beta-password"})
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await connect(server, "crm_beta", "beta-password", database="crm_alpha")


async def test_the_superuser_is_reachable_only_by_this_os_account(server: postgres.EmbeddedPostgres) -> None:
    connection = await connect(server, postgres.SUPERUSER, None, database="postgres")
    try:
        assert await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await connection.close()
    ident = (server.pgdata / "pg_ident.conf").read_text()
    assert f"{postgres.IDENT_MAP} " in ident


def test_urls_point_at_the_unix_socket(server: postgres.EmbeddedPostgres) -> None:
    url = server.url(user="crm_alpha", password="p w", database="crm_alpha")
    assert url.startswith("postgresql://crm_alpha:p%20w@/crm_alpha?host=/")
    assert url.endswith(f"&port={server.port}")


def test_stop_ends_the_server(pg_home: Path) -> None:
    running = postgres.start(pg_home / "pgdata")
    assert postgres.is_running(running.pid)
    postgres.stop(running)
    assert not postgres.is_running(running.pid)
    assert not (pg_home / "pgdata" / "postmaster.pid").exists()
