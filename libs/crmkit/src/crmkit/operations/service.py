"""The service's side of its operations: create, read, list, cancel and watch them, and the
state changes the runner makes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry import trace
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import operation_pb2
from crmkit import attributes
from crmkit.db import Database
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.logs import get_logger
from crmkit.operations.messages import (
    FAILED,
    FINAL,
    PENDING,
    SUCCEEDED,
    State,
    packed_any,
    stopped_status,
    to_proto,
)
from crmkit.operations.repository import SELECT_OPERATION, ProgressSnapshot, WorkerOperation, finish_row
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.operations")

RETENTION = timedelta(days=30)

PAGE_BYTES = 2 * 1024 * 1024


def _within_budget(rows: Sequence[Any]) -> Sequence[Any]:
    used = 0
    for count, row in enumerate(rows):
        used += len(row["metadata"]) + len(row["response"] or b"") + len(row["error"] or b"")
        if used > PAGE_BYTES and count:
            return rows[:count]
    return rows


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
                metadata=packed_any(metadata), progress_total=total,
            ).returning(self._table))).one()
        return to_proto(row._mapping)

    async def get(self, *, operation_id: uuid.UUID) -> operation_pb2.Operation:
        async with self._db.raw() as connection:
            row = await connection.fetchrow(SELECT_OPERATION, operation_id)
        if row is None:
            raise NotFound(f"operation {operation_id} not found", reason="OPERATION_NOT_FOUND")
        return to_proto(row)

    async def list(self, *, page_size: int, page_token: str, kind: str = "",
                   states: Sequence[int] = ()) -> Page[operation_pb2.Operation]:
        """Newest first; `kind` and `states` filter (empty: all). A page holds `page_size`
        operations, or fewer when their results pass PAGE_BYTES."""
        violations = Violations()
        if kind and self._kinds:
            violations.check(kind in self._kinds, "kind", f"must be one of {', '.join(self._kinds)}, or empty")
        for i, state in enumerate(states):
            violations.enum(state, f"states[{i}]", frozenset(State.values()) - {0}, "OperationState",
                            required="is not an OperationState: name one, e.g. OPERATION_STATE_RUNNING")
        violations.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {"kind": kind, "states": sorted(set(states))}
        after = self._page_tokens.decode(page_token, query=query)
        clauses: list[str] = []
        args: list[Any] = []
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
        # A page cut short by the byte budget ends where the budget did, so the next read starts there.
        kept = len(_within_budget(rows[:limit]))
        page = self._page_tokens.page(rows[:kept + 1], limit=kept, query=query,
                                      key=lambda row: [row["create_time"].isoformat(), str(row["operation_id"])])
        return Page([to_proto(r) for r in page.items], page.next_page_token)

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
                row = await connection.fetchrow(SELECT_OPERATION, operation_id)
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
                row = await connection.fetchrow(SELECT_OPERATION, operation_id) if version != seen else None
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
            return await finish_row(connection, operation_id, state=state, response=packed_any(response),
                                    error=raw_error)

    async def heartbeat(self, operation_ids: Sequence[uuid.UUID]) -> None:
        if operation_ids:
            async with self._db.raw() as connection:
                await connection.execute("UPDATE operation SET heartbeat_time = now() WHERE operation_id = ANY($1)",
                                         list(operation_ids))

    async def fail_abandoned(self, *, older_than: timedelta, domain: str) -> int:
        """Fail unfinished operations whose heartbeat stopped: the process running them is gone."""
        error = stopped_status("the process running this operation stopped; start it again", domain=domain)
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
