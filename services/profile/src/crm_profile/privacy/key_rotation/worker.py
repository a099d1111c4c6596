"""Re-encryption of every sealed value to one key, in a worker process (spawned; see
crmkit.operations): AES-GCM is CPU work, and a bank's worth of values would stall the service's
event loop for minutes.

Where sealed values live (each bound to its customer and field by its associated data):

| table             | columns                                              | context                               |
|-------------------|------------------------------------------------------|---------------------------------------|
| customer          | full_name, id_number, mobile_phone, email, address   | `customer:{id}:{field}`               |
| customer_attribute| value_sealed                                         | `customer:{id}:attributes.{key}`      |
| field_change      | old_sealed, new_sealed                               | `customer:{id}:history:{field}`       |
| customer_merge    | undo.survivor_before/after.sealed (base64 in JSON)   | `customer:{survivor}:{field}`         |

Each table is walked in key order, a batch per transaction, its rows locked while they are
rewritten (a concurrent update of the same customer waits, then writes its own values sealed
with the new key anyway). Only values not yet under the target key are read, so a cancelled or
failed job simply starts again where it stopped. A last pass looks again for values written
with an old key meanwhile (by a replica that had not switched yet); keys no value uses any
more are reported as retired.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from typing import Any

import asyncpg
from pydantic import SecretStr

from crm_profile.privacy.key_rotation.model import RotationResult
from crmkit.crypto import KeyRing
from crmkit.operations import OperationCancelled, WorkerOperation
from crmkit.settings import plain_database_url

BATCH_ROWS = 500
MAX_PASSES = 3
_CUSTOMER_FIELDS = ("full_name", "id_number", "mobile_phone", "email", "address")
# The key id inside a sealed value: `v1 | length | key id | ...` (crmkit.crypto).
_KEY_OF = "substring({0} from 3 for get_byte({0}, 1))"


@dataclasses.dataclass(frozen=True)
class RotationJob:
    operation_id: uuid.UUID
    database_url: str
    encryption_keys: SecretStr
    target_key_id: str
    batch_rows: int = BATCH_ROWS

    def keys(self) -> KeyRing:
        return KeyRing.parse(self.encryption_keys.get_secret_value(), active_key_id=self.target_key_id)


async def rotate(job: RotationJob) -> RotationResult:
    """Move every sealed value to the job's key; what was rewritten before a stop stays rewritten."""
    keys = job.keys()
    url = plain_database_url(job.database_url)
    work = await asyncpg.connect(url, server_settings={"application_name": "crm-profile-rotate-key"})
    progress = await asyncpg.connect(url, server_settings={"application_name": "crm-profile-rotate-key"})
    try:
        operation = WorkerOperation(progress, job.operation_id)
        target = job.target_key_id.encode()
        await operation.advance(total=await _pending(work, target), stage="customer")
        rewritten = 0
        for _ in range(MAX_PASSES):
            done = 0
            for stage, step in (("customer", _customers), ("customer_attribute", _attributes),
                                ("field_change", _history), ("customer_merge", _merges)):
                done += await step(work, keys, operation, job.batch_rows, stage)
            rewritten += done
            if done == 0:
                break
        in_use = await _keys_in_use(work, target)
        retired = tuple(sorted(keys.key_ids - {job.target_key_id} - in_use))
        return RotationResult(rewritten=rewritten, retired_key_ids=retired)
    finally:
        await work.close()
        await progress.close()


async def _report(operation: WorkerOperation, done: int, stage: str) -> None:
    snapshot = await operation.advance(done=done, stage=stage)
    if snapshot.cancel_requested:
        raise OperationCancelled()


