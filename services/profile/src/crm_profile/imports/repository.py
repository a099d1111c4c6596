"""All SQL of bulk import: uploads, the per-import scratch tables, and the merge. Never commits.

Uploads, the checks before an import and housekeeping run in the caller's unit of work
(SQLAlchemy, crmkit.db's rule); the import's steps (staging with COPY and the merge, in worker
processes) run on plain asyncpg connections of their own, in their own transactions: the
documented `Database.raw()` exception for COPY-based bulk work.

Scratch tables (`import_work_<op>`, `import_value_<op>`, `import_change_<op>`) are UNLOGGED
copies of the shapes of `customer`, `customer_attribute` and `field_change`, made with
`CREATE TABLE ... AS ... WITH NO DATA` so they follow those tables' columns without their
constraints, plus the row's `line`. They hold staged rows only while their import runs.
"""

from __future__ import annotations

import hashlib
import json
import operator
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.attributes.repository import VALUES_OF_CUSTOMER_SQL
from crm_profile.customers.model import Customer
from crm_profile.customers.repository import _EXTERNAL_IDS_OF_CUSTOMER_SQL, _PLAIN_FIELDS, CustomerRepository
from crm_profile.customers.vault import SEALED_COLUMNS, PersonalDataVault
from crm_profile.imports.model import BAD, INSERT, UPDATE, Upload, UploadHeader
from crm_profile.imports.tables import import_upload, import_upload_chunk
from crmkit import audit, outbox
from crmkit.audit import AuditEntry
from crmkit.db import UnitOfWork

# The customer's change-feed resource type (its proto's full name), as Customers writes it.
CUSTOMER_TYPE = "crm.profile.v1.Customer"
AUDIT_BATCH = 20_000
# The RPC an import's records were made in (its worker process serves no call of its own).
IMPORT_METHOD = "/crm.profile.v1.ProfileService/ImportCustomers"

_EXISTING = (f"SELECT customer.*, {VALUES_OF_CUSTOMER_SQL} AS attribute_values,"  # noqa: S608 - constants
             f" {_EXTERNAL_IDS_OF_CUSTOMER_SQL} AS external_id_values"
             " FROM customer WHERE customer_id = ANY($1::text[])")
VALUE_COLUMNS = ("line", "customer_id", "attribute_id", "value_text", "value_number", "value_bool", "value_date",
                 "value_sealed")
CHANGE_COLUMNS = ("line", "customer_id", "field", "kind", "old_text", "new_text", "old_sealed", "new_sealed",
                  "personal", "changed_at", "actor", "source", "source_system", "origin")


# --- uploads (service side) -------------------------------------------------------------------------


def _upload(row: Any) -> Upload:
    return Upload(upload_id=row["upload_id"], file_name=row["file_name"], format=row["format"],
                  size_bytes=row["size_bytes"], sha256=row["sha256"], create_time=row["create_time"],
                  expire_time=row["expire_time"])


async def purge_expired_uploads(uow: UnitOfWork) -> int:
    result = await uow.execute(sa.delete(import_upload).where(import_upload.c.expire_time < sa.func.now()))
    return int(result.rowcount or 0)


async def upload_area_used(uow: UnitOfWork) -> int:
    return int(await uow.scalar(sa.select(sa.func.coalesce(sa.func.sum(import_upload.c.size_bytes), 0))
                                .where(import_upload.c.expire_time >= sa.func.now())) or 0)


async def insert_upload(session: AsyncConnection, *, upload_id: uuid.UUID, header: UploadHeader, creator: str,
                        expire_time: datetime) -> None:
    await session.execute(sa.insert(import_upload).values(
        upload_id=upload_id, creator=creator, file_name=header.file_name, format=header.format,
        size_bytes=header.size_bytes, sha256=header.sha256, expire_time=expire_time))


async def insert_chunk(session: AsyncConnection, *, upload_id: uuid.UUID, seq: int, data: bytes) -> None:
    await session.execute(sa.insert(import_upload_chunk).values(upload_id=upload_id, seq=seq, data=data))


