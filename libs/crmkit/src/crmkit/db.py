"""The async database engine, the unit of work, and the Alembic runner.

The rule, for every service (a newcomer's whole guide to touching the database):

1. The API layer opens the transaction. Each servicer method opens exactly one unit of work and
   awaits one service function with it::

       async with self._db.unit_of_work() as uow:               # an RPC that writes
           campaign = await self._campaigns.launch(uow=uow, campaign_id=..., actor=...)
       async with self._db.unit_of_work(read_only=True) as uow:  # an RPC that only reads
           campaign = await self._campaigns.get(uow=uow, campaign_id=...)

   It commits when the block ends and rolls back when it raises, so everything the RPC did
   (rows, outbox events, idempotency keys, audit records written with `crmkit.audit.append`)
   lands together or not at all. An RPC that touches no table opens none.
2. Service functions are `async`, keyword-only, `uow` first, and never open, commit or roll
   back: `async def launch(self, *, uow: UnitOfWork, campaign_id: str, actor: Principal)`.
   Their private helpers take `uow=` the same way. Because the transaction is passed in, one
   service function may call another (or a servicer may call two) inside one transaction.
3. Repositories take the unit of work as their first parameter and never commit.

The one exception is `Database.raw()`: a plain asyncpg connection from its own pool, for
(a) the hot read path (profile's GetCustomer: one primary-key read, where SQLAlchemy's
greenlet bridge costs more CPU than the statement) and (b) bulk work with COPY
(imports, batch features, `crmkit.outbox.bulk_append`), plus the kit's own background
machinery (operations, the audit writer). Work on `raw()` owns its transaction
(`async with connection.transaction():`) and writes hand-written SQL. Anything else, reads
included, goes through `unit_of_work()`. There is no third way in: a single statement that
"needs no transaction" is a read-only unit of work (one BEGIN READ ONLY more round trip) or,
where that round trip is measured to matter, `raw()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)

from crmkit.errors import Aborted, Unavailable
from crmkit.settings import async_database_url, plain_database_url

if TYPE_CHECKING:
    from alembic.config import Config

# How long a caller waits for a pooled connection before the database counts as unavailable: the
# engine's pool_timeout default, used for the raw pool too.
POOL_TIMEOUT_SECONDS = 30.0

# The transaction a servicer opens and passes down: a SQLAlchemy Core connection inside
# `Database.unit_of_work()`. An alias rather than a wrapper, so repositories keep the whole Core
# API (execute, scalar, begin_nested for a savepoint) with nothing to forward.
UnitOfWork: TypeAlias = AsyncConnection

# Constraint names that Alembic autogenerate and humans can both predict.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def metadata() -> sa.MetaData:
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


# A transaction left open and idle (a client that stalled mid-unit-of-work, a bug) holds back the
# change feed: the outbox serves only below the oldest running transaction of the database
# (crmkit.outbox). PostgreSQL ends such a session after this long; no unit of work of ours waits
# on a client between statements for anywhere near it (a streamed export waits on its reader, which
# gets two minutes between messages).
IDLE_IN_TRANSACTION_TIMEOUT_MS = 120_000


def _server_settings(application_name: str) -> dict[str, str]:
    return {"application_name": application_name,
            "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS)}


def create_engine(url: str, *, pool_size: int = 10, application_name: str = "crm",
                  pool_timeout: float = POOL_TIMEOUT_SECONDS) -> AsyncEngine:
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        # No pre-ping round trip per checkout: a dead connection fails its statement, is
        # discarded by the pool, and the call answers UNAVAILABLE, which clients retry.
        pool_pre_ping=False,
        # Errors must not quote statement parameters: they may be personal data.
        hide_parameters=True,
        connect_args={"server_settings": _server_settings(application_name)},
    )


_AFTER_COMMIT = "crm_after_commit"


def after_commit(uow: UnitOfWork, callback: Callable[[], None]) -> None:
    """Call `callback` (once, without arguments) after `uow` commits; never when it rolls back.
    For in-process wake-ups of what waits for the committed rows (`outbox.ChangeFeed`)."""
    callbacks: list[Callable[[], None]] = uow.info.setdefault(_AFTER_COMMIT, [])
    if callback not in callbacks:
        callbacks.append(callback)


class Database:
    """The engine and its two ways in (the module docstring says which to use when); made at
    start-up, disposed at shutdown.

    `unit_of_work()` runs on SQLAlchemy Core connections from the engine's pool (the services
    write SQL through repositories, not an ORM session); `raw()` on a plain asyncpg pool of its own.
    """

    def __init__(self, engine: AsyncEngine, raw_pool: asyncpg.Pool | None = None, *,
                 pool_timeout: float = POOL_TIMEOUT_SECONDS) -> None:
        self.engine = engine
        self._raw_pool = raw_pool
        self._pool_timeout = pool_timeout

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10, application_name: str = "crm",
                   pool_timeout: float = POOL_TIMEOUT_SECONDS) -> Database:
        engine = create_engine(url, pool_size=pool_size, application_name=application_name, pool_timeout=pool_timeout)
        raw_pool = await asyncpg.create_pool(
            plain_database_url(url), min_size=1, max_size=pool_size, reset=_end_open_transaction,
            server_settings=_server_settings(application_name))
        return cls(engine, raw_pool, pool_timeout=pool_timeout)

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled asyncpg connection, for the hot read path and COPY-based bulk work only; the
        caller begins its own transaction when it needs one."""
        if self._raw_pool is None:
            raise RuntimeError("this Database was made without a raw pool; use Database.open()")
        try:
            # Bounded as the engine's pool is (SQLAlchemy's pool_timeout): work that holds a raw
            # connection while it asks for another (an operation's progress) must fail when the
            # pool is empty, not wait forever for a connection its own kind holds.
            connection = await self._raw_pool.acquire(timeout=self._pool_timeout)
        except _RAW_UNAVAILABLE as exc:  # TimeoutError among them
            raise _database_unavailable() from exc
        try:
            yield connection
        except _RAW_UNAVAILABLE as exc:
            raise _database_unavailable() from exc
        except asyncpg.exceptions.SerializationError as exc:
            raise Aborted("concurrent change; retry", reason="CONCURRENT_CHANGE") from exc
        finally:
            await self._raw_pool.release(connection)

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[UnitOfWork]:
        """One transaction: committed when the block ends, rolled back when it raises.

        `read_only=True` begins it READ ONLY: PostgreSQL refuses writes, and every read sees
        one snapshot.
        """
        try:
            # Started outside the block, so that a failure to connect (refused, too many clients,
            # the pool empty for its whole timeout) is told apart from an error of the work itself.
            connection = await self.engine.connect().start()
        except DBAPIError as exc:
            raise _translate(exc) from exc
        except (OSError, sa.exc.TimeoutError) as exc:
            raise _database_unavailable() from exc
        try:
            if read_only:
                connection = await connection.execution_options(postgresql_readonly=True)
            # `info` lives as long as the pooled connection: take the callbacks either way. Held
            # from here because reading `connection.info` after the connection was lost would
            # reconnect synchronously (MissingGreenlet) instead of letting the error through.
            info = connection.info
            try:
                async with connection.begin():
                    yield connection
            finally:
                callbacks = info.pop(_AFTER_COMMIT, ())
            for callback in callbacks:  # reached only when the block committed
                callback()
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise _translate(exc) from exc
        finally:
            await connection.close()

    async def reachable(self) -> bool:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        if self._raw_pool is not None:
            await self._raw_pool.close()
        await self.engine.dispose()