async def _pending(connection: asyncpg.Connection, target: bytes) -> int:
    """Values not yet under the target key (the progress total; merges are too few to count)."""
    sealed = " + ".join(f"({f}_sealed IS NOT NULL AND octet_length({f}_sealed) > 0)::int" for f in _CUSTOMER_FIELDS)
    customers = await connection.fetchval(
        f"SELECT coalesce(sum({sealed}), 0) FROM customer WHERE key_id NOT IN ('', $1)",  # noqa: S608 - fixed names
        target.decode())
    attributes = await connection.fetchval(
        f"SELECT count(*) FROM customer_attribute WHERE value_sealed IS NOT NULL AND {_KEY_OF.format('value_sealed')} <> $1",  # noqa: S608, E501
        target)
    history = await connection.fetchval(
        f"""SELECT coalesce(sum((old_sealed IS NOT NULL AND {_KEY_OF.format('old_sealed')} <> $1)::int
                               + (new_sealed IS NOT NULL AND {_KEY_OF.format('new_sealed')} <> $1)::int), 0)
            FROM field_change WHERE old_sealed IS NOT NULL OR new_sealed IS NOT NULL""",  # noqa: S608
        target)
    return int(customers) + int(attributes) + int(history)


def _reseal(keys: KeyRing, sealed: bytes, context: str) -> bytes:
    return keys.seal(keys.open(sealed, context=context), context=context)


async def _customers(connection: asyncpg.Connection, keys: KeyRing, operation: WorkerOperation, limit: int,
                     stage: str) -> int:
    columns = ", ".join(f"{f}_sealed" for f in _CUSTOMER_FIELDS)
    assignments = ", ".join(f"{f}_sealed = ${i + 2}" for i, f in enumerate(_CUSTOMER_FIELDS))
    update = f"UPDATE customer SET {assignments}, key_id = $7 WHERE customer_id = $1"  # noqa: S608 - fixed names
    after, total = "", 0
    while True:
        async with connection.transaction():
            rows = await connection.fetch(
                f"""SELECT customer_id, {columns} FROM customer
                    WHERE customer_id > $1 AND key_id NOT IN ('', $2)
                    ORDER BY customer_id LIMIT $3 FOR UPDATE""",  # noqa: S608 - fixed names
                after, keys.active_key_id, limit)
            if not rows:
                return total
            updates, values = [], 0
            for row in rows:
                cid = row["customer_id"]
                resealed: list[Any] = []
                for field in _CUSTOMER_FIELDS:
                    sealed = row[f"{field}_sealed"]
                    if sealed:
                        resealed.append(_reseal(keys, sealed, f"customer:{cid}:{field}"))
                        values += 1
                    else:
                        resealed.append(sealed)  # NULL, or the tombstone's empty name
                updates.append((cid, *resealed, keys.active_key_id))
            await connection.executemany(update, updates)
        after = rows[-1]["customer_id"]
        total += values
        await _report(operation, values, stage)


async def _attributes(connection: asyncpg.Connection, keys: KeyRing, operation: WorkerOperation, limit: int,
                      stage: str) -> int:
    target = keys.active_key_id.encode()
    after: tuple[str, str] = ("", "")
    total = 0
    while True:
        async with connection.transaction():
            rows = await connection.fetch(
                f"""SELECT customer_id, attribute_id, value_sealed FROM customer_attribute
                    WHERE (customer_id, attribute_id) > ($1, $2) AND value_sealed IS NOT NULL
                      AND {_KEY_OF.format('value_sealed')} <> $3
                    ORDER BY customer_id, attribute_id LIMIT $4 FOR UPDATE""",  # noqa: S608 - fixed names
                after[0], after[1], target, limit)
            if not rows:
                return total
            await connection.executemany(
                "UPDATE customer_attribute SET value_sealed = $3 WHERE customer_id = $1 AND attribute_id = $2",
                [(r["customer_id"], r["attribute_id"],
                  _reseal(keys, r["value_sealed"], f"customer:{r['customer_id']}:attributes.{r['attribute_id']}"))
                 for r in rows])
        after = (rows[-1]["customer_id"], rows[-1]["attribute_id"])
        total += len(rows)
        await _report(operation, len(rows), stage)


