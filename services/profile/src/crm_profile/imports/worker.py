"""The import's steps that run in worker processes (spawned; see crmkit.operations).

1. `plan`: copy the upload from the database to a local file (the import's own copy, so the
   upload may expire meanwhile), check its SHA-256, split it into parts, create the scratch
   tables.
2. `stage`: one call per part, in parallel: read the rows, convert them through the mapping,
   validate each with the same rules as CreateCustomer (on the stored customer with the row's
   values over it, for existing customers), encrypt and blind-index through the same vault,
   decide insert / update / unchanged / bad, and COPY the results into the scratch tables.
   Progress is reported per batch, where the cancel flag is also read.
3. `merge`: one transaction: mark duplicate ids, count, then (unless strict with bad rows,
   over `max_bad_rows` or `validate_only`) insert and update the customers, their attribute
   values, field history, audit records and change events, and mark the operation SUCCEEDED,
   all committed together.

Each step opens its own asyncpg connection and builds its own vault from the settings it is
given: nothing but picklable values crosses the process boundary.

Who opens the transaction: these steps are crmkit.db's documented exception for COPY-based bulk
work (`Database.raw()`-style plain asyncpg connections, hand-written SQL). Each step opens its
own connection and its own transactions and commits them itself: `stage` COPYs into the
UNLOGGED scratch tables (nothing there is visible to anyone else, so a failure only leaves
scratch that the coordinator or housekeeping drops), and `merge` writes everything the import
changes, with the operation's success (`complete_in`), in one `connection.transaction()`.
Progress goes through `WorkerOperation`, the kit's operation machinery, on its own connection.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from pydantic import SecretStr

from crm.profile.v1 import import_pb2
from crm_profile.attributes.model import AttributeDefinition
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import ACTIVE, Customer
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.history import rules as history_rules
from crm_profile.history.model import ChangeSource, FieldChangeKind
from crm_profile.imports import conversion, reading, repository, rules
from crm_profile.imports.model import BAD, FORMAT_CSV, INSERT, UNCHANGED, UPDATE, BadRow, ImportResult, ImportSpec
from crm_profile.imports.repository import CHANGE_COLUMNS, STORED_COLUMNS, VALUE_COLUMNS, Scratch, StoredCustomers
from crmkit.crypto import BlindIndex, KeyRing
from crmkit.errors import Aborted, FailedPrecondition, InvalidArgument
from crmkit.logs import get_logger
from crmkit.operations import OperationCancelled, OperationFailed, WorkerOperation, complete_in
from crmkit.settings import plain_database_url

log = get_logger("crm.profile.imports")

BATCH_ROWS = 2000
MIN_PART_BYTES = 1024 * 1024
FILE_NAME = "upload"
WORK_COLUMNS = ("line", "action", "customer_id", "expected_version", "problems", "payload")
# A file's new customers mostly fill the same fields: each distinct list of them is rendered once
# per part (up to this many lists).
_CREATED_LISTS = 256


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs from the service's settings (secrets stay SecretStr on the way)."""

    database_url: str
    encryption_keys: SecretStr
    active_key_id: str
    blind_index_key: SecretStr

    def vault(self) -> PersonalDataVault:
        keys = KeyRing.parse(self.encryption_keys.get_secret_value(), active_key_id=self.active_key_id)
        return PersonalDataVault(keys, BlindIndex(base64.b64decode(self.blind_index_key.get_secret_value())))

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(plain_database_url(self.database_url),
                                     server_settings={"application_name": "crm-profile-import"})


@dataclasses.dataclass(frozen=True)
class ImportJob:
    """One import, as every step sees it."""

    operation_id: Any  # uuid.UUID
    upload_id: Any  # uuid.UUID
    format: int
    spec: ImportSpec
    settings: WorkerSettings
    work_dir: str
    actor: str
    trace_id: str
    stamp: datetime  # the import's time: created_at / updated_at of what it writes
    enum_values: conversion.EnumValues
    enum_names: history_rules.EnumNames
    definitions: Mapping[str, AttributeDefinition]
    feed_payload: Callable[[Customer], Message]
    error_domain: str
    parts: int = 1

    @property
    def path(self) -> Path:
        return Path(self.work_dir) / FILE_NAME

    @property
    def origin(self) -> str:
        return f"operations/{self.operation_id}"


@dataclasses.dataclass(frozen=True)
class Plan:
    columns: list[str]
    parts: list[reading.Part]
    estimated_rows: int


@dataclasses.dataclass(frozen=True)
class PartJob:
    job: ImportJob
    part: reading.Part
    columns: list[str]


# --- 1. plan -------------------------------------------------------------------------------------------


