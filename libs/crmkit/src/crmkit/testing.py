"""Test fixtures shared by every service's tests: a real PostgreSQL, real in-process servers.

PostgreSQL comes from `CRM_TEST_DATABASE_URL` when set (CI has one at 127.0.0.1:5432) and from
an embedded `pgserver` otherwise. Each test session gets fresh databases, migrated with the
service's own Alembic scripts, and drops them at the end.

Registered as a pytest plugin by the repository's root conftest.py.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from crmkit import app
from crmkit.auth import Role, issue_token
from crmkit.db import migrate
from crmkit.logs import configure_logging

TEST_JWT_SECRET = "test-only-secret-" + "x" * 32


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session", autouse=True)
def json_logs() -> None:
    """Tests log as production does: JSON lines, tracebacks without local variables."""
    configure_logging(service="test", level="INFO")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL of a real PostgreSQL server for this test session."""
    configured = os.environ.get("CRM_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="crm-test-pg-") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


class DatabaseFactory:
    """Creates throw-away databases on the test server, and drops them all at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._created: list[str] = []

    async def create(self, prefix: str) -> str:
        name = f"crmtest_{prefix}_{uuid.uuid4().hex[:10]}"
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self._created.append(name)
        return _with_database(self.admin_url, name)

    async def drop_all(self) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            for name in self._created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture(scope="session")
async def database_factory(postgres_admin_url: str) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(postgres_admin_url)
    yield factory
    await factory.drop_all()


async def migrated_database(factory: DatabaseFactory, spec: app.ServiceSpec[Any]) -> str:
    url = await factory.create(spec.name)
    await migrate(spec.migrations, url)
    return url


def token(*roles: Role | str, subject: str = "tester") -> str:
    return issue_token(secret=TEST_JWT_SECRET, subject=subject, roles=roles)


def bearer(*roles: Role | str, subject: str = "tester") -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a test token with these roles."""
    return (("authorization", f"Bearer {token(*roles, subject=subject)}"),)


@asynccontextmanager
async def running_service(
    spec: app.ServiceSpec[Any], *, database_url: str, **overrides: Any,
) -> AsyncIterator[tuple[grpc.aio.Channel, Any]]:
    """The service on a free port in this process, and a plain channel to it."""
    settings = spec.settings_type(
        env="test", jwt_secret=TEST_JWT_SECRET, database_url=database_url, port=0, host="127.0.0.1",
        shutdown_grace_seconds=1.0, **overrides,
    )
    server, runtime = await app.start(spec, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}")
    try:
        yield channel, runtime
    finally:
        await channel.close()
        await app.stop(server, runtime)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_key() -> str:
    return secrets.token_urlsafe(32)


def shared_data_dir(*names: str) -> Path:
    """`../shared/data` beside the repository, skipping the test when it (or a file) is absent."""
    root = Path(__file__).resolve()
    for parent in root.parents:
        candidate = parent.parent / "shared" / "data"
        if (parent / ".git").exists() or (parent / "Makefile").exists():
            break
    else:  # pragma: no cover
        candidate = Path("../shared/data")
    missing: Iterable[str] = [n for n in names if not (candidate / n).exists()]
    if not candidate.is_dir() or missing:
        pytest.skip(f"real data sets not found at {candidate} (a clone without shared/ skips these tests)")
    return candidate
