"""Long-running operations (AIP-151): the `operation` table, its proto, and the worker processes.

Work that takes more than a request's worth of time (bulk import, materialisation, training)
is an Operation row in the service's own database. The RPC that starts it creates the row
(PENDING) in its unit of work and returns at once; a *coordinator* coroutine then runs the
work in the service process, handing every CPU-heavy step to a worker process through
`OperationRunner.call`. Workers are started with the `spawn` method (gRPC is not fork-safe),
open their own asyncpg connections, and report through the same row: progress counters,
the stage, and at the end the response or a `google.rpc.Status`.

- **Cancellation is cooperative.** `CancelOperation` sets `cancel_requested` (a PENDING
  operation is cancelled at once); workers and coordinators look at the flag between batches
  (`WorkerOperation.advance` returns it) and raise `OperationCancelled`, which rolls their
  work back and ends the operation CANCELLED.
- **Watching is polling.** `Operations.watch` reads the row's `version` (bumped on every
  visible change) every `poll_seconds` and yields the operation when it moved; the stream
  ends with the final state.
- **Nothing is left RUNNING forever.** The runner heartbeats the operations it coordinates;
  any replica's sweeper fails operations whose heartbeat stopped (their process died), and
  purges finished ones after the retention period. On shutdown the runner asks its workers to
  stop, waits up to the grace period, then fails what is left with UNAVAILABLE ("run it again").
- **Success can commit with the work.** A job whose result must be atomic with its data calls
  `complete_in(connection, ...)` inside its own transaction; the runner then finds the
  operation final and leaves it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import inspect
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry import trace
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import operation_pb2
from crmkit import attributes
from crmkit import loop as event_loop
from crmkit.db import Database
from crmkit.errors import DomainError, FailedPrecondition, NotFound, internal_status, to_status
from crmkit.logs import get_logger
from crmkit.pagination import PageTokens, clamp_page_size
from crmkit.resources import ResourceName
from crmkit.validation import Violations

log = get_logger("crm.operations")

State = operation_pb2.OperationState
PENDING = State.OPERATION_STATE_PENDING
RUNNING = State.OPERATION_STATE_RUNNING
SUCCEEDED = State.OPERATION_STATE_SUCCEEDED
FAILED = State.OPERATION_STATE_FAILED
CANCELLED = State.OPERATION_STATE_CANCELLED
UNFINISHED = (PENDING, RUNNING)
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

OPERATION = ResourceName("operations/{operation_id}")
RETENTION = timedelta(days=30)
HEARTBEAT_SECONDS = 10.0
# An unfinished operation whose heartbeat is older than this lost its process.
ABANDON_AFTER = timedelta(seconds=60)


def operation_table(metadata: sa.MetaData) -> sa.Table:
    """The `operation` table, added to a service's metadata (DDL: kit_schema.create_operation_table)."""
    return sa.Table(
        "operation",
        metadata,
        sa.Column("operation_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("creator", sa.Text, nullable=False),
        sa.Column("progress_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress_failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress_stage", sa.Text, nullable=False, server_default=""),
        # Serialised google.protobuf.Any / google.rpc.Status.
        sa.Column("metadata", sa.LargeBinary, nullable=False),
        sa.Column("response", sa.LargeBinary),
        sa.Column("error", sa.LargeBinary),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        # Bumped on every change a watcher should see (not on heartbeats).
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("end_time", sa.DateTime(timezone=True)),
        sa.Index("ix_operation_create_time", "create_time", "operation_id"),
        sa.Index("ix_operation_unfinished", "heartbeat_time", postgresql_where=sa.text("state IN (1, 2)")),
    )


# --- errors that cross the process boundary -------------------------------------------------------


class OperationCancelled(Exception):
    """The operation was asked to stop; raised between batches, it rolls the work back."""


class OperationFailed(Exception):
    """The work failed with this `google.rpc.Status` (serialised: it travels between processes)."""

    def __init__(self, status: bytes) -> None:
        super().__init__("operation failed")
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (OperationFailed, (self.status,))

    @classmethod
    def of(cls, error: DomainError, *, domain: str, details: Sequence[Message] = ()) -> OperationFailed:
        """From a domain error (code, ErrorInfo, BadRequest), with kind-specific `details` added."""
        return cls(failure_status(error, domain=domain, details=details).SerializeToString())


class WorkerCrashed(Exception):
    """A worker raised something unexpected; its traceback was logged in the worker."""


def failure_status(error: DomainError, *, domain: str, details: Sequence[Message] = ()) -> status_pb2.Status:
    status = to_status(error, domain=domain)
    for detail in details:
        packed = status.details.add()
        packed.Pack(detail)
    return status


# --- the proto ------------------------------------------------------------------------------------


def name_of(operation_id: uuid.UUID) -> str:
    return f"operations/{operation_id}"


def parse_name(name: str, field: str = "name") -> uuid.UUID:
    """The id in `operations/{id}`: INVALID_ARGUMENT when malformed, NOT_FOUND when it cannot exist."""
    raw = OPERATION.parse_one(name, field)
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound(f"operation {raw} not found", reason="OPERATION_NOT_FOUND") from exc


def to_proto(row: Any) -> operation_pb2.Operation:
    message = operation_pb2.Operation(
        name=name_of(row["operation_id"]), kind=row["kind"], state=row["state"], creator=row["creator"],
        progress=operation_pb2.Progress(done=row["progress_done"], total=row["progress_total"],
                                        stage=row["progress_stage"], failed=row["progress_failed"]),
    )
    for field in ("create_time", "update_time", "end_time"):
        if row[field] is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(row[field])
            getattr(message, field).CopyFrom(stamp)
    message.metadata.ParseFromString(row["metadata"])
    if row["response"] is not None:
        message.response.ParseFromString(row["response"])
    if row["error"] is not None:
        message.error.ParseFromString(row["error"])
    return message


def _packed(message: Message | None) -> bytes | None:
    if message is None:
        return None
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed.SerializeToString()


def _stopped_status(message: str, *, domain: str) -> bytes:
    info = error_details_pb2.ErrorInfo(reason="OPERATION_ABANDONED", domain=domain)
    packed = any_pb2.Any()
    packed.Pack(info)
    return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[packed]).SerializeToString()


