"""profile-import: bulk import of synthetic customers through UploadImportFile + ImportCustomers.

The profile service runs as its own process (`python -m crm_profile serve`, two operation worker
processes, the background matcher off as for any bulk load) on a fresh, migrated database. The
customers (1,000,000 by default; `CRM_BENCH_IMPORT_ROWS` sets another count) are written once
as a CSV file to a temporary directory, with every personal field filled (name, PRC identity
number, phone, e-mail, address).

1. Import: the file is streamed through `UploadImportFile` (1 MiB chunks) and imported with
   `ImportCustomers` (lenient), until the operation SUCCEEDED: every row validated with the
   CreateCustomer rules, encrypted and blind-indexed, staged by COPY, merged into `customer`
   (primary key and five indexes), with its history (one entry for a creation), an audit
   record and a change event.
2. Re-import (all updates): the same customers with a changed occupation, the same way.
3. Floors, in the same run, on the same database:
   - import: raw `COPY` of every row the import stored, read back (the encrypted customers,
     their history, audit and change-event rows), into copies of their tables with all their
     indexes and constraints, plus a bare loop of their field encryption and blind indexing
     (`PersonalDataVault.seal` over the same customers, timed call by call); the old floor (the
     customer rows alone into an unindexed table, plus the seal loop) is an information row;
   - re-import: `COPY` of the stored rows into an unindexed staging table plus the merge (one
     `UPDATE customer ... FROM staging`), in a transaction rolled back afterwards.

Headline: import rows/s, from the first uploaded byte to SUCCEEDED, over the import floor's
rows/s (goal >= 0.6). Beside it: the upload alone, the import without the upload, the phases
(reading, validating and staging, merging, read from the operation's progress), the merge's
steps (from the service's `import_merged` log line), and the re-import against its floor.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from google.protobuf import json_format

from bench.customers import synthetic_customers
from bench.environment import free_port, run_to_completion, size_from_env
from bench.floors import copy_floor
from bench.harness import BenchRun
from bench.import_files import mapping, write_csv
from bench.profile_service import service_env
from crm.common.v1 import operation_pb2
from crm.profile.v1 import import_pb2, operations_pb2, profile_service_pb2_grpc
from crm_profile.api import customer_messages
from crm_profile.customers.vault import PersonalDataVault
from crmkit.auth import Role, issue_token
from crmkit.crypto import BlindIndex, KeyRing

DEFAULT_ROWS = 1_000_000
ROWS_VARIABLE = "CRM_BENCH_IMPORT_ROWS"
SEED = 23
PREFIX = "BENCH"
CHUNK = 1024 * 1024
WORKERS = 2
CALL_TIMEOUT_SECONDS = 3600.0
FLOOR_TABLE = "import_copy_floor"
WARM_UP_ROWS = 10_000  # about 3 MB of CSV: two parts
FINAL = {operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
         operation_pb2.OPERATION_STATE_CANCELLED}


def row_count() -> int:
    return size_from_env(ROWS_VARIABLE, DEFAULT_ROWS)


async def run(bench: BenchRun) -> None:
    rows = row_count()
    jwt_secret = secrets.token_urlsafe(48)
    token = issue_token(secret=jwt_secret, subject="bench-loader", roles=[Role.ADMIN], lifetime_seconds=6 * 3600)
    metadata = (("authorization", f"Bearer {token}"),)
    with tempfile.TemporaryDirectory(prefix="crm-bench-import-") as work:
        first, second = Path(work) / "customers.csv", Path(work) / "customers-changed.csv"
        bench.note(f"writing {rows:,} synthetic customers as CSV (twice: as they are, and changed)")
        write_csv(first, synthetic_customers(rows, seed=SEED, id_prefix=PREFIX))
        write_csv(second, synthetic_customers(rows, seed=SEED, id_prefix=PREFIX), occupation="bench re-import")
        bench.note(f"files of {first.stat().st_size / 1e6:,.0f} MB")
        async with bench.database() as database_url:
            port = free_port()
            env = {**service_env(database_url, port, jwt_secret), "CRM_PROFILE_MATCHER_ENABLED": "false",
                   "CRM_PROFILE_OPERATION_WORKERS": str(WORKERS), "CRM_ACCESS_LOG": "false"}
            bench.note("migrating a fresh database")
            await run_to_completion([sys.executable, "-m", "crm_profile", "migrate"], env=env,
                                    log_path=bench.log_path("migrate"))
            async with (bench.server("profile", [sys.executable, "-m", "crm_profile", "serve"], env=env,
                                     port=port) as address,
                        grpc.aio.insecure_channel(address, options=[
                            ("grpc.max_send_message_length", 4 * CHUNK)]) as channel):
                stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
                await warm_up(bench, stub, metadata)
                imported = await import_file(bench, stub, metadata, first, label="import")
                check(imported.result, inserted=rows)
                import_floor = await floor_of_import(bench, database_url, env, rows)
                total = imported.upload_seconds + imported.import_seconds
                bench.emit("import_rows_per_s", rows / total, "rows/s", floor=import_floor, headline=True)
                report_parts(bench, imported, rows, "import")

                changed = await import_file(bench, stub, metadata, second, label="re-import")
                check(changed.result, updated=rows)
                reimport_floor = await floor_of_reimport(bench, database_url, rows)
                total = changed.upload_seconds + changed.import_seconds
                bench.emit("reimport_rows_per_s", rows / total, "rows/s", floor=reimport_floor)
                report_parts(bench, changed, rows, "reimport")
                report_stage_steps(bench, rows)
                report_merge_steps(bench, rows)
                bench.emit("rows", rows, "rows")


@dataclass(frozen=True)
class Imported:
    result: import_pb2.ImportCustomersResult
    size_bytes: int
    upload_seconds: float
    import_seconds: float
    phases: dict[str, float]


async def warm_up(bench: BenchRun, stub: profile_service_pb2_grpc.ProfileServiceStub,
                  metadata: tuple[tuple[str, str], ...]) -> None:
    """A small import first: the worker processes are spawned on first use, as in production
    after a start; the measured imports find them running. The file is large enough to be
    staged in two parts (imports.worker.MIN_PART_BYTES each), so both processes start: a one-row
    file started only one, and the measured import paid the other's start-up (a few seconds)."""
    path = Path(tempfile.mkdtemp(prefix="crm-bench-warm-")) / "warm.csv"
    write_csv(path, synthetic_customers(WARM_UP_ROWS, seed=1, id_prefix="WARM"))
    await import_file(bench, stub, metadata, path, label="warm-up", quiet=True)