async def _history(connection: asyncpg.Connection, keys: KeyRing, operation: WorkerOperation, limit: int,
                   stage: str) -> int:
    target = keys.active_key_id.encode()
    after, total = 0, 0
    while True:
        async with connection.transaction():
            rows = await connection.fetch(
                f"""SELECT field_change_id, customer_id, field, old_sealed, new_sealed FROM field_change
                    WHERE field_change_id > $1
                      AND ((old_sealed IS NOT NULL AND {_KEY_OF.format('old_sealed')} <> $2)
                           OR (new_sealed IS NOT NULL AND {_KEY_OF.format('new_sealed')} <> $2))
                    ORDER BY field_change_id LIMIT $3 FOR UPDATE""",  # noqa: S608 - fixed names
                after, target, limit)
            if not rows:
                return total
            updates, values = [], 0
            for r in rows:
                context = f"customer:{r['customer_id']}:history:{r['field']}"
                pair = []
                for side in ("old_sealed", "new_sealed"):
                    sealed = r[side]
                    if sealed is not None and KeyRing.key_id_of(sealed) != keys.active_key_id:
                        sealed = _reseal(keys, sealed, context)
                        values += 1
                    pair.append(sealed)
                updates.append((r["field_change_id"], *pair))
            await connection.executemany(
                "UPDATE field_change SET old_sealed = $2, new_sealed = $3 WHERE field_change_id = $1", updates)
        after = rows[-1]["field_change_id"]
        total += values
        await _report(operation, values, stage)


async def _merges(connection: asyncpg.Connection, keys: KeyRing, operation: WorkerOperation, limit: int,
                  stage: str) -> int:
    after = uuid.UUID(int=0)
    total = 0
    while True:
        async with connection.transaction():
            rows = await connection.fetch(
                "SELECT merge_id, survivor_id, undo::text AS undo FROM customer_merge WHERE merge_id > $1"
                " ORDER BY merge_id LIMIT $2 FOR UPDATE", after, limit)
            if not rows:
                return total
            values = 0
            for row in rows:
                undo = json.loads(row["undo"])
                changed = _reseal_snapshots(keys, undo, row["survivor_id"])
                if changed:
                    values += changed
                    await connection.execute("UPDATE customer_merge SET undo = $2::jsonb WHERE merge_id = $1",
                                             row["merge_id"], json.dumps(undo))
        after = rows[-1]["merge_id"]
        total += values
        if values:
            await _report(operation, values, stage)


def _reseal_snapshots(keys: KeyRing, undo: dict[str, Any], survivor_id: str) -> int:
    """Re-seal, in place, the sealed values of a merge's survivor snapshots; how many changed."""
    changed = 0
    for key in ("survivor_before", "survivor_after"):
        snapshot = undo.get(key)
        sealed_values = snapshot.get("sealed") if isinstance(snapshot, dict) else None
        if not isinstance(sealed_values, dict):
            continue
        for column, encoded in sealed_values.items():
            if not encoded:
                continue
            sealed = base64.b64decode(encoded)
            if KeyRing.key_id_of(sealed) == keys.active_key_id:
                continue
            context = f"customer:{survivor_id}:{column.removesuffix('_sealed')}"
            sealed_values[column] = base64.b64encode(_reseal(keys, sealed, context)).decode()
            changed += 1
    return changed


async def _keys_in_use(connection: asyncpg.Connection, target: bytes) -> set[str]:
    """Key ids other than the target that some stored value still carries."""
    found: set[str] = set()
    rows = await connection.fetch("SELECT DISTINCT key_id FROM customer WHERE key_id NOT IN ('', $1)",
                                  target.decode())
    found.update(r["key_id"] for r in rows)
    for table, column in (("customer_attribute", "value_sealed"), ("field_change", "old_sealed"),
                          ("field_change", "new_sealed")):
        key_of = _KEY_OF.format(column)
        rows = await connection.fetch(
            f"SELECT DISTINCT {key_of} AS key_id FROM {table} WHERE {column} IS NOT NULL AND {key_of} <> $1",  # noqa: S608
            target)
        found.update(bytes(r["key_id"]).decode() for r in rows)
    for row in await connection.fetch("SELECT undo::text AS undo FROM customer_merge"):
        for key in ("survivor_before", "survivor_after"):
            snapshot = json.loads(row["undo"]).get(key)
            for encoded in ((snapshot or {}).get("sealed") or {}).values() if isinstance(snapshot, dict) else ():
                if encoded:
                    key_id = KeyRing.key_id_of(base64.b64decode(encoded))
                    if key_id != target.decode():
                        found.add(key_id)
    return found