async def plan(job: ImportJob) -> Plan:
    connection = await job.settings.connect()
    try:
        upload = await repository.get_upload(connection, job.upload_id)
        if upload is None:
            raise FailedPrecondition("the upload expired before the import began", reason="UPLOAD_EXPIRED")
        digest = await repository.download(connection, job.upload_id, job.path)
        if digest != upload.sha256:
            raise FailedPrecondition("the stored upload does not match its SHA-256; upload it again",
                                     reason="UPLOAD_CORRUPT")
        await Scratch(job.operation_id).create(connection)
    finally:
        await connection.close()
    if job.format == FORMAT_CSV:
        layout = reading.plan_csv(job.path, job.spec.csv, parts=job.parts, min_part_bytes=MIN_PART_BYTES)
        return Plan(layout.columns, layout.parts, layout.estimated_rows)
    layout = reading.plan_parquet(job.path, parts=job.parts)
    needed = sorted({c.column for c in job.spec.columns} | ({job.spec.id_rule.column} - {""}))
    return Plan([c for c in layout.columns if c in needed], layout.parts, layout.estimated_rows)


# --- 2. stage ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Staged:
    work: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    values: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    changes: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    bad: int = 0


class _Stager:
    """Turns mapped rows into staged rows; holds what every row of the part shares."""

    def __init__(self, job: ImportJob, columns: Sequence[str]) -> None:
        self.job = job
        self.vault = job.settings.vault()
        self.stored = StoredCustomers(self.vault)
        self.values = AttributeRepository(self.vault)
        self.mapper = conversion.RowMapper(job.spec, columns, enum_values=job.enum_values,
                                           definitions=job.definitions)
        self.today = job.stamp.date()
        self.row_columns = list(STORED_COLUMNS)
        # changed_at, actor, source, source_system, origin: the same for every change of the import
        self._change_columns = (job.stamp, job.actor, int(ChangeSource.IMPORT),
                                job.spec.source_system, job.origin)
        self._created: dict[tuple[str, ...], str] = {}

    def read(self, batch: Sequence[reading.Row]) -> list[conversion.MappedRow | reading.Row]:
        """The batch's rows through the mapping; a malformed row stays as it was read."""
        good = [r for r in batch if r.cells is not None]
        mapped = iter(self.mapper.read_batch([r.line for r in good], [r.cells for r in good],  # type: ignore[misc]
                                             text_only=self.job.format == FORMAT_CSV))
        return [next(mapped) if r.cells is not None else r for r in batch]

    def stage_batch(self, mapped: Sequence[conversion.MappedRow | reading.Row], current: Mapping[str, Customer],
                    out: _Staged) -> None:
        """Stage a batch read by `read`; `current` holds the stored customers its ids name."""
        for m in mapped:
            if isinstance(m, reading.Row):
                self.malformed(m, out)
            else:
                self.stage(m, current.get(m.customer_id), out)

    def stage(self, row: conversion.MappedRow, current: Customer | None, out: _Staged) -> None:
        if current is not None and current.state != ACTIVE:
            out.bad += 1
            out.work.append(self._bad(row.line, row.customer_id, [BadRow(
                row.line, self.mapper.column_of.get("customer_id", ""), "customer_id", "CUSTOMER_NOT_ACTIVE",
                "customer_id names a customer merged into another or erased: import into the surviving one")]))
            return
        if current is None:
            customer = self.mapper.new_customer(row, today=self.today, source_system=self.job.spec.source_system)
        else:
            customer = self.mapper.updated_customer(row, current)
        customer = customer_rules.normalise(customer)
        violations = _violations(customer_rules.validate(customer, today=self.today))
        self.mapper.check_attributes(row, customer, today=self.today)  # adds to row.problems
        problems = row.problems
        if violations:
            problems = problems + rules.bad_rows(row.line, violations, column_of=self.mapper.column_of,
                                                 given=row.values, skip=conversion.failed_targets(row))
        if problems:
            valid_id = customer_rules.CUSTOMER_ID.fullmatch(row.customer_id) is not None
            out.bad += 1
            out.work.append(self._bad(row.line, row.customer_id if valid_id else None, problems))
            return
        if current is not None and conversion.same_customer(customer, current):
            out.work.append((row.line, UNCHANGED, row.customer_id, current.version, None, None))
            return
        # `customer` is normalise()'s fresh copy: set the stored bookkeeping on it directly
        written = customer
        written.version = 1 if current is None else current.version + 1
        written.created_at = self.job.stamp if current is None else current.created_at
        written.updated_at = self.job.stamp
        stored = self.stored.to_values(written)
        payload = any_pb2.Any()
        payload.Pack(self.job.feed_payload(written))
        out.work.append((row.line, INSERT if current is None else UPDATE,
                         current.version if current is not None else None, None, payload.SerializeToString(),
                         *stored))
        before = current.attributes if current is not None else {}
        for key, value in written.attributes.items():
            if key not in before or before[key] != value:
                cells = self.values._value_row(written.customer_id, key, value)
                out.values.append((row.line, *(cells[c] for c in VALUE_COLUMNS[1:])))
        self._history(row.line, current, written, out)

    def _history(self, line: int, before: Customer | None, after: Customer, out: _Staged) -> None:
        """The history entries as FieldHistory.record writes them: one creation entry for a new
        customer (no values, no confirmations: history.rules), the field changes of an update
        (personal values sealed)."""
        cid = after.customer_id
        common = self._change_columns
        if before is None:
            paths = tuple(history_rules.filled_paths(after))
            listed = self._created.get(paths)
            if listed is None:
                listed = history_rules.created_text(paths)
                if len(self._created) < _CREATED_LISTS:
                    self._created[paths] = listed
            out.changes.append((line, cid, history_rules.RECORD, int(FieldChangeKind.SET), None,
                                listed, None, None, False, *common))
            return
        seal = self.vault.seal_field
        for change in history_rules.changes(before, after, self.job.enum_names):
            if change.personal:
                context = f"history:{change.field}"
                out.changes.append((line, cid, change.field, int(change.kind), None, None,
                                    seal(cid, context, change.old) if change.old else None,
                                    seal(cid, context, change.new) if change.new else None, True, *common))
            else:
                out.changes.append((line, cid, change.field, int(change.kind), change.old or None,
                                    change.new or None, None, None, False, *common))

    def malformed(self, row: reading.Row, out: _Staged) -> None:
        out.bad += 1
        out.work.append(self._bad(row.line, None, [BadRow(row.line, "", "", "MALFORMED_ROW",
                                                          f"the row {row.malformed}")]))

    @staticmethod
    def _bad(line: int, customer_id: str | None, problems: Sequence[BadRow]) -> tuple[Any, ...]:
        entries = [(p.column, p.field, p.reason, p.description) for p in problems]
        return (line, BAD, customer_id, None, repository.problems_json(entries), None)