async def import_file(bench: BenchRun, stub: profile_service_pb2_grpc.ProfileServiceStub,
                      metadata: tuple[tuple[str, str], ...], path: Path, *, label: str, quiet: bool = False
                      ) -> Imported:
    size, digest = await asyncio.to_thread(_size_and_sha256, path)
    if not quiet:
        bench.note(f"{label}: uploading {size / 1e6:,.0f} MB")
    started = time.perf_counter()
    upload = (await stub.UploadImportFile(_upload_messages(path, size, digest), metadata=metadata,
                                          timeout=CALL_TIMEOUT_SECONDS)).upload
    uploaded = time.perf_counter()
    request = import_pb2.ImportCustomersRequest(upload=upload.name, mode=import_pb2.IMPORT_MODE_LENIENT,
                                                source_system="bench-load")
    json_format.ParseDict(mapping(), request.mapping)
    operation = (await stub.ImportCustomers(request, metadata=metadata, timeout=60)).operation
    final, phases = await _watch(stub, metadata, operation.name, started=uploaded)
    finished = time.perf_counter()
    if final.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        raise RuntimeError(f"{label} ended {operation_pb2.OperationState.Name(final.state)}: {final.error.message}")
    result = import_pb2.ImportCustomersResult()
    final.response.Unpack(result)
    if not quiet:
        bench.note(f"{label}: upload {uploaded - started:.1f}s, import {finished - uploaded:.1f}s "
                   f"({', '.join(f'{k} {v:.1f}s' for k, v in phases.items())}); inserted {result.inserted_count:,}, "
                   f"updated {result.updated_count:,}, unchanged {result.unchanged_count:,}, "
                   f"bad {result.bad_row_count:,}")
    return Imported(result, size, uploaded - started, finished - uploaded, phases)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while block := file.read(16 * CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


async def _upload_messages(path: Path, size: int, digest: str) -> AsyncIterator[import_pb2.UploadImportFileRequest]:
    yield import_pb2.UploadImportFileRequest(header=import_pb2.UploadImportFileHeader(
        file_name=path.name, format=import_pb2.IMPORT_FILE_FORMAT_CSV, size_bytes=size, sha256=digest))
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield import_pb2.UploadImportFileRequest(chunk=chunk)


async def _watch(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: tuple[tuple[str, str], ...],
                 name: str, *, started: float) -> tuple[operation_pb2.Operation, dict[str, float]]:
    """Follow the operation to its end; how long it spent in each stage (as the bench saw it)."""
    phases: dict[str, float] = {}
    stage, since = "pending", started
    last = None
    while last is None or last.state not in FINAL:
        async for update in stub.WatchOperation(operations_pb2.WatchOperationRequest(name=name), metadata=metadata,
                                                timeout=CALL_TIMEOUT_SECONDS):
            last = update.operation
            now = time.perf_counter()
            current = last.progress.stage or stage
            if current != stage or last.state in FINAL:
                phases[stage] = phases.get(stage, 0.0) + now - since
                stage, since = current, now
    assert last is not None
    return last, phases


def check(result: import_pb2.ImportCustomersResult, *, inserted: int = 0, updated: int = 0) -> None:
    if (result.inserted_count, result.updated_count, result.bad_row_count) != (inserted, updated, 0):
        raise AssertionError(f"expected {inserted} inserted and {updated} updated with no bad row: {result}")


# What an import writes per customer besides the customer row, and how to find this run's rows:
# the floor COPYs each into a copy of its table with every index and constraint.
WRITTEN_TABLES = (("customer", "customer_id LIKE $1"), ("field_change", "customer_id LIKE $1"),
                  ("audit_record", "resource_name LIKE 'customers/' || $1"),
                  ("outbox_event", "resource_name LIKE 'customers/' || $1"))


async def floor_of_import(bench: BenchRun, database_url: str, env: dict[str, str], rows: int) -> float:
    """The necessary work of the import, done with the fastest primitives: COPY of the rows the
    import stored (customers, their history, audit and change-event rows, read back) into copies
    of their tables with all their indexes and constraints, plus the bare loop of the same
    customers' field encryption and blind indexing; rows/s. For information, the old floor: the
    customer rows alone into an unindexed table."""
    pattern = f"{PREFIX}%"
    connection = await asyncpg.connect(database_url)
    try:
        written = {table: await connection.fetch(f"SELECT * FROM {table} WHERE {where}", pattern)  # noqa: S608
                   for table, where in WRITTEN_TABLES}
        for table, _ in WRITTEN_TABLES:
            await connection.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}_{table}")
            await connection.execute(f"CREATE TABLE {FLOOR_TABLE}_{table} (LIKE {table} INCLUDING ALL)")
        await connection.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        await connection.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE customer)")
    finally:
        await connection.close()
    if len(written["customer"]) != rows:
        raise AssertionError(f"{len(written['customer'])} stored customers, expected {rows}")
    seconds, parts = 0.0, []
    for table, found in written.items():
        timing = await copy_floor(database_url, table=f"{FLOOR_TABLE}_{table}", columns=list(found[0].keys()),
                                  records=[tuple(r) for r in found])
        seconds += timing.seconds
        parts.append(f"{table} {len(found):,} rows {timing.seconds:.1f}s")
        bench.emit(f"floor_copy_{table}_rows_per_s", timing.rows_per_second, "rows/s")
    unindexed = await copy_floor(database_url, table=FLOOR_TABLE, columns=list(written["customer"][0].keys()),
                                 records=[tuple(r) for r in written["customer"]])
    del written
    sealing = await asyncio.to_thread(_seal_loop, env, rows)
    bench.note(f"floor: COPY into indexed copies ({', '.join(parts)}), "
               f"encryption and blind indexing {sealing:.1f}s ({rows / sealing:,.0f} rows/s)")
    bench.emit("floor_seal_rows_per_s", rows / sealing, "rows/s")
    bench.emit("old_floor_unindexed_copy_and_seal_rows_per_s", rows / (unindexed.seconds + sealing), "rows/s")
    connection = await asyncpg.connect(database_url)
    try:
        for table, _ in WRITTEN_TABLES:
            await connection.execute(f"DROP TABLE {FLOOR_TABLE}_{table}")
        await connection.execute(f"DROP TABLE {FLOOR_TABLE}")
    finally:
        await connection.close()
    return rows / (seconds + sealing)