# --- SQL shared by the service and its workers (plain asyncpg) -------------------------------------

_SELECT = "SELECT * FROM operation WHERE operation_id = $1"
_FINISH = """
    UPDATE operation SET state = $2::smallint, response = $3, error = $4, end_time = now(), update_time = now(),
                         version = version + 1,
                         progress_total = CASE WHEN $2::smallint = 3 THEN greatest(progress_total, progress_done)
                                               ELSE progress_total END
    WHERE operation_id = $1 AND state IN (1, 2)
    RETURNING operation_id"""


async def _finish(connection: asyncpg.Connection, operation_id: uuid.UUID, *, state: int,
                  response: bytes | None = None, error: bytes | None = None) -> bool:
    return await connection.fetchval(_FINISH, operation_id, state, response, error) is not None


async def complete_in(connection: asyncpg.Connection, operation_id: uuid.UUID, response: Message) -> None:
    """Mark the operation SUCCEEDED inside the caller's transaction, so the result commits with
    the work. Raises OperationCancelled when it is no longer running (failed by a sweeper or a
    shutdown meanwhile): the caller's transaction must then roll back."""
    if not await _finish(connection, operation_id, state=SUCCEEDED, response=_packed(response)):
        raise OperationCancelled()


@dataclass(frozen=True)
class ProgressSnapshot:
    """What `advance` sees after its update: totals so far and whether to stop."""

    done: int
    failed: int
    cancel_requested: bool


class WorkerOperation:
    """The worker's handle on its operation: progress updates and the cancel flag, on a
    connection of the worker's own (not the one holding its work's transaction, which others
    cannot see until it commits)."""

    def __init__(self, connection: asyncpg.Connection, operation_id: uuid.UUID) -> None:
        self._connection = connection
        self.operation_id = operation_id

    async def advance(self, *, done: int = 0, failed: int = 0, total: int | None = None,
                      stage: str | None = None) -> ProgressSnapshot:
        """Add `done` and `failed` units (several workers may report on one operation)."""
        row = await self._connection.fetchrow(
            """UPDATE operation SET progress_done = progress_done + $2, progress_failed = progress_failed + $3,
                                    progress_total = coalesce($4, progress_total),
                                    progress_stage = coalesce($5, progress_stage),
                                    update_time = now(), version = version + 1
               WHERE operation_id = $1
               RETURNING progress_done, progress_failed, cancel_requested OR state NOT IN (1, 2) AS stop""",
            self.operation_id, done, failed, total, stage)
        if row is None:
            raise OperationCancelled()
        return ProgressSnapshot(done=row["progress_done"], failed=row["progress_failed"],
                                cancel_requested=row["stop"])

    async def raise_if_cancelled(self) -> None:
        stop = await self._connection.fetchval(
            "SELECT cancel_requested OR state NOT IN (1, 2) FROM operation WHERE operation_id = $1",
            self.operation_id)
        if stop is None or stop:
            raise OperationCancelled()