async def uploaded(session: AsyncConnection, upload_id: uuid.UUID) -> Upload | None:
    row = (await session.execute(sa.select(import_upload).where(
        import_upload.c.upload_id == upload_id, import_upload.c.expire_time >= sa.func.now()))).first()
    return _upload(row._mapping) if row is not None else None


async def get_upload(connection: asyncpg.Connection, upload_id: uuid.UUID) -> Upload | None:
    row = await connection.fetchrow(
        "SELECT * FROM import_upload WHERE upload_id = $1 AND expire_time >= now()", upload_id)
    return _upload(row) if row is not None else None


async def head(uow: UnitOfWork, upload_id: uuid.UUID, *, chunks: int) -> bytes:
    k = import_upload_chunk
    rows = (await uow.execute(sa.select(k.c.data).where(k.c.upload_id == upload_id)
                              .order_by(k.c.seq).limit(chunks))).all()
    return b"".join(r.data for r in rows)


async def tail(uow: UnitOfWork, upload_id: uuid.UUID, *, nbytes: int) -> bytes:
    """At least the last `nbytes` of the file (whole chunks), or all of it."""
    k = import_upload_chunk
    parts: list[bytes] = []
    total = 0
    rows = (await uow.execute(sa.select(k.c.seq, sa.func.length(k.c.data).label("size"))
                              .where(k.c.upload_id == upload_id).order_by(k.c.seq.desc()))).all()
    for row in rows:
        parts.append((await uow.execute(sa.select(k.c.data).where(k.c.upload_id == upload_id, k.c.seq == row.seq)))
                     .scalar_one())
        total += row.size
        if total >= nbytes:
            break
    return b"".join(reversed(parts))


async def download(connection: asyncpg.Connection, upload_id: uuid.UUID, path: Path) -> str:
    """Write the upload to `path`, chunk by chunk; its SHA-256."""
    digest = hashlib.sha256()
    seqs = [r["seq"] for r in await connection.fetch(
        "SELECT seq FROM import_upload_chunk WHERE upload_id = $1 ORDER BY seq", upload_id)]
    with path.open("wb") as file:
        for seq in seqs:
            data = await connection.fetchval(
                "SELECT data FROM import_upload_chunk WHERE upload_id = $1 AND seq = $2", upload_id, seq)
            digest.update(data)
            file.write(data)
    return digest.hexdigest()


# --- scratch tables ---------------------------------------------------------------------------------


class Scratch:
    """The scratch tables of one import."""

    def __init__(self, operation_id: uuid.UUID) -> None:
        suffix = operation_id.hex
        self.work = f"import_work_{suffix}"
        self.values = f"import_value_{suffix}"
        self.changes = f"import_change_{suffix}"

    async def create(self, connection: asyncpg.Connection) -> None:
        await self.drop(connection)
        shapes = {  # the names come from a UUID: nothing from a caller reaches this DDL
            self.work: "NULL::bigint AS line, NULL::smallint AS action, NULL::integer AS expected_version,"
                       " NULL::jsonb AS problems, NULL::bytea AS payload, c.* FROM customer c",
            self.values: "NULL::bigint AS line, a.* FROM customer_attribute a",
            self.changes: "NULL::bigint AS line, h.* FROM field_change h",
        }
        for table, select in shapes.items():
            await connection.execute(f"CREATE UNLOGGED TABLE {table} AS SELECT {select} WITH NO DATA")

    async def drop(self, connection: asyncpg.Connection) -> None:
        await connection.execute(f"DROP TABLE IF EXISTS {self.work}, {self.values}, {self.changes}")


async def leftover_scratch(uow: UnitOfWork) -> list[str]:
    """Scratch tables whose import is no longer running (its process died before cleaning up)."""
    rows = await uow.execute(sa.text(
        r"""SELECT t.tablename FROM pg_tables t
            WHERE t.schemaname = current_schema() AND t.tablename ~ '^import_(work|value|change)_[0-9a-f]{32}$'
              AND NOT EXISTS (
                  SELECT 1 FROM operation o WHERE o.state IN (1, 2)
                  AND replace(o.operation_id::text, '-', '') = substring(t.tablename from '[0-9a-f]{32}$'))"""))
    return [r.tablename for r in rows]


async def drop_tables(uow: UnitOfWork, names: Sequence[str]) -> None:
    for name in names:
        await uow.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))