def _seal_loop(env: dict[str, str], rows: int) -> float:
    """Seconds spent in `PersonalDataVault.seal` over the benchmark's customers (5 AES-GCM seals,
    3 HMAC-SHA256 indexes each), with the service's own keys; only the calls are timed."""
    keys = KeyRing.parse(env["CRM_PROFILE_ENCRYPTION_KEYS"], active_key_id=env["CRM_PROFILE_ACTIVE_KEY_ID"])
    vault = PersonalDataVault(keys, BlindIndex(base64.b64decode(env["CRM_PROFILE_BLIND_INDEX_KEY"])))
    spent = 0.0
    clock = time.perf_counter
    for proto in synthetic_customers(rows, seed=SEED, id_prefix=PREFIX):
        customer = customer_messages.to_domain(proto)
        started = clock()
        vault.seal(customer)
        spent += clock() - started
    return spent


async def floor_of_reimport(bench: BenchRun, database_url: str, rows: int) -> float:
    """COPY of the stored rows into an unindexed staging table, then one UPDATE ... FROM it:
    rows/s of the two together, rolled back."""
    connection = await asyncpg.connect(database_url)
    try:
        stored = await connection.fetch("SELECT * FROM customer WHERE customer_id LIKE $1", f"{PREFIX}%")
        columns = list(stored[0].keys())  # a Record iterates over its values
        records = [tuple(r[c] for c in columns) for r in stored]
        del stored
        changed = [c for c in columns if c not in ("customer_id", "version", "created_at", "updated_at")]
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute("CREATE TEMP TABLE reimport_floor (LIKE customer) ON COMMIT DROP")
            started = time.perf_counter()
            await connection.copy_records_to_table("reimport_floor", columns=columns, records=records)
            copied = time.perf_counter()
            result = await connection.execute(
                f"UPDATE customer c SET ({', '.join(changed)}) = ({', '.join('s.' + n for n in changed)}),"  # noqa: S608
                " version = c.version + 1, updated_at = now()"
                " FROM reimport_floor s WHERE c.customer_id = s.customer_id")
            merged = time.perf_counter()
        finally:
            await transaction.rollback()
    finally:
        await connection.close()
    if int(result.split()[-1]) != rows:
        raise AssertionError(f"the floor's merge updated {result}")
    bench.note(f"re-import floor: COPY {copied - started:.1f}s, merge {merged - copied:.1f}s")
    bench.emit("reimport_floor_copy_s", copied - started, "s")
    bench.emit("reimport_floor_merge_s", merged - copied, "s")
    return rows / (merged - started)


