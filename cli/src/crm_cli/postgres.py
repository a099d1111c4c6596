"""The embedded PostgreSQL of `crm run`: one `pgserver` cluster, one role and database per service.

What pgserver does on its own, and what this module changes:

- `initdb --auth=trust --auth-local=trust`: every local connection is let in as any user, with
  no password. The server listens on a unix socket only (`-h ""`), in the data folder (or a
  shorter runtime folder when that path is too long for a socket), so nothing on the network
  can reach it, but any local account could. `configure_authentication` therefore replaces
  `pg_hba.conf` with two rules: the superuser `postgres` only by `peer` authentication mapped
  from the operating-system account running `crm run`, and every other role only with its SCRAM
  password. `prepare` checks the rules are live by logging in with a wrong password.
- When run as root, pgserver creates a `pgserver` system user, runs PostgreSQL as that user
  and widens the permissions of every folder above the data folder to `o+rx` so it can get
  there; this module narrows `.crm/` back to 0711 (traverse only).
- `pg_ctl` starts the postmaster in its own session, so a Ctrl-C in the terminal does not reach
  it: `crm run` stops it last, after the services (`stop`), with a fast shutdown.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psutil

SUPERUSER = "postgres"
IDENT_MAP = "crm"
STOP_TIMEOUT_SECONDS = 15.0
RULES_LIVE_TIMEOUT_SECONDS = 5.0
_HBA = f"""\
# Written by `crm run` (crm_cli/postgres.py); pgserver's initdb had `trust` for everything.
# TYPE  DATABASE  USER        METHOD
local   all       {SUPERUSER}    peer map={IDENT_MAP}
local   all       all         scram-sha-256
"""
_IDENT = """\
# Written by `crm run`: the operating-system account that runs it may log in as `postgres`.
# MAPNAME  SYSTEM-USERNAME  PG-USERNAME
{map}      {system_user}    {superuser}
"""


class PostgresError(Exception):
    """The embedded server could not be started, prepared or stopped."""


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path
    pid: int
    socket_dir: Path
    port: int

    def url(self, *, user: str, password: str | None = None, database: str) -> str:
        secret = f":{quote(password, safe='')}" if password else ""
        return f"postgresql://{user}{secret}@/{database}?host={quote(str(self.socket_dir))}&port={self.port}"

    def connect_kwargs(self, *, user: str, database: str, password: str | None = None) -> dict[str, object]:
        return {"host": str(self.socket_dir), "port": self.port, "user": user, "database": database,
                "password": password}


def start(pgdata: Path) -> EmbeddedPostgres:
    """Start the cluster in `pgdata` (initialising it the first time), or adopt a running one."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp/runtime-<uid>.
        warnings.simplefilter("ignore")
        import pgserver
    try:
        # cleanup_mode=None: pgserver's own at-exit stop counts handles in a file that a crashed
        # run leaves stale; `stop` below is explicit instead.
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
    except Exception as exc:  # initdb / pg_ctl failures
        raise PostgresError(f"embedded PostgreSQL did not start: {exc}; see {pgdata / 'log'}") from exc
    if os.geteuid() == 0:
        pgdata.parent.chmod(0o711)
    if info.socket_dir is None or info.port is None:
        raise PostgresError("embedded PostgreSQL reports no unix socket")
    return EmbeddedPostgres(pgdata=pgdata, pid=info.pid, socket_dir=info.socket_dir, port=info.port)


def stop(server: EmbeddedPostgres, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Fast shutdown (SIGINT to the postmaster: roll back open transactions, checkpoint, exit)."""
    try:
        process = psutil.Process(server.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)  # immediate shutdown; recovery on next start
            process.wait(5)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired as exc:
        raise PostgresError(f"PostgreSQL (pid {server.pid}) did not stop") from exc


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _write_owned_like_folder(path: Path, text: str) -> bool:
    """Replace a file in the cluster folder, owned by the folder's owner (the `pgserver` user
    when run as root): PostgreSQL must still read it. Returns whether the content changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    owner = path.parent.stat()
    temporary = path.with_name(path.name + ".crm-tmp")
    temporary.write_text(text, encoding="utf-8")
    if os.geteuid() == 0:
        os.chown(temporary, owner.st_uid, owner.st_gid)
    temporary.chmod(0o600)
    os.replace(temporary, path)
    return True


def configure_authentication(pgdata: Path, *, system_user: str | None = None) -> bool:
    """Write pg_hba.conf and pg_ident.conf; True when either changed (a reload is needed)."""
    user = system_user or pwd.getpwuid(os.geteuid()).pw_name
    ident = _IDENT.format(map=IDENT_MAP, system_user=user, superuser=SUPERUSER)
    changed_ident = _write_owned_like_folder(pgdata / "pg_ident.conf", ident)
    changed_hba = _write_owned_like_folder(pgdata / "pg_hba.conf", _HBA)
    return changed_ident or changed_hba


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"unexpected identifier {name!r}")
    return f'"{name}"'


async def _ensure_role_and_database(connection: asyncpg.Connection, name: str, password: str) -> bool:
    """Role `name` (login, no other privilege, this password) owning database `name`."""
    role = _identifier(name)
    literal = await connection.fetchval("SELECT quote_literal($1)", password)
    exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
    verb = "ALTER" if exists else "CREATE"
    # The password is set on every run, so the role always matches secrets.env.
    await connection.execute(f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {literal}")
    created = False
    if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        await connection.execute(f"CREATE DATABASE {role} OWNER {role}")
        created = True
    # Only the owner connects: no service reads another's tables.
    await connection.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {role} FROM PUBLIC")
    return created


async def _password_refused(server: EmbeddedPostgres, role: str) -> bool:
    try:
        connection = await asyncpg.connect(**server.connect_kwargs(
            user=role, database=role, password="not-the-password"), timeout=5)  # noqa: S106
    except asyncpg.InvalidPasswordError:
        return True
    await connection.close()
    return False


async def password_required(server: EmbeddedPostgres, role: str,
                            timeout: float = RULES_LIVE_TIMEOUT_SECONDS) -> bool:
    """Whether `role` is refused with a wrong password (polls: a reload applies asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await _password_refused(server, role):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def prepare(server: EmbeddedPostgres, roles: Mapping[str, str]) -> list[str]:
    """Roles and databases (name -> password), then password-only authentication. Idempotent.

    Returns the databases created by this call.
    """
    connection = await asyncpg.connect(**server.connect_kwargs(
        user=SUPERUSER, database="postgres"), timeout=10)
    try:
        created = [name for name, password in roles.items()
                   if await _ensure_role_and_database(connection, name, password)]
        changed = configure_authentication(server.pgdata)
        if changed:
            errors = await connection.fetch(
                "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
            if errors:
                raise PostgresError(f"pg_hba.conf was refused: {[dict(e) for e in errors]}")
            await connection.fetchval("SELECT pg_reload_conf()")
    finally:
        await connection.close()
    if changed and roles and not await password_required(server, next(iter(roles))):
        raise PostgresError("PostgreSQL still accepts a wrong password after the reload; "
                            f"check {server.pgdata / 'pg_hba.conf'}")
    return created