# --- staging (worker side) --------------------------------------------------------------------------


# The columns of a staged customer row: those CustomerRepository writes, in its order.
STORED_COLUMNS = ("customer_id", *_PLAIN_FIELDS, *SEALED_COLUMNS)
_plain_values = operator.attrgetter(*_PLAIN_FIELDS)


class StoredCustomers:
    """Customers <-> customer rows, exactly as the customers domain stores and reads them."""

    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault
        self._repository = CustomerRepository(vault)

    def to_values(self, customer: Customer) -> tuple[Any, ...]:
        """The customer's row in STORED_COLUMNS order, built once as a tuple (staging COPYs
        tuples; a dict per row, spread into another, cost a bulk import twice)."""
        return (customer.customer_id, *_plain_values(customer), *self._vault.seal_values(customer))

    def from_row(self, row: Mapping[str, Any]) -> Customer:
        return self._repository._from_row(row)

    async def existing(self, connection: asyncpg.Connection, customer_ids: Sequence[str]) -> dict[str, Customer]:
        rows = await connection.fetch(_EXISTING, list(customer_ids))
        return {row["customer_id"]: self.from_row(row) for row in rows}


async def copy(connection: asyncpg.Connection, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
               ) -> None:
    if records:
        await connection.copy_records_to_table(table, columns=list(columns), records=records)


def problems_json(entries: Sequence[tuple[str, str, str, str]]) -> str:
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False)


# --- the merge (worker side, one transaction) ---------------------------------------------------------


async def mark_duplicates(connection: asyncpg.Connection, scratch: Scratch, *, id_column: str) -> int:
    """Rows whose customer id an earlier line of the file has: bad (DUPLICATE_CUSTOMER_ID)."""
    result = await connection.execute(
        f"""UPDATE {scratch.work} w SET action = {BAD},
                problems = coalesce(w.problems, '[]'::jsonb) || jsonb_build_array(jsonb_build_array(
                    $1::text, 'customer_id', 'DUPLICATE_CUSTOMER_ID',
                    'customer_id repeats the id of line ' || d.first_line))
            FROM (SELECT line, first_value(line) OVER (PARTITION BY customer_id ORDER BY line) AS first_line
                  FROM {scratch.work} WHERE customer_id IS NOT NULL) d
            WHERE w.line = d.line AND d.first_line <> d.line AND w.action <> {BAD}""",  # noqa: S608
        id_column)
    return int(result.split()[-1])


async def counts(connection: asyncpg.Connection, scratch: Scratch) -> dict[int, int]:
    rows = await connection.fetch(f"SELECT action, count(*) AS n FROM {scratch.work} GROUP BY action")  # noqa: S608
    return {row["action"]: row["n"] for row in rows}


async def bad_entries(connection: asyncpg.Connection, scratch: Scratch, *, limit: int
                      ) -> AsyncIterator[tuple[int, list[list[str]]]]:
    rows = await connection.fetch(
        f"SELECT line, problems FROM {scratch.work} WHERE action = {BAD} ORDER BY line LIMIT $1", limit)  # noqa: S608
    for row in rows:
        yield row["line"], json.loads(row["problems"])


async def write_customers(connection: asyncpg.Connection, scratch: Scratch, *, columns: Sequence[str],
                          stamp: datetime) -> tuple[int, int]:
    """Insert the new customers and update the changed ones; (inserted, updated). An update
    applies only while the customer still has the version the row was compared with."""
    names = ", ".join(columns)
    inserted = await connection.execute(
        f"""INSERT INTO customer ({names}, version, created_at, updated_at)
            SELECT {names}, 1, $1, $1 FROM {scratch.work} WHERE action = {INSERT}
            ON CONFLICT (customer_id) DO NOTHING""", stamp)  # noqa: S608
    changed = [c for c in columns if c != "customer_id"]
    updated = await connection.execute(
        f"""UPDATE customer c SET ({', '.join(changed)}) = ({', '.join('w.' + n for n in changed)}),
                                  version = c.version + 1, updated_at = $1
            FROM {scratch.work} w
            WHERE w.action = {UPDATE} AND c.customer_id = w.customer_id AND c.version = w.expected_version""",  # noqa: S608
        stamp)
    return int(inserted.split()[-1]), int(updated.split()[-1])


