"""The SQL on an operation row that the service and its worker processes share (plain asyncpg),
and the worker's handle on its operation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from google.protobuf.message import Message

from crmkit.operations.errors import OperationCancelled
from crmkit.operations.messages import SUCCEEDED, packed_any

SELECT_OPERATION = "SELECT * FROM operation WHERE operation_id = $1"
_FINISH = """
    UPDATE operation SET state = $2::smallint, response = $3, error = $4, end_time = now(), update_time = now(),
                         version = version + 1,
                         progress_total = CASE WHEN $2::smallint = 3 THEN greatest(progress_total, progress_done)
                                               ELSE progress_total END
    WHERE operation_id = $1 AND state IN (1, 2)
    RETURNING operation_id"""


async def finish_row(connection: asyncpg.Connection, operation_id: uuid.UUID, *, state: int,
                     response: bytes | None = None, error: bytes | None = None) -> bool:
    return await connection.fetchval(_FINISH, operation_id, state, response, error) is not None


async def complete_in(connection: asyncpg.Connection, operation_id: uuid.UUID, response: Message) -> None:
    """Mark the operation SUCCEEDED inside the caller's transaction, so the result commits with
    the work. Raises OperationCancelled when it is no longer running (failed by a sweeper or a
    shutdown meanwhile): the caller's transaction must then roll back."""
    if not await finish_row(connection, operation_id, state=SUCCEEDED, response=packed_any(response)):
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

