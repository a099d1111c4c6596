"""Contact-history imports as operations (crmkit.operations): `start` checks the request against
the file's header and creates the operation in the RPC's unit of work; the coordinator has a
worker process read and check every row, then writes the good contacts and completes the
operation in one transaction (a STRICT import with bad rows writes nothing)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crm_campaign.contacts import reading, rules
from crm_campaign.contacts.model import ImportMode, ImportResult, ImportSpec, ParsedFile
from crm_campaign.contacts.repository import ContactRepository
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import (
    OperationFailed,
    OperationRunner,
    Operations,
    RunningOperation,
    Started,
    complete_in,
    name_of,
    parse_name,
)
from crmkit.validation import Violations

log = get_logger("crm.campaign.contacts")

KIND = "campaign.contact_import"

ResultPayload = Callable[[ImportResult], Message]
# The operation's metadata from the checked request and the header's unmapped columns.
MetadataPayload = Callable[[ImportSpec, bytes, list[str]], Message]


class ContactImports:
    def __init__(self, *, db: Database, operations: Operations, runner: OperationRunner,
                 repository: ContactRepository, idempotency: IdempotencyKeys, result_payload: ResultPayload,
                 metadata_payload: MetadataPayload, error_domain: str) -> None:
        self._db = db
        self._operations = operations
        self._runner = runner
        self._repository = repository
        self._idempotency = idempotency
        self._result_payload = result_payload
        self._metadata_payload = metadata_payload
        self._domain = error_domain

    async def start(self, *, uow: UnitOfWork, spec: ImportSpec, content: bytes, request_id: uuid.UUID | None,
                    request: Message, actor: Principal, violations: Violations) -> Started:
        """Check the request (every bad field at once), then start the import."""
        rules.check_spec(spec, violations)
        violations.check(0 < len(content) <= rules.MAX_FILE_BYTES, "content",
                         f"is required and must be at most {rules.MAX_FILE_BYTES} bytes")
        header = reading.header(content, spec) if content else []
        if content:
            violations.check(bool(header), "content", "must start with a header line in UTF-8")
        unmapped = rules.check_header(spec, header, violations) if header else []
        violations.raise_if_any()
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="ImportContactHistory",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject,
                                                  metadata=self._metadata_payload(spec, content, unmapped),
                                                  operation_id=operation_id)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._import, operation_id, spec, content))
            log.info("contact_import_started", operation_id=str(operation_id), size_bytes=len(content),
                     source_system=spec.source_system)

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _import(self, operation_id: uuid.UUID, spec: ImportSpec, content: bytes, run: RunningOperation
                      ) -> Message:
        await run.progress(stage="reading")
        parsed: ParsedFile = await run.call(reading.parse, (content, spec))
        await run.progress(total=parsed.row_count, done=len(parsed.contacts), failed=parsed.bad_row_count,
                           stage="writing")
        truncated = len(parsed.bad_rows) > rules.MAX_BAD_ROW_ENTRIES
        bad_rows = parsed.bad_rows[:rules.MAX_BAD_ROW_ENTRIES]
        if parsed.bad_row_count and spec.mode is ImportMode.STRICT:
            raise self._strict_failure(ImportResult(inserted_count=0, unchanged_count=0,
                                                    bad_row_count=parsed.bad_row_count, bad_rows=bad_rows,
                                                    bad_rows_truncated=truncated))
        async with self._db.raw() as connection, connection.transaction():
            inserted = await self._repository.insert_new(connection, contacts=parsed.contacts,
                                                         source_system=spec.source_system, operation_id=operation_id)
            result = ImportResult(inserted_count=inserted, unchanged_count=len(parsed.contacts) - inserted,
                                  bad_row_count=parsed.bad_row_count, bad_rows=bad_rows, bad_rows_truncated=truncated)
            response = self._result_payload(result)
            await complete_in(connection, operation_id, response)
        log.info("contacts_imported", operation_id=str(operation_id), inserted=inserted,
                 unchanged=result.unchanged_count, bad_rows=parsed.bad_row_count)
        return response

    def _strict_failure(self, result: ImportResult) -> OperationFailed:
        """INVALID_ARGUMENT with reason IMPORT_HAS_BAD_ROWS and the result among the details."""
        details = []
        for detail in (error_details_pb2.ErrorInfo(reason="IMPORT_HAS_BAD_ROWS", domain=self._domain),
                       self._result_payload(result)):
            packed = any_pb2.Any()
            packed.Pack(detail)
            details.append(packed)
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, details=details,
                                   message="the file has bad rows and the import is strict: nothing was loaded")
        return OperationFailed(status.SerializeToString())

