"""Where benchmarks run: a PostgreSQL server, fresh databases, and server processes.

PostgreSQL comes from `CRM_BENCH_DATABASE_URL`, else `CRM_TEST_DATABASE_URL`, else an embedded
`pgserver` in a temporary directory. Either way the URL is a superuser's: each bench creates
its own database and drops it at the end.

Servers under test run as separate processes, as in production: the load generator in the bench
process must not share an event loop or a GIL with the server it measures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVER_START_SECONDS = 60.0
SERVER_STOP_SECONDS = 20.0


@dataclass(frozen=True)
class Postgres:
    admin_url: str
    source: str  # which setting (or "pgserver") supplied it, for the notes

    @classmethod
    @asynccontextmanager
    async def provide(cls) -> AsyncIterator[Postgres]:
        for variable in ("CRM_BENCH_DATABASE_URL", "CRM_TEST_DATABASE_URL"):
            url = os.environ.get(variable)
            if url:
                yield cls(url, variable)
                return
        import pgserver

        with tempfile.TemporaryDirectory(prefix="crm-bench-pg-") as data_dir:
            server = await asyncio.to_thread(pgserver.get_server, data_dir, cleanup_mode="stop")
            try:
                yield cls(server.get_uri(), "pgserver")
            finally:
                await asyncio.to_thread(server.cleanup)


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database (query options such as a socket dir stay)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@asynccontextmanager
async def fresh_database(admin_url: str, *, prefix: str) -> AsyncIterator[str]:
    name = f"crmbench_{prefix.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield with_database(admin_url, name)
    finally:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def size_from_env(variable: str, default: int, *, minimum: int = 0, why: str = "") -> int:
    """A benchmark's size: `variable` when set and not empty, else `default`; below `minimum`
    it is refused, naming the variable (and `why`, when given)."""
    configured = os.environ.get(variable, "")
    count = int(configured) if configured else default
    if count < minimum:
        raise ValueError(f"{variable} must be at least {minimum}" + (f" ({why})" if why else ""))
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_to_completion(argv: Sequence[str], *, env: dict[str, str], log_path: Path) -> None:
    """Run a command (e.g. a migration), its output appended to `log_path`; raise if it fails."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        code = await process.wait()
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}:\n{_tail(log_path)}")


class ServerProcess:
    """A gRPC server in its own process: started, awaited until health SERVING, stopped by SIGTERM."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], port: int,
                 log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.address = f"127.0.0.1:{port}"
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = SERVER_START_SECONDS) -> None:
        log = self.log_path.open("wb")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()  # the child holds its own descriptor
        try:
            await asyncio.wait_for(self._until_serving(), timeout)
        except BaseException:
            await self.stop()
            raise

    async def _until_serving(self) -> None:
        assert self._process is not None
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self._process.returncode} while starting:\n"
                                       f"{_tail(self.log_path)}")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)

    async def stop(self, timeout: float = SERVER_STOP_SECONDS) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{self.name} did not stop within {timeout}s of SIGTERM") from None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
