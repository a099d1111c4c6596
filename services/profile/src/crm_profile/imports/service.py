"""Bulk import orchestration: uploads, starting an import, and coordinating its worker steps.

Who opens the transaction (crmkit.db's rule). `upload` and `start` run in the unit of work
their servicer opens and hands in as `uow=`, and never open or commit one: `upload` stores a
client-streamed file in it (a bad size or digest rolls it all back); `start` checks the
request, the upload and the file's columns, then creates the operation (PENDING) in it with its
idempotency key, and returns `Started`, whose `launch` the servicer calls once that unit of
work has committed. The coordinator (`_run`, in this process) calls the worker steps: plan,
stage the parts in parallel, merge. Those steps are the documented `Database.raw()` exception
for COPY-based bulk work: each opens its own asyncpg connection in its worker process and its
own transactions (see `worker`); the merge commits the customers, their history, audit
records, change events and the operation's success together. Housekeeping is background work
and opens its own unit of work per round.

Idempotency of an upload: the stream has no single request message, so what is fingerprinted
for `header.request_id` is the first message's header (file name, format, size and SHA-256,
with the key cleared): a key reused for another file is INVALID_ARGUMENT (REQUEST_ID_REUSED).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from opentelemetry import trace

from crm_profile.attributes.repository import AttributeRepository
from crm_profile.customers.model import Customer
from crm_profile.history.rules import EnumNames
from crm_profile.imports import reading, repository, rules, worker
from crm_profile.imports.conversion import EnumValues
from crm_profile.imports.model import FORMAT_CSV, KIND, ImportSpec, Upload, UploadHeader
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FieldViolation, InvalidArgument, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, name_of, parse_name
from crmkit.resources import ResourceName

log = get_logger("crm.profile.imports")

UPLOAD = ResourceName("importUploads/{upload_id}")
HEAD_CHUNKS = 4  # a CSV header must end within the first 4 MiB
HOUSEKEEPING_SECONDS = 300.0
# Describes an import for Operation.metadata (supplied by the API layer: it makes the proto).
Describe = Callable[[ImportSpec, Upload, Sequence[str]], Message]


@dataclasses.dataclass(frozen=True)
class ImportLimits:
    max_upload_bytes: int = rules.MAX_UPLOAD_BYTES
    upload_area_bytes: int = 5 * rules.MAX_UPLOAD_BYTES
    # Parts of a file staged in parallel (at most the worker pool's size).
    parallel_parts: int = 2


class Imports:
    """The bulk import use cases. Methods are keyword-only and take the calling principal."""

    def __init__(
        self, *, db: Database, idempotency: IdempotencyKeys, operations: Operations, runner: OperationRunner,
        attributes: AttributeRepository, settings: worker.WorkerSettings, enum_values: EnumValues,
        enum_names: EnumNames, feed_payload: Callable[[Customer], Message], describe: Describe, error_domain: str,
        limits: ImportLimits = ImportLimits(),
    ) -> None:
        self._db = db
        self._idempotency = idempotency
        self._operations = operations
        self._runner = runner
        self._attributes = attributes
        self._settings = settings
        self._enum_values = enum_values
        self._enum_names = enum_names
        self._feed_payload = feed_payload
        self._describe = describe
        self._domain = error_domain
        self._limits = limits
        self._housekeeping: asyncio.Task[None] | None = None

    # --- uploads ---------------------------------------------------------------------------------------

    async def upload(self, *, uow: UnitOfWork, header: UploadHeader, chunks: AsyncIterator[bytes],
                     request: Message, actor: Principal) -> Upload:
        """Store the file in `uow`. `request` is what identifies the upload for its idempotency
        key: the stream's header message (module docstring)."""
        # Expired uploads do not count against the area; housekeeping deletes them (not done
        # here: a delete held for a whole upload's stream would make concurrent uploads wait).
        used = await repository.upload_area_used(uow)
        rules.check_header(header, max_bytes=self._limits.max_upload_bytes,
                           area_free=self._limits.upload_area_bytes - used)
        upload_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=header.request_id, request=request, method="UploadImportFile",
            resource_name=f"importUploads/{upload_id}",
            replay=lambda name: self._earlier_upload(uow=uow, earlier=name, header=header), field="header.request_id")
        if replayed is not None:
            return replayed
        await repository.insert_upload(uow, upload_id=upload_id, header=header, creator=actor.subject,
                                       expire_time=datetime.now(UTC) + rules.UPLOAD_TTL)
        digest, received, seq = hashlib.sha256(), 0, 0
        pending = bytearray()
        async for chunk in chunks:
            rules.check_chunk(chunk, received=received, declared=header.size_bytes)
            received += len(chunk)
            digest.update(chunk)
            pending += chunk
            while len(pending) >= rules.MAX_CHUNK_BYTES:
                await repository.insert_chunk(uow, upload_id=upload_id, seq=seq,
                                              data=bytes(pending[:rules.MAX_CHUNK_BYTES]))
                del pending[:rules.MAX_CHUNK_BYTES]
                seq += 1
        if pending:
            await repository.insert_chunk(uow, upload_id=upload_id, seq=seq, data=bytes(pending))
        rules.check_complete(received=received, declared=header.size_bytes, sha256=digest.hexdigest(),
                             declared_sha256=header.sha256)
        stored = await repository.uploaded(uow, upload_id)
        assert stored is not None
        log.info("import_uploaded", upload_id=str(upload_id), size_bytes=received)
        return stored

    async def _earlier_upload(self, *, uow: UnitOfWork, earlier: str, header: UploadHeader) -> Upload:
        found = await repository.uploaded(uow, uuid.UUID(UPLOAD.parse_one(earlier)))
        if found is None:
            raise NotFound("the upload made with this request_id has expired; upload again with a new one",
                           reason="UPLOAD_NOT_FOUND")
        if found.sha256 != header.sha256:
            raise InvalidArgument([FieldViolation("header.request_id",
                                                  "was already used for an upload with different content")])
        return found

    # --- imports -----------------------------------------------------------------------------------------

    async def start(self, *, uow: UnitOfWork, spec: ImportSpec, request: Message, actor: Principal) -> Started:
        """Check everything that can be checked up front, then create the import operation in
        `uow`; the caller launches it once `uow` has committed."""
        violations = rules.check_request(spec, enum_values=self._enum_values)
        upload_id = _upload_id(spec.upload, violations)
        violations.raise_if_any()
        assert upload_id is not None
        upload = await repository.uploaded(uow, upload_id)
        if upload is None:
            raise NotFound(f"upload {spec.upload} not found (uploads expire after 24 hours)",
                           reason="UPLOAD_NOT_FOUND")
        attribute_ids = sorted({c.attribute for c in spec.columns if c.attribute})
        definitions = await self._attributes.definitions(uow, attribute_ids) if attribute_ids else {}
        unknown = rules.unknown_attributes(spec, definitions)
        if unknown:
            field, attribute = unknown[0]
            raise NotFound(f"{field}: attribute {attribute!r} is not declared in the attribute catalogue",
                           reason="ATTRIBUTE_NOT_FOUND", metadata={"field": field, "attribute_id": attribute})
        columns = await self._file_columns(uow=uow, upload=upload, spec=spec)
        rules.check_columns(spec, columns).raise_if_any()
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=spec.request_id, request=request, method="ImportCustomers",
            resource_name=name_of(operation_id), replay=self._earlier_import)
        if replayed is not None:
            return replayed
        operation = await self._operations.create(
            uow, kind=KIND, creator=actor.subject,
            metadata=self._describe(spec, upload, rules.unmapped_columns(spec, columns)),
            operation_id=operation_id)
        job = worker.ImportJob(
            operation_id=operation_id, upload_id=upload_id, format=upload.format, spec=spec, settings=self._settings,
            work_dir="", actor=actor.subject, trace_id=_trace_id(), stamp=datetime.now(UTC),
            enum_values=self._enum_values, enum_names=self._enum_names, definitions=definitions,
            feed_payload=self._feed_payload, error_domain=self._domain,
            parts=max(1, self._limits.parallel_parts))

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._run, job))
            log.info("import_started", operation_id=str(operation_id), upload_id=str(upload_id), mode=spec.mode,
                     validate_only=spec.validate_only)

        return Started(operation, launch)

    async def _earlier_import(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _file_columns(self, *, uow: UnitOfWork, upload: Upload, spec: ImportSpec) -> list[str]:
        """The file's column names, read from its first (CSV) or last (Parquet) bytes."""
        try:
            if upload.format == FORMAT_CSV:
                head = await repository.head(uow, upload.upload_id, chunks=HEAD_CHUNKS)
                columns, _, _ = reading.csv_columns(head, spec.csv, whole_file=len(head) >= upload.size_bytes)
                return columns
            tail = await repository.tail(uow, upload.upload_id, nbytes=8)
            wanted = reading.footer_length(tail)
            if wanted > len(tail):
                tail = await repository.tail(uow, upload.upload_id, nbytes=wanted)
            return reading.parquet_columns(tail)
        except reading.UnreadableFile as error:
            field = "csv_options" if upload.format == FORMAT_CSV else "upload"
            raise InvalidArgument([FieldViolation(field, f"the file cannot be read: {error}")]) from error

    async def _run(self, job: worker.ImportJob, run: RunningOperation) -> Message:
        """The coordinator: plan, stage the parts in parallel, merge. Scratch always cleaned up."""
        work_dir = tempfile.mkdtemp(prefix="crm-import-")
        job = dataclasses.replace(job, work_dir=work_dir)
        try:
            await run.progress(stage="reading")
            plan = await run.call(worker.plan, job)
            await run.progress(total=plan.estimated_rows, stage="validating")
            rows = await self._stage(run, [worker.PartJob(job, part, plan.columns) for part in plan.parts])
            await run.progress(total=rows, stage="merging")
            return await run.call(worker.merge, job)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            # The scratch tables belong to the COPY staging (the documented raw() exception):
            # dropped on a raw connection, outside any transaction, by the coordinator that made them.
            with contextlib.suppress(Exception):
                async with self._db.raw() as connection:
                    await repository.Scratch(job.operation_id).drop(connection)

    @staticmethod
    async def _stage(run: RunningOperation, parts: Sequence[worker.PartJob]) -> int:
        """All parts, in parallel; the first failure asks the others to stop, and is raised once
        every part has stopped (so none writes into dropped scratch tables)."""
        calls = [asyncio.ensure_future(run.call(worker.stage, part)) for part in parts]
        failure: BaseException | None = None
        rows = 0
        for finished in asyncio.as_completed(calls):
            try:
                rows += await finished
            except Exception as error:
                if failure is None:
                    failure = error
                    await run.request_cancel()
        if failure is not None:
            raise failure
        return rows

    # --- housekeeping ---------------------------------------------------------------------------------

    def start_housekeeping(self) -> None:
        self._housekeeping = asyncio.create_task(self._housekeep_forever(), name="import-housekeeping")

    async def stop_housekeeping(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)

    async def housekeep(self) -> None:
        """Delete expired uploads; drop scratch tables of imports whose process died.

        Background work no RPC starts: it opens its own unit of work for the round (crmkit.db's
        rule), committed when the round ends."""
        async with self._db.unit_of_work() as uow:
            await repository.purge_expired_uploads(uow)
            await repository.drop_tables(uow, await repository.leftover_scratch(uow))

    async def _housekeep_forever(self) -> None:
        while True:
            try:
                await self.housekeep()
            except Exception as exc:
                log.warning("import_housekeeping_failed", error_type=type(exc).__name__)
            await asyncio.sleep(HOUSEKEEPING_SECONDS)


def _upload_id(name: str, violations: Any) -> uuid.UUID | None:
    if not UPLOAD.matches(name):
        violations.add("upload", "is required: an upload name like importUploads/{upload_id}")
        return None
    try:
        return uuid.UUID(UPLOAD.parse_one(name))
    except ValueError:
        return uuid.UUID(int=0)  # well-formed but never issued: NOT_FOUND below


def _trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