# --- the service's side --------------------------------------------------------------------------

# A page of operations stops growing past this many bytes of results and errors (an import's
# result may list 10,000 bad rows), so it stays well inside a client's 4 MiB message limit.
PAGE_BYTES = 2 * 1024 * 1024


def _within_budget(rows: Sequence[Any]) -> Sequence[Any]:
    used = 0
    for count, row in enumerate(rows):
        used += len(row["metadata"]) + len(row["response"] or b"") + len(row["error"] or b"")
        if used > PAGE_BYTES and count:
            return rows[:count]
    return rows


@dataclass(frozen=True)
class OperationPage:
    operations: Sequence[operation_pb2.Operation]
    next_page_token: str


class Operations:
    """Create, read, list, cancel and watch a service's operations; drive their state."""

    def __init__(self, db: Database, table: sa.Table, page_tokens: PageTokens, *, kinds: Sequence[str] = (),
                 poll_seconds: float = 0.5, draining: asyncio.Event | None = None) -> None:
        """`kinds` are the service's operation kinds (what `list` accepts as a filter); `draining`
        (the runtime's) ends open watches when the server starts to shut down."""
        self._db = db
        self._table = table
        self._page_tokens = page_tokens
        self._kinds = tuple(kinds)
        self._poll_seconds = poll_seconds
        self._draining = draining or asyncio.Event()

    async def create(self, session: AsyncConnection, *, kind: str, creator: str, metadata: Message,
                     operation_id: uuid.UUID | None = None, total: int = 0) -> operation_pb2.Operation:
        """A PENDING operation, in the caller's unit of work (with its idempotency key)."""
        trace.get_current_span().set_attribute(attributes.OPERATION_KIND, kind)
        row = (await session.execute(
            pg.insert(self._table).values(
                operation_id=operation_id or uuid.uuid4(), kind=kind, state=PENDING, creator=creator,
                metadata=_packed(metadata), progress_total=total,
            ).returning(self._table))).one()
        return to_proto(row._mapping)

    async def get(self, *, operation_id: uuid.UUID) -> operation_pb2.Operation:
        async with self._db.raw() as connection:
            row = await connection.fetchrow(_SELECT, operation_id)
        if row is None:
            raise NotFound(f"operation {operation_id} not found", reason="OPERATION_NOT_FOUND")
        return to_proto(row)

    async def list(self, *, page_size: int, page_token: str, kind: str = "",
                   states: Sequence[int] = ()) -> OperationPage:
        """Newest first; `kind` and `states` filter (empty: all). A page holds `page_size`
        operations, or fewer when their results pass PAGE_BYTES."""
        violations = Violations()
        if kind and self._kinds:
            violations.check(kind in self._kinds, "kind", f"must be one of {', '.join(self._kinds)}, or empty")
        for i, state in enumerate(states):
            violations.check(state in State.values() and state != 0, f"states[{i}]", "is not an OperationState")
        violations.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {"kind": kind, "states": sorted(set(states))}
        after = self._page_tokens.decode(page_token, query=query)
        clauses, args = [], []
        if kind:
            args.append(kind)
            clauses.append(f"kind = ${len(args)}")
        if states:
            args.append(list(set(states)))
            clauses.append(f"state = ANY(${len(args)}::smallint[])")
        if after is not None:
            args.extend([datetime.fromisoformat(after[0]), uuid.UUID(after[1])])
            clauses.append(f"(create_time, operation_id) < (${len(args) - 1}::timestamptz, ${len(args)})")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        args.append(limit + 1)
        async with self._db.raw() as connection:
            rows = await connection.fetch(
                f"SELECT * FROM operation {where} ORDER BY create_time DESC, operation_id DESC LIMIT ${len(args)}",  # noqa: S608 - clauses are fixed text
                *args)
        page, more = _within_budget(rows[:limit]), len(rows) > limit
        more = more or len(page) < min(limit, len(rows))
        token = ""
        if more:
            last = page[-1]
            token = self._page_tokens.encode([last["create_time"].isoformat(), str(last["operation_id"])], query=query)
        return OperationPage([to_proto(r) for r in page], token)

    async def cancel(self, *, operation_id: uuid.UUID) -> operation_pb2.Operation:
        """PENDING: cancelled now. RUNNING: flagged; the worker stops at its next check. Already
        CANCELLED: returned as is (a retried cancel). SUCCEEDED or FAILED: FAILED_PRECONDITION."""
        async with self._db.raw() as connection:
            row = await connection.fetchrow(
                """UPDATE operation SET
                       state = CASE WHEN state = 1 THEN 5 ELSE state END,
                       end_time = CASE WHEN state = 1 THEN now() ELSE end_time END,
                       cancel_requested = true, update_time = now(), version = version + 1
                   WHERE operation_id = $1 AND state IN (1, 2) RETURNING *""", operation_id)
            if row is None:
                row = await connection.fetchrow(_SELECT, operation_id)
        if row is None:
            raise NotFound(f"operation {operation_id} not found", reason="OPERATION_NOT_FOUND")
        if row["state"] in (SUCCEEDED, FAILED):
            raise FailedPrecondition(f"operation {operation_id} has already finished",
                                     reason="OPERATION_FINISHED", metadata={"state": State.Name(row["state"])})
        return to_proto(row)

    async def watch(self, *, operation_id: uuid.UUID) -> AsyncIterator[operation_pb2.Operation]:
        """The operation now, then again each time it changes, until it is final (or the server
        drains: the client watches again, on another replica)."""
        seen = -1
        while not self._draining.is_set():
            async with self._db.raw() as connection:
                version = await connection.fetchval("SELECT version FROM operation WHERE operation_id = $1",
                                                    operation_id)
                if version is None:
                    raise NotFound(f"operation {operation_id} not found", reason="OPERATION_NOT_FOUND")
                row = await connection.fetchrow(_SELECT, operation_id) if version != seen else None
            if row is not None:
                seen = row["version"]
                yield to_proto(row)
                if row["state"] in FINAL:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._draining.wait(), timeout=self._poll_seconds)

    # State changes the runner makes.

    async def start(self, operation_id: uuid.UUID) -> bool:
        """PENDING -> RUNNING; False when it was cancelled (or finished) meanwhile."""
        async with self._db.raw() as connection:
            return await connection.fetchval(
                """UPDATE operation SET state = 2, update_time = now(), heartbeat_time = now(), version = version + 1
                   WHERE operation_id = $1 AND state = 1 AND NOT cancel_requested RETURNING true""",
                operation_id) is not None

    async def progress(self, operation_id: uuid.UUID, *, done: int = 0, failed: int = 0, total: int | None = None,
                       stage: str | None = None) -> ProgressSnapshot:
        async with self._db.raw() as connection:
            return await WorkerOperation(connection, operation_id).advance(done=done, failed=failed, total=total,
                                                                           stage=stage)

    async def request_cancel(self, operation_ids: Sequence[uuid.UUID]) -> None:
        async with self._db.raw() as connection:
            await connection.execute(
                "UPDATE operation SET cancel_requested = true WHERE operation_id = ANY($1) AND state IN (1, 2)",
                list(operation_ids))

    async def finish(self, operation_id: uuid.UUID, *, state: int, response: Message | None = None,
                     error: status_pb2.Status | bytes | None = None) -> bool:
        """Move an unfinished operation to a final state; False when it already was final."""
        raw_error = error.SerializeToString() if isinstance(error, status_pb2.Status) else error
        async with self._db.raw() as connection:
            return await _finish(connection, operation_id, state=state, response=_packed(response), error=raw_error)

    async def heartbeat(self, operation_ids: Sequence[uuid.UUID]) -> None:
        if operation_ids:
            async with self._db.raw() as connection:
                await connection.execute("UPDATE operation SET heartbeat_time = now() WHERE operation_id = ANY($1)",
                                         list(operation_ids))

    async def fail_abandoned(self, *, older_than: timedelta, domain: str) -> int:
        """Fail unfinished operations whose heartbeat stopped: the process running them is gone."""
        error = _stopped_status("the process running this operation stopped; start it again", domain=domain)
        async with self._db.raw() as connection:
            rows = await connection.fetch(
                """UPDATE operation SET state = 4, error = $2, end_time = now(), update_time = now(),
                                        version = version + 1
                   WHERE state IN (1, 2) AND heartbeat_time < now() - $1::interval RETURNING operation_id""",
                older_than, error)
        for row in rows:
            log.warning("operation_abandoned", operation_id=str(row["operation_id"]))
        return len(rows)

    async def purge_finished(self, *, older_than: timedelta = RETENTION) -> int:
        async with self._db.raw() as connection:
            result = await connection.execute(
                "DELETE FROM operation WHERE state IN (3, 4, 5) AND end_time < now() - $1::interval", older_than)
        return int(result.split()[-1])


