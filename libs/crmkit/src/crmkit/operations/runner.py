"""Runs operations: coordinators as tasks of the service's event loop, heavy steps in a pool of
spawned worker processes; heartbeats, sweeps abandoned operations and drains on shutdown."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from typing import Any

from google.protobuf.message import Message

from crmkit.errors import DomainError, internal_status, to_status
from crmkit.logs import get_logger
from crmkit.operations.errors import OperationCancelled, OperationFailed, WorkerCrashed
from crmkit.operations.messages import CANCELLED, FAILED, SUCCEEDED, stopped_status
from crmkit.operations.repository import ProgressSnapshot
from crmkit.operations.service import RETENTION, Operations
from crmkit.operations.worker_process import init_worker, run_in_worker

log = get_logger("crm.operations")

HEARTBEAT_SECONDS = 10.0
# An unfinished operation whose heartbeat is older than this lost its process.
ABANDON_AFTER = timedelta(seconds=60)


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
        self._mp_context = multiprocessing.get_context("spawn")
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="operation-sweeper")

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=self._mp_context,
                initializer=init_worker, initargs=(self._service, self._log_level, os.getpid()))
        return self._pool

    @property
    def start_method(self) -> str:
        return self._mp_context.get_start_method()

    async def call(self, function: Callable[[Any], Any], argument: Any) -> Any:
        """`function(argument)` in a worker process; both must pickle (a module-level function).
        A DomainError raised there comes back as OperationFailed with its status."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), run_in_worker, function, argument, self._domain)
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
        return stopped_status("the service stopped before the operation finished; start it again",
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
