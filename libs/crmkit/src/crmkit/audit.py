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
  background task writes everything queued meanwhile in one statement (a COPY, or one INSERT for a
  lone record), on a connection it keeps.
  The writer alone extends its chain, so it keeps the tail in memory and needs neither a lock nor
  a transaction. A writer made with `lanes=N` keeps N such chains, each with its own task and
  connection: a record made while one chain commits a batch goes to a chain that is not
  committing, so it does not wait for a commit it is not part of, and concurrent commits share
  PostgreSQL's WAL flush.

The hash recipe is the contract's (`AuditRecord.record_hash` in protos/crm/profile/v1/audit_log.proto):
an auditor outside the platform recomputes it from ListAuditRecords alone, so the two must never
drift. Each record stores the number of the recipe it was hashed by (`hash_recipe`):
- 2 (every record written since 2026-12-07): SHA-256 over the previous hash and a length-prefixed
  serialisation of every field of the record (`canonical_body`).
- 1 (records written before): SHA-256 over the previous hash and a compact JSON list that left out
  the chain, the fields and the outcome. Such records were all allowed accesses with no fields
  kept, so a recipe-1 record claiming anything else is counted as tampered with.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crmkit.auth import bound_principal, current_method
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.audit")

_CHAIN_LOCK_KEY = 0x43524D415544  # "CRMAUD"
GENESIS_HASH = b"\x00" * 32
MAX_BATCH = 1000
ALLOWED, DENIED = "ALLOWED", "DENIED"  # AuditOutcome names without their prefix
LEGACY_RECIPE, RECIPE = 1, 2


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
        # Since kit_schema.add_audit_call_columns (empty in records made before, and in records of
        # background work, which has no caller).
        sa.Column("actor_roles", sa.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("method", sa.Text, nullable=False, server_default=""),
        # Since kit_schema.add_audit_outcome_columns: the personal-data field paths returned in clear
        # or changed, whether the access was allowed, and the hash recipe of the record (see above).
        sa.Column("fields", sa.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("outcome", sa.Text, nullable=False, server_default=ALLOWED),
        sa.Column("hash_recipe", sa.SmallInteger, nullable=False, server_default=str(LEGACY_RECIPE)),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )


def _caller_roles() -> tuple[str, ...]:
    principal = bound_principal()
    return tuple(sorted(role.value for role in principal.roles)) if principal is not None else ()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    principal: str
    action: str  # e.g. "customer.read", "customer.update"
    resource_name: str
    purpose: str
    justification: str = ""
    trace_id: str = ""
    # The caller's roles and the RPC the record was made in: taken from the call being served
    # (the server's guard binds them), so no use case has to pass them along.
    actor_roles: tuple[str, ...] = field(default_factory=_caller_roles)
    method: str = field(default_factory=current_method)
    # Personal-data field paths returned in clear (reads) or changed (writes), e.g. `full_name`,
    # `id_document.number`, `attributes.monthly_income`; never values.
    fields: tuple[str, ...] = ()
    # DENIED for a refused access, recorded even though the call fails.
    outcome: str = ALLOWED


CHANGES_CHAIN = "changes"
_COLUMNS = ("chain_id", "recorded_at", "principal", "action", "resource_name", "purpose", "justification",
            "trace_id", "actor_roles", "method", "fields", "outcome", "hash_recipe", "prev_hash", "hash")


def canonical_time(recorded_at: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits and `Z`: `2026-12-07T09:30:00.000000Z`."""
    return recorded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def _texts(values: Sequence[str]) -> bytes:
    return len(values).to_bytes(4, "big") + b"".join(_text(value) for value in values)


def canonical_body(chain_id: str, stamp: str, entry: AuditEntry) -> bytes:
    """Recipe 2's serialisation of a record: its fields in this order, each string as a 4-byte
    big-endian length and its UTF-8 bytes, each list as a 4-byte count and its strings."""
    return b"".join((
        _text(chain_id), _text(stamp), _text(entry.principal), _texts(entry.actor_roles), _text(entry.method),
        _text(entry.action), _text(entry.resource_name), _text(entry.purpose), _text(entry.justification),
        _texts(entry.fields), _text(entry.outcome), _text(entry.trace_id),
    ))


# One encoder for recipe 1's digests: `json.dumps` with options builds a new one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _legacy_digest(prev_hash: bytes, recorded_at: datetime, entry: AuditEntry) -> bytes:
    fields: list[object] = [recorded_at.isoformat(), entry.principal, entry.action, entry.resource_name,
                            entry.purpose, entry.justification, entry.trace_id]
    if entry.actor_roles or entry.method:  # left out of the records made before they were kept
        fields += [list(entry.actor_roles), entry.method]
    return hashlib.sha256(prev_hash + _COMPACT_JSON.encode(fields).encode()).digest()


def record_hash(prev_hash: bytes, recorded_at: datetime, entry: AuditEntry, *, chain_id: str,
                recipe: int = RECIPE) -> bytes | None:
    """The hash a record with this content must carry after `prev_hash` (what `verify_chain` checks);
    None when no record of that recipe can hold this content (an unknown recipe, or a recipe-1
    record claiming a refusal or fields, which recipe 1 never recorded)."""
    if recipe == RECIPE:
        return hashlib.sha256(prev_hash + canonical_body(chain_id, canonical_time(recorded_at), entry)).digest()
    if recipe == LEGACY_RECIPE and entry.outcome == ALLOWED and not entry.fields:
        return _legacy_digest(prev_hash, recorded_at, entry)
    return None


def _records(chain_id: str, prev: bytes, entries: list[AuditEntry]) -> tuple[list[tuple[object, ...]], bytes]:
    """The rows of `entries` appended to a chain whose tail is `prev`, as tuples in `_COLUMNS`
    order, and the chain's new tail."""
    records: list[tuple[object, ...]] = []
    now = datetime.now(UTC)
    stamp = canonical_time(now)
    for entry in entries:
        digest = hashlib.sha256(prev + canonical_body(chain_id, stamp, entry)).digest()
        records.append((chain_id, now, entry.principal, entry.action, entry.resource_name, entry.purpose,
                        entry.justification, entry.trace_id, list(entry.actor_roles), entry.method,
                        list(entry.fields), entry.outcome, RECIPE, prev, digest))
        prev = digest
    return records, prev


def _rows(chain_id: str, prev: bytes, entries: list[AuditEntry]) -> tuple[list[dict[str, object]], bytes]:
    """`_records` as column -> value mappings."""
    records, tail = _records(chain_id, prev, entries)
    return [dict(zip(_COLUMNS, record, strict=True)) for record in records], tail


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


async def copy_changes(connection: asyncpg.Connection, batches: AsyncIterable[Sequence[AuditEntry]], *,
                       table: str = "audit_record") -> int:
    """Extend the `changes` chain by COPY, batch by batch, inside the caller's transaction on a raw
    asyncpg connection (a bulk load's records, as `append` writes one change's); the number of
    records. The chain's lock is held from here until the transaction ends."""
    if not connection.is_in_transaction():
        raise RuntimeError("copy_changes belongs inside the transaction of the changes it records")
    await connection.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK_KEY)
    tail = await connection.fetchval(
        f"SELECT hash FROM {table} WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1",  # noqa: S608 (no input)
        CHANGES_CHAIN) or GENESIS_HASH
    count = 0
    async for entries in batches:
        records, tail = _records(CHANGES_CHAIN, tail, list(entries))
        await connection.copy_records_to_table(table, columns=_COLUMNS, records=records)
        count += len(records)
    return count


class AuditWriter:
    """Group-commit writer for read records; start() in the service start-up, close() at shutdown,
    before the database is disposed (the writer keeps a pooled connection until then)."""

    def __init__(self, db: Database, table: sa.Table, *, lanes: int = 1) -> None:
        if lanes < 1:
            raise ValueError("an audit writer needs at least one lane")
        self._db = db
        self._table = table
        self.chain_id = f"reads:{uuid.uuid4()}"
        self._tail = GENESIS_HASH
        self._queue: list[tuple[AuditEntry, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._insert_one = (f"INSERT INTO {table.name} ({', '.join(_COLUMNS)})"  # noqa: S608 (no input)
                            f" VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))})")
        # The writer's own pooled connection, kept between batches: taking one from the pool per
        # batch costs a pool round trip and a session reset (another statement) every time.
        self._held: AsyncExitStack | None = None
        self._connection: asyncpg.Connection | None = None
        self._writing = False  # a batch is on its way to the database
        # The further lanes (chains) of a writer made with `lanes` > 1 (see the module docstring).
        self._spares = [AuditWriter(db, table) for _ in range(lanes - 1)]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")
        for spare in self._spares:
            spare.start()

    async def record(self, *entries: AuditEntry) -> None:
        """Return once the entries are committed; raise if they could not be (the read fails too)."""
        if self._writing:  # joining the next batch would mean waiting for this one's commit first
            idle = next((spare for spare in self._spares if not spare._writing), None)
            if idle is not None:
                await idle.record(*entries)
                return
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
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    self._writing = True
                    try:
                        await self._write(batch)
                    finally:
                        self._writing = False
        finally:
            await self._release()

    async def _write(self, batch: list[tuple[AuditEntry, asyncio.Future[None]]]) -> None:
        records, tail = _records(self.chain_id, self._tail, [entry for entry, _ in batch])
        try:
            connection = await self._connected()
            if len(records) == 1:
                # Most batches below saturation: a prepared INSERT costs the client about 30 us
                # less than a COPY's setup.
                await connection.execute(self._insert_one, *records[0])
            else:
                # One COPY: a single statement, so the batch lands whole or not at all.
                await connection.copy_records_to_table(self._table.name, columns=_COLUMNS, records=records)
        except Exception as exc:
            # The connection may be broken: give it back (the pool replaces a broken one) and
            # take another for the next batch.
            error = await self._release(exc) or exc
            log.error("audit_write_failed", records=len(batch), error_type=type(error).__name__)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self._tail = tail
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is not None and _lost(self._connection):
            await self._release()  # lost while idle (a database restart): nothing was sent on it
        if self._connection is None:
            held = AsyncExitStack()
            self._connection = await held.enter_async_context(self._db.raw())
            self._held = held
        return self._connection

    async def _release(self, error: Exception | None = None) -> Exception | None:
        """Give the kept connection back to the pool; `error` as `Database.raw` translates it (a lost
        database becomes UNAVAILABLE)."""
        held, self._held, self._connection = self._held, None, None
        if held is not None:
            try:
                if error is None:
                    await held.aclose()
                else:
                    await held.__aexit__(type(error), error, error.__traceback__)
            except Exception as translated:
                return translated
        return error

    async def close(self) -> None:
        for spare in self._spares:
            await spare.close()
        if self._task is None:
            return
        while self._queue:
            self._wake.set()
            await asyncio.sleep(0.01)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _lost(connection: asyncpg.Connection) -> bool:
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:  # the pool took the connection back when it noticed the loss
        return True


async def verify_chain(session: AsyncConnection, table: sa.Table) -> int | None:
    """The seq of the first record that does not follow its chain, or None when all are intact."""
    tails: dict[str, bytes] = {}
    result = await session.stream(sa.select(table).order_by(table.c.seq))
    async for row in result:
        prev = tails.get(row.chain_id, GENESIS_HASH)
        entry = AuditEntry(principal=row.principal, action=row.action, resource_name=row.resource_name,
                           purpose=row.purpose, justification=row.justification, trace_id=row.trace_id,
                           actor_roles=tuple(row.actor_roles), method=row.method, fields=tuple(row.fields),
                           outcome=row.outcome)
        if row.prev_hash != prev or row.hash != record_hash(prev, row.recorded_at, entry, chain_id=row.chain_id,
                                                            recipe=row.hash_recipe):
            return int(row.seq)
        tails[row.chain_id] = row.hash
    return None