async def write_values(connection: asyncpg.Connection, scratch: Scratch, *, stamp: datetime) -> None:
    """The attribute values of the written rows (a new customer has none yet: no conflict check)."""
    columns = "customer_id, attribute_id, value_text, value_number, value_bool, value_date, value_sealed"
    select = (f"SELECT {', '.join('v.' + c.strip() for c in columns.split(','))}, $1"  # noqa: S608
              f" FROM {scratch.values} v JOIN {scratch.work} w ON w.line = v.line")
    await connection.execute(
        f"INSERT INTO customer_attribute ({columns}, updated_at) {select} WHERE w.action = {INSERT}", stamp)
    await connection.execute(
        f"""INSERT INTO customer_attribute ({columns}, updated_at) {select} WHERE w.action = {UPDATE}
            ON CONFLICT (customer_id, attribute_id) DO UPDATE SET
                value_text = excluded.value_text, value_number = excluded.value_number,
                value_bool = excluded.value_bool, value_date = excluded.value_date,
                value_sealed = excluded.value_sealed, updated_at = excluded.updated_at""",
        stamp)


async def write_history(connection: asyncpg.Connection, scratch: Scratch) -> None:
    """The field changes of the written rows, as history.repository records them."""
    columns = ", ".join(CHANGE_COLUMNS[1:])
    await connection.execute(
        f"""INSERT INTO field_change ({columns})
            SELECT {', '.join('h.' + c for c in CHANGE_COLUMNS[1:])}
            FROM {scratch.changes} h JOIN {scratch.work} w ON w.line = h.line
            WHERE w.action IN ({INSERT}, {UPDATE})""")  # noqa: S608


async def write_confirmations(connection: asyncpg.Connection, scratch: Scratch, *, stamp: datetime) -> None:
    """The confirmation of every field the updated rows set (the stale-data clock restarts). New
    customers get none: their creation confirms every field they have (history.rules)."""
    await connection.execute(
        f"""INSERT INTO field_confirmation (customer_id, field, confirmed_at)
            SELECT h.customer_id, h.field, $1 FROM {scratch.changes} h JOIN {scratch.work} w ON w.line = h.line
            WHERE w.action = {UPDATE} AND h.kind = 1
            ON CONFLICT (customer_id, field) DO UPDATE SET confirmed_at = excluded.confirmed_at""",  # noqa: S608
        stamp)


async def write_audit(connection: asyncpg.Connection, scratch: Scratch, *, actor: str, justification: str,
                      trace_id: str) -> int:
    """One record per written customer on the `changes` chain, in line order."""
    # One sorted pass through a cursor (this transaction's): batches by `line > last LIMIT n`
    # would scan and sort the whole work table once per batch.
    written = await connection.cursor(
        f"""SELECT customer_id, action FROM {scratch.work}
            WHERE action IN ({INSERT}, {UPDATE}) ORDER BY line""")  # noqa: S608

    async def batches() -> AsyncIterator[list[AuditEntry]]:
        while rows := await written.fetch(AUDIT_BATCH):
            yield [AuditEntry(principal=actor, action="customer.create" if r["action"] == INSERT else "customer.update",
                              resource_name=f"customers/{r['customer_id']}", purpose="DATA_MANAGEMENT",
                              justification=justification, trace_id=trace_id, method=IMPORT_METHOD) for r in rows]

    return await audit.copy_changes(connection, batches())


async def write_events(connection: asyncpg.Connection, scratch: Scratch, *, actor: str, trace_id: str) -> int:
    """One change event per written customer, in line order, in the merge's transaction (the
    outbox takes no lock: the service's other writers do not wait for the merge's commit)."""
    rows = (f"SELECT $1, 'customers/' || customer_id, CASE WHEN action = {INSERT} THEN 1 ELSE 2 END,"  # noqa: S608
            f" payload, $2, $3 FROM {scratch.work} WHERE action IN ({INSERT}, {UPDATE}) ORDER BY line")
    return await outbox.bulk_append(connection, rows, CUSTOMER_TYPE, actor, trace_id)