def _translate(exc: DBAPIError) -> Exception:
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(
        getattr(getattr(exc, "orig", None), "__cause__", None), "sqlstate", None
    )
    if sqlstate in {"40001", "40P01"}:  # serialization failure, deadlock: the caller may retry
        return Aborted("concurrent change; retry", reason="CONCURRENT_CHANGE")
    # Connection failures, a server shutting down or starting, and a server out of connections or
    # resources (class 53: "too many clients") are the database being unavailable for now, which a
    # caller may retry; never an internal error, and never a reason to give up on a piece of work.
    if exc.connection_invalidated or sqlstate in _UNAVAILABLE or (sqlstate or "").startswith("53"):
        return _database_unavailable()
    return exc


_UNAVAILABLE = frozenset({"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03"})
# What asyncpg raises on the raw pool when the database cannot be reached or holds no connection
# for this caller (OSError covers the pool's acquire timeout, a TimeoutError).
_RAW_UNAVAILABLE = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                    asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError)


def _database_unavailable() -> Unavailable:
    return Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE")


def alembic_config(script_location: Path, url: str) -> Config:
    # Imported here: Alembic costs about a second at import, and `serve` never needs it.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", async_database_url(url).replace("%", "%%"))
    return config


# The advisory lock every schema upgrade of a database holds for its whole transaction, so two
# runners (a release's migration Job and a retried one, two clusters' pipelines, a laptop) cannot
# interleave: the second waits, then finds the schema at head and does nothing. A transaction
# lock, so a session pooler or a killed runner never leaves it held.
MIGRATION_LOCK_KEY = 0x63726D6D69677261  # "crmmigra"