def report_parts(bench: BenchRun, imported: Imported, rows: int, name: str) -> None:
    bench.emit(f"{name}_upload_mb_per_s", imported.size_bytes / 1e6 / imported.upload_seconds, "MB/s")
    bench.emit(f"{name}_without_upload_rows_per_s", rows / imported.import_seconds, "rows/s")
    for phase, seconds in imported.phases.items():
        bench.emit(f"{name}_{phase}_s", seconds, "s")


def report_stage_steps(bench: BenchRun, rows: int) -> None:
    """The staging steps as each worker process logged them (`import_staged`, one line per part),
    import then re-import: each step's seconds averaged over the parts (what one process spent),
    and the per-row Python of `validate_and_seal` (mapping, rules, sealing, event payload,
    history) in microseconds of one process's wall time."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for event in _service_events(bench, "import_staged"):
        parts.setdefault(event["operation_id"], []).append(event)
    measured = [staged for staged in parts.values() if sum(p.get("rows", 0) for p in staged) == rows]
    for name, staged in zip(("import", "reimport"), measured[-2:], strict=False):
        steps: dict[str, float] = {}
        for part in staged:
            for step, seconds in part.get("seconds", {}).items():
                steps[step] = steps.get(step, 0.0) + seconds
        for step, seconds in steps.items():
            bench.emit(f"{name}_stage_{step}_s", seconds / len(staged), "s")
        if "validate_and_seal" in steps:
            bench.emit(f"{name}_stage_validate_and_seal_us_per_row", steps["validate_and_seal"] / rows * 1e6, "us")


def report_merge_steps(bench: BenchRun, rows: int) -> None:
    """The merge's steps as the service logged them (`import_merged`), import then re-import."""
    merges = [event for event in _service_events(bench, "import_merged")
              if event.get("inserted", 0) + event.get("updated", 0) == rows]
    for name, event in zip(("import", "reimport"), merges[-2:], strict=False):
        for step, seconds in event.get("seconds", {}).items():
            bench.emit(f"{name}_merge_{step}_s", seconds, "s")


def _service_events(bench: BenchRun, name: str) -> list[dict[str, Any]]:
    """The service log's JSON lines of one event, in order."""
    found = []
    for line in bench.log_path("profile").read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found