# --- worker processes -----------------------------------------------------------------------------


def _init_worker(service: str, log_level: str, service_pid: int) -> None:
    """Runs once in each spawned worker process."""
    from crmkit.logs import configure_logging

    _die_with(service_pid)
    configure_logging(service=service, level=log_level)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_SECONDS = 1.0


def _die_with(service_pid: int) -> None:
    """A worker must not outlive its service: an orphan holds the service's stdout open (a
    supervisor reading it never sees it end) and keeps a pod's container half alive.

    On Linux the kernel kills the worker when the thread that spawned it ends; that is the
    service's event loop thread (`run_in_executor` submits there, and the pool spawns workers
    on submit), which lives as long as the service. Elsewhere a thread polls the parent pid."""
    armed = False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != service_pid:  # the service died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_exit_when_orphaned, args=(service_pid,), name="orphan-watchdog",
                         daemon=True).start()


def _exit_when_orphaned(service_pid: int) -> None:
    while os.getppid() == service_pid:
        time.sleep(_WATCHDOG_SECONDS)
    os._exit(1)


def _run_in_worker(function: Callable[[Any], Any], argument: Any, domain: str) -> Any:
    """The trampoline a worker process runs: `function(argument)`, on a fresh event loop when it
    is a coroutine function. Errors come back as exceptions that survive pickling."""
    # What the process holds before the job (modules, the job's own code, caches) lives as long
    # as it does: moved out of the collector's sight, the job's full collections stop walking it
    # (a bulk import's staging allocates per row; about 3 us of ~80 per row). Collected first, so
    # no garbage of an earlier job is frozen with it.
    gc.collect()
    gc.freeze()
    try:
        if inspect.iscoroutinefunction(function):
            return event_loop.run(function(argument))
        return function(argument)
    except (OperationCancelled, OperationFailed):
        raise
    except DomainError as exc:
        raise OperationFailed.of(exc, domain=domain) from None
    except Exception as exc:
        # Frames only: a message may quote data (SQL parameters, cell values).
        log.error("worker_crashed", job=getattr(function, "__qualname__", "?"), error_type=type(exc).__name__,
                  stack="".join(traceback.format_tb(exc.__traceback__)))
        raise WorkerCrashed(type(exc).__name__) from None