async def migrate(script_location: Path, url: str, revision: str = "heads") -> None:
    """Upgrade a database to `revision` (every branch head by default), in a thread: Alembic's async env
    runs its own loop. Serialised with every other upgrade of the database (MIGRATION_LOCK_KEY)."""
    from alembic import command

    await asyncio.to_thread(command.upgrade, alembic_config(script_location, url), revision)


async def pending_migrations(script_location: Path, url: str) -> list[str]:
    """Revisions of the code's migrations the database has not applied yet, newest first; empty
    when the schema is at the code's heads or ahead of them (a rolled-back image on a schema that
    a later release already expanded: revisions this code does not know count as ahead)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError

    script = ScriptDirectory.from_config(alembic_config(script_location, url))

    def pending(connection: sa.Connection) -> list[str]:
        current = MigrationContext.configure(connection).get_current_heads()
        try:
            revisions = list(script.iterate_revisions(tuple(script.get_heads()), current))
        except RevisionError:  # a revision this code has never seen: the schema is ahead
            return []
        return [r.revision for r in revisions if r is not None]

    engine = create_async_engine(async_database_url(url), poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(pending)
    finally:
        await engine.dispose()


async def wait_until_migrated(script_location: Path, url: str, *, poll_seconds: float = 2.0,
                              on_wait: Callable[[list[str]], None] | None = None) -> None:
    """Return once the database holds every migration of this code (the release's migration Job
    ran), polling; a database that cannot be reached yet counts as not migrated. A Deployment's
    init container runs this, so new pods start only on the schema they were built for."""
    reported: list[str] | None = None
    while True:
        try:
            pending = await pending_migrations(script_location, url)
        except (OSError, DBAPIError, asyncpg.PostgresError) as exc:
            pending = [f"unreachable: {type(exc).__name__}"]
        if not pending:
            return
        if on_wait is not None and pending != reported:  # each change once, not every poll
            on_wait(pending)
            reported = pending
        await asyncio.sleep(poll_seconds)


def run_migrations_online(target_metadata: sa.MetaData) -> None:
    """The body of every service's Alembic `env.py` (async engine, one transaction, under the
    database's migration lock)."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by alembic_config()"

    def do_run(connection: sa.Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          compare_type=True, transaction_per_migration=False)
        with context.begin_transaction():
            # Before Alembic reads the version table: a second runner waits here, then reads the
            # first one's committed version and has nothing left to do.
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        async with engine.connect() as connection:
            await _run_sync(connection, do_run)
        await engine.dispose()

    asyncio.run(run())


async def _run_sync(connection: AsyncConnection, fn: Callable[[sa.Connection], object]) -> None:
    await connection.run_sync(fn)
    await connection.commit()


async def _end_open_transaction(connection: asyncpg.Connection) -> None:
    """What a raw connection needs before it goes back to the pool: only a transaction left open
    (by a cancelled call) rolled back. asyncpg's default reset (RESET ALL, CLOSE ALL, UNLISTEN *,
    pg_advisory_unlock_all) is one more round trip on every release, ~0.06 ms of a GetCustomer's
    CPU; no user of the raw pool keeps session state (settings are SET LOCAL, locks are
    transaction locks, cursors live in transactions), so there is nothing else to undo."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")