def _violations(violations: Any) -> Sequence[Any]:
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return error.violations
    return ()


def _rows(job: ImportJob, part: reading.Part, columns: Sequence[str]) -> Iterator[reading.Row]:
    if job.format == FORMAT_CSV:
        return reading.csv_rows(job.path, part, job.spec.csv, columns=len(columns))
    return reading.parquet_rows(job.path, part, columns=columns)


async def stage(part_job: PartJob) -> int:
    """Stage one part; the number of rows it read."""
    job = part_job.job
    stager = _Stager(job, part_job.columns)
    scratch = Scratch(job.operation_id)
    rows = _rows(job, part_job.part, part_job.columns)
    connection = await job.settings.connect()
    progress = WorkerOperation(connection, job.operation_id)
    seconds = dict.fromkeys(("read", "lookup", "validate_and_seal", "copy", "progress"), 0.0)
    clock = _Lap()
    total = 0
    try:
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            mapped = stager.read(batch)
            ids = [m.customer_id for m in mapped if isinstance(m, conversion.MappedRow) and m.customer_id]
            seconds["read"] += clock.lap()
            current = await stager.stored.existing(connection, ids) if ids else {}
            seconds["lookup"] += clock.lap()
            out = _Staged()
            stager.stage_batch(mapped, current, out)
            written = [r for r in out.work if r[1] in (INSERT, UPDATE)]
            others = [r for r in out.work if r[1] not in (INSERT, UPDATE)]
            seconds["validate_and_seal"] += clock.lap()
            if written:
                columns = [c for c in WORK_COLUMNS if c != "customer_id"] + stager.row_columns
                await repository.copy(connection, scratch.work, columns, written)
            await repository.copy(connection, scratch.work, WORK_COLUMNS, others)
            await repository.copy(connection, scratch.values, VALUE_COLUMNS, out.values)
            await repository.copy(connection, scratch.changes, CHANGE_COLUMNS, out.changes)
            seconds["copy"] += clock.lap()
            total += len(batch)
            snapshot = await progress.advance(done=len(batch), failed=out.bad)
            seconds["progress"] += clock.lap()
            if snapshot.cancel_requested:
                raise OperationCancelled()
            spec = job.spec
            if spec.max_bad_rows and snapshot.failed > spec.max_bad_rows and not spec.validate_only:
                return total  # the merge fails the import; reading on would only cost time
    finally:
        await connection.close()
        log.info("import_staged", operation_id=str(job.operation_id), first_line=part_job.part.first_line,
                 rows=total, seconds={k: round(v, 3) for k, v in seconds.items()})
    return total


# --- 3. merge ------------------------------------------------------------------------------------------