Coordinator = Callable[["RunningOperation"], Awaitable[Message | None]]


class RunningOperation:
    """What a coordinator gets: its operation's id, worker calls, progress and the cancel flag."""

    def __init__(self, runner: OperationRunner, operation_id: uuid.UUID) -> None:
        self._runner = runner
        self.operation_id = operation_id

    async def call(self, function: Callable[[Any], Any], argument: Any) -> Any:
        return await self._runner.call(function, argument)

    async def progress(self, *, done: int = 0, failed: int = 0, total: int | None = None,
                       stage: str | None = None) -> ProgressSnapshot:
        snapshot = await self._runner.operations.progress(self.operation_id, done=done, failed=failed, total=total,
                                                          stage=stage)
        if snapshot.cancel_requested:
            raise OperationCancelled()
        return snapshot

    async def request_cancel(self) -> None:
        """Ask every worker of this operation to stop (e.g. because a sibling failed)."""
        await self._runner.operations.request_cancel([self.operation_id])


class OperationRunner:
    """Runs operations: coordinators as tasks of the service's event loop, heavy steps in a pool
    of spawned worker processes. Made in the service's `wire`, closed with the runtime."""

    def __init__(self, *, operations: Operations, service: str, error_domain: str, workers: int = 2,
                 log_level: str = "INFO", heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 abandon_after: timedelta = ABANDON_AFTER, retention: timedelta = RETENTION) -> None:
        self.operations = operations
        self._service = service
        self._domain = error_domain
        self._workers = workers
        self._log_level = log_level
        self._heartbeat_seconds = heartbeat_seconds
        self._abandon_after = abandon_after
        self._retention = retention
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="operation-sweeper")

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self._service, self._log_level, os.getpid()))
        return self._pool

    @property
    def start_method(self) -> str:
        return self._executor()._mp_context.get_start_method()  # type: ignore[attr-defined]

    async def call(self, function: Callable[[Any], Any], argument: Any) -> Any:
        """`function(argument)` in a worker process; both must pickle (a module-level function).
        A DomainError raised there comes back as OperationFailed with its status."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), _run_in_worker, function, argument, self._domain)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): this call is lost; later calls get a new pool.
            self._pool = None
            raise WorkerCrashed("BrokenProcessPool") from None

    def launch(self, operation_id: uuid.UUID, coordinator: Coordinator) -> None:
        """Run `coordinator` for this (committed, PENDING) operation in the background."""
        task = asyncio.create_task(self._coordinate(operation_id, coordinator), name=f"operation-{operation_id}")
        self._running[operation_id] = task
        task.add_done_callback(lambda _: self._running.pop(operation_id, None))

    async def _coordinate(self, operation_id: uuid.UUID, coordinator: Coordinator) -> None:
        ops = self.operations
        try:
            if not await ops.start(operation_id):
                return  # cancelled while pending
            response = await coordinator(RunningOperation(self, operation_id))
            await ops.finish(operation_id, state=SUCCEEDED, response=response)
        except OperationCancelled:
            if self._stopping:
                await ops.finish(operation_id, state=FAILED, error=self._stopped())
            else:
                await ops.finish(operation_id, state=CANCELLED)
        except OperationFailed as exc:
            await ops.finish(operation_id, state=FAILED, error=exc.status)
        except DomainError as exc:
            await ops.finish(operation_id, state=FAILED, error=to_status(exc, domain=self._domain))
        except asyncio.CancelledError:
            await asyncio.shield(ops.finish(operation_id, state=FAILED, error=self._stopped()))
            raise
        except Exception as exc:
            if not isinstance(exc, WorkerCrashed):
                log.error("operation_crashed", operation_id=str(operation_id), error_type=type(exc).__name__,
                          stack="".join(traceback.format_tb(exc.__traceback__)))
            await ops.finish(operation_id, state=FAILED, error=internal_status(domain=self._domain))

    def _stopped(self) -> bytes:
        return _stopped_status("the service stopped before the operation finished; start it again",
                               domain=self._domain)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.operations.heartbeat(list(self._running))
                await self.operations.fail_abandoned(older_than=self._abandon_after, domain=self._domain)
                await self.operations.purge_finished(older_than=self._retention)
            except Exception as exc:  # the database may be briefly unreachable; try again later
                log.warning("operation_sweep_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self._heartbeat_seconds)

    async def close(self, grace: float = 10.0) -> None:
        """Ask running operations to stop, wait up to `grace` seconds, fail what is left, stop
        the worker processes."""
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        tasks = list(self._running.values())
        if tasks:
            try:
                await self.operations.request_cancel(list(self._running))
            except Exception as exc:
                log.warning("operation_cancel_failed", error_type=type(exc).__name__)
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            await asyncio.to_thread(_join, processes)


def _join(processes: Sequence[Any]) -> None:
    for process in processes:
        process.join(timeout=5)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Started:
    """What a service function that starts an operation returns: the PENDING operation it created
    in its caller's unit of work, and `launch`, which the caller calls once that unit of work has
    committed (the coordinator reads the row on connections of its own, so it must not start
    before the row is there). A replayed request (same request_id) has nothing to launch::

        async with self._db.unit_of_work() as uow:
            started = await self._imports.start(uow=uow, ...)
        started.launch()
    """

    operation: operation_pb2.Operation
    launch: Callable[[], None] = _nothing
