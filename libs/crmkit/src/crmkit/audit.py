"""Append-only, hash-chained audit log of who read or changed which customer, and why.

Each record's hash covers its content and the previous record's hash in the same chain, so
deleting, editing or reordering any record breaks every hash after it; `verify_chain` walks
every chain. A database trigger (see kit_schema) refuses UPDATE and DELETE as well.

Two kinds of chain:
- `changes`: records written inside the unit of work of a change, so they commit or roll back
  with it. The chain's tail is read under an advisory lock in that transaction, so every replica
  of a service extends the one chain.
- `reads:<uuid>`: one per AuditWriter (per process). Reads are frequent, so they are written by
  group commit: callers await `record()`, which returns once their record is durable, while one
  background task writes everything queued meanwhile as a single INSERT. The writer alone extends
  its chain, so it keeps the tail in memory and needs neither a lock nor a transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.audit")

_CHAIN_LOCK_KEY = 0x43524D415544  # "CRMAUD"
GENESIS_HASH = b"\x00" * 32
MAX_BATCH = 1000


def audit_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "audit_record",
        metadata,
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("chain_id", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("resource_name", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    principal: str
    action: str  # e.g. "customer.read", "customer.update"
    resource_name: str
    purpose: str
    justification: str = ""
    trace_id: str = ""


CHANGES_CHAIN = "changes"
_COLUMNS = ("chain_id", "recorded_at", "principal", "action", "resource_name", "purpose", "justification",
            "trace_id", "prev_hash", "hash")


def _digest(prev_hash: bytes, recorded_at: datetime, entry: AuditEntry) -> bytes:
    body = json.dumps(
        [recorded_at.isoformat(), entry.principal, entry.action, entry.resource_name, entry.purpose,
         entry.justification, entry.trace_id], separators=(",", ":"),
    ).encode()
    return hashlib.sha256(prev_hash + body).digest()


def record_hash(prev_hash: bytes, recorded_at: datetime, entry: AuditEntry) -> bytes:
    """The hash a record with this content must carry after `prev_hash` (what `verify_chain` checks)."""
    return _digest(prev_hash, recorded_at, entry)


def _rows(chain_id: str, prev: bytes, entries: list[AuditEntry]) -> tuple[list[dict[str, object]], bytes]:
    rows = []
    now = datetime.now(UTC)
    for entry in entries:
        digest = _digest(prev, now, entry)
        rows.append({"chain_id": chain_id, "recorded_at": now, "principal": entry.principal,
                     "action": entry.action, "resource_name": entry.resource_name, "purpose": entry.purpose,
                     "justification": entry.justification, "trace_id": entry.trace_id,
                     "prev_hash": prev, "hash": digest})
        prev = digest
    return rows, prev


async def append(session: AsyncConnection, table: sa.Table, entries: list[AuditEntry]) -> None:
    """Extend the `changes` chain inside the caller's transaction (it commits with the change)."""
    if not entries:
        return
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK_KEY)))
    prev = await session.scalar(
        sa.select(table.c.hash).where(table.c.chain_id == CHANGES_CHAIN).order_by(table.c.seq.desc()).limit(1)
    ) or GENESIS_HASH
    rows, _ = _rows(CHANGES_CHAIN, prev, entries)
    await session.execute(sa.insert(table), rows)


class AuditWriter:
    """Group-commit writer for read records; start() in the service start-up, close() at shutdown."""

    def __init__(self, db: Database, table: sa.Table) -> None:
        self._db = db
        self._table = table
        self.chain_id = f"reads:{uuid.uuid4()}"
        self._tail = GENESIS_HASH
        self._queue: list[tuple[AuditEntry, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def record(self, *entries: AuditEntry) -> None:
        """Return once the entries are committed; raise if they could not be (the read fails too)."""
        if self._task is None or self._task.done():
            raise RuntimeError("audit writer is not running")
        loop = asyncio.get_running_loop()
        futures = []
        for entry in entries:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append((entry, future))
            futures.append(future)
        self._wake.set()
        for future in futures:
            await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                rows, tail = _rows(self.chain_id, self._tail, [entry for entry, _ in batch])
                try:
                    # One COPY: a single statement, so the batch lands whole or not at all.
                    async with self._db.raw() as connection:
                        await connection.copy_records_to_table(
                            self._table.name, columns=_COLUMNS, records=[tuple(r[c] for c in _COLUMNS) for r in rows])
                    self._tail = tail
                except Exception as exc:
                    log.error("audit_write_failed", records=len(batch), error_type=type(exc).__name__)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        if self._task is None:
            return
        while self._queue:
            self._wake.set()
            await asyncio.sleep(0.01)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def verify_chain(session: AsyncConnection, table: sa.Table) -> int | None:
    """The seq of the first record that does not follow its chain, or None when all are intact."""
    tails: dict[str, bytes] = {}
    result = await session.stream(sa.select(table).order_by(table.c.seq))
    async for row in result:
        prev = tails.get(row.chain_id, GENESIS_HASH)
        entry = AuditEntry(principal=row.principal, action=row.action, resource_name=row.resource_name,
                           purpose=row.purpose, justification=row.justification, trace_id=row.trace_id)
        if row.prev_hash != prev or row.hash != _digest(prev, row.recorded_at, entry):
            return int(row.seq)
        tails[row.chain_id] = row.hash
    return None