async def merge(job: ImportJob) -> Message:
    """Decide and (maybe) write, in one transaction with the operation's final state."""
    scratch = Scratch(job.operation_id)
    connection = await job.settings.connect()
    reporter = await job.settings.connect()
    progress = WorkerOperation(reporter, job.operation_id)
    timings: dict[str, float] = {}
    clock = _Lap()
    try:
        await progress.raise_if_cancelled()
        async with connection.transaction():
            duplicates = await repository.mark_duplicates(connection, scratch, id_column=job.spec.id_rule.column)
            if duplicates:
                await progress.advance(failed=duplicates)
            result = await _result(connection, scratch)
            decision = rules.outcome(job.spec, bad_row_count=result.bad_row_count)
            timings["check"] = clock.lap()
            if decision is rules.Outcome.BAD_ROWS:
                raise _failure(result, "the file has bad rows and the import is strict: nothing was loaded",
                               "IMPORT_HAS_BAD_ROWS", job.error_domain)
            if decision is rules.Outcome.TOO_MANY_BAD_ROWS:
                raise _failure(result, f"more than {job.spec.max_bad_rows} rows are bad: nothing was loaded",
                               "TOO_MANY_BAD_ROWS", job.error_domain)
            if decision is rules.Outcome.WRITE:
                await progress.advance(stage="merging")
                await progress.raise_if_cancelled()
                await _write(connection, scratch, job, result, timings)
                clock.lap()
            response = _result_proto(result)
            await progress.advance(stage="done" if decision is rules.Outcome.WRITE else "validated")
            await complete_in(connection, job.operation_id, response)
        timings["commit"] = clock.lap()
        log.info("import_merged", operation_id=str(job.operation_id), inserted=result.inserted,
                 updated=result.updated, unchanged=result.unchanged, bad_rows=result.bad_row_count,
                 seconds={k: round(v, 3) for k, v in timings.items()})
        return response
    finally:
        await connection.close()
        await reporter.close()


async def _result(connection: asyncpg.Connection, scratch: Scratch) -> ImportResult:
    counted = await repository.counts(connection, scratch)
    entries: list[BadRow] = []
    async for line, problems in repository.bad_entries(connection, scratch, limit=rules.MAX_BAD_ROW_ENTRIES + 1):
        entries.extend(BadRow(line, column, field, reason, description) for column, field, reason, description
                       in problems)
    kept, truncated = rules.first_entries(entries)
    return ImportResult(inserted=counted.get(INSERT, 0), updated=counted.get(UPDATE, 0),
                        unchanged=counted.get(UNCHANGED, 0), bad_row_count=counted.get(BAD, 0),
                        bad_rows=kept, bad_rows_truncated=truncated)


async def _write(connection: asyncpg.Connection, scratch: Scratch, job: ImportJob, result: ImportResult,
                 timings: dict[str, float]) -> None:
    clock = _Lap()
    if result.inserted or result.updated:
        columns = list(STORED_COLUMNS)
        inserted, updated = await repository.write_customers(connection, scratch, columns=columns,
                                                             stamp=job.stamp)
        if (inserted, updated) != (result.inserted, result.updated):
            raise Aborted("customers in the file were created or changed while the import ran; run it again",
                          reason="CONCURRENT_CHANGE")
    timings["customers"] = clock.lap()
    await repository.write_values(connection, scratch, stamp=job.stamp)
    timings["attribute_values"] = clock.lap()
    await repository.write_history(connection, scratch)
    timings["history"] = clock.lap()
    await repository.write_confirmations(connection, scratch, stamp=job.stamp)
    timings["confirmations"] = clock.lap()
    await repository.write_audit(connection, scratch, actor=job.actor, trace_id=job.trace_id,
                                 justification=f"{job.origin} source_system={job.spec.source_system}")
    timings["audit"] = clock.lap()
    await repository.write_events(connection, scratch, actor=job.actor, trace_id=job.trace_id)
    timings["events"] = clock.lap()


class _Lap:
    """Seconds since the previous lap (or since it was made)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        return elapsed


def _failure(result: ImportResult, message: str, reason: str, domain: str) -> OperationFailed:
    """INVALID_ARGUMENT with the reason, and the result (bad rows, nothing loaded) among the details."""
    details = []
    for detail in (error_details_pb2.ErrorInfo(reason=reason, domain=domain),
                   _result_proto(rules.failed_result(result))):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=details)
    return OperationFailed(status.SerializeToString())


def _result_proto(result: ImportResult) -> import_pb2.ImportCustomersResult:
    return import_pb2.ImportCustomersResult(
        inserted_count=result.inserted, updated_count=result.updated, unchanged_count=result.unchanged,
        bad_row_count=result.bad_row_count, bad_rows_truncated=result.bad_rows_truncated,
        bad_rows=[import_pb2.BadRow(line=b.line, column=b.column, field=b.field, reason=b.reason,
                                    description=b.description) for b in result.bad_rows])
