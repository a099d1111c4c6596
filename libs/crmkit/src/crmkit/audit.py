"""Append-only, hash-chained audit log of who read or changed which customer, and why.

Each record's hash covers its content and the previous record's hash, so deleting, editing or
reordering any record breaks every hash after it; `verify_chain` walks the chain.

Reads of personal data are frequent, so records are written by group commit: callers await
`record()`, which returns once their record is durable, while one background task writes
everything queued meanwhile in a single transaction. The chain's tail is read under an
advisory lock in that transaction, so several replicas of a service extend one chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

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


def _digest(prev_hash: bytes, recorded_at: datetime, entry: AuditEntry) -> bytes:
    body = json.dumps(
        [recorded_at.isoformat(), entry.principal, entry.action, entry.resource_name, entry.purpose,
         entry.justification, entry.trace_id], separators=(",", ":"),
    ).encode()
    return hashlib.sha256(prev_hash + body).digest()


async def append(session: AsyncSession, table: sa.Table, entries: list[AuditEntry]) -> None:
    """Extend the chain inside the caller's transaction (used for changes, which commit anyway)."""
    if not entries:
        return
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK_KEY)))
    prev = await session.scalar(sa.select(table.c.hash).order_by(table.c.seq.desc()).limit(1)) or GENESIS_HASH
    rows = []
    now = datetime.now(UTC)
    for entry in entries:
        digest = _digest(prev, now, entry)
        rows.append({"recorded_at": now, "principal": entry.principal, "action": entry.action,
                     "resource_name": entry.resource_name, "purpose": entry.purpose,
                     "justification": entry.justification, "trace_id": entry.trace_id,
                     "prev_hash": prev, "hash": digest})
        prev = digest
    await session.execute(sa.insert(table), rows)


class AuditWriter:
    """Group-commit writer for read records; start() in the service start-up, close() at shutdown."""

    def __init__(self, db: Database, table: sa.Table) -> None:
        self._db = db
        self._table = table
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
        await asyncio.gather(*futures)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    async with self._db.unit_of_work() as session:
                        await append(session, self._table, [entry for entry, _ in batch])
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


async def verify_chain(session: AsyncSession, table: sa.Table) -> int | None:
    """The seq of the first record whose hash does not follow, or None when the chain is intact."""
    prev = GENESIS_HASH
    result = await session.stream(sa.select(table).order_by(table.c.seq))
    async for row in result:
        entry = AuditEntry(principal=row.principal, action=row.action, resource_name=row.resource_name,
                           purpose=row.purpose, justification=row.justification, trace_id=row.trace_id)
        if row.prev_hash != prev or row.hash != _digest(prev, row.recorded_at, entry):
            return int(row.seq)
        prev = row.hash
    return None
