"""Helpers of the bulk import tests: upload a file, run an import, wait for its operation."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import json_format

from crm.common.v1 import operation_pb2
from crm.profile.v1 import import_pb2, operations_pb2
from crmkit.auth import Role
from crmkit.testing import bearer

ADMIN = bearer(Role.ADMIN, subject="loader")
CSV = import_pb2.IMPORT_FILE_FORMAT_CSV
PARQUET = import_pb2.IMPORT_FILE_FORMAT_PARQUET
FINAL = {operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
         operation_pb2.OPERATION_STATE_CANCELLED}


def header(data: bytes, **overrides: Any) -> import_pb2.UploadImportFileHeader:
    fields: dict[str, Any] = {"file_name": "customers.csv", "format": CSV, "size_bytes": len(data),
                              "sha256": hashlib.sha256(data).hexdigest()}
    fields.update(overrides)
    return import_pb2.UploadImportFileHeader(**fields)


async def messages(head: import_pb2.UploadImportFileHeader | None, data: bytes, chunk: int = 64 * 1024
                   ) -> AsyncIterator[import_pb2.UploadImportFileRequest]:
    if head is not None:
        yield import_pb2.UploadImportFileRequest(header=head)
    for start in range(0, len(data), chunk):
        yield import_pb2.UploadImportFileRequest(chunk=data[start:start + chunk])


@dataclass
class Importer:
    """Drives the import RPCs of one stub, as a data engineer's tool would."""

    profile: Any

    async def upload(self, data: bytes, *, metadata: Any = ADMIN, chunk: int = 64 * 1024, **head: Any
                     ) -> import_pb2.ImportUpload:
        response = await self.profile.UploadImportFile(messages(header(data, **head), data, chunk),
                                                       metadata=metadata, timeout=60)
        return response.upload

    async def start(self, upload: str, mapping: dict[str, Any], *, metadata: Any = ADMIN, **fields: Any
                    ) -> operation_pb2.Operation:
        request = request_of(upload, mapping, **fields)
        response = await self.profile.ImportCustomers(request, metadata=metadata, timeout=30)
        return response.operation

    async def wait(self, name: str, *, seconds: float = 120) -> operation_pb2.Operation:
        last = None
        async with asyncio.timeout(seconds):
            while last is None or last.state not in FINAL:
                call = self.profile.WatchOperation(operations_pb2.WatchOperationRequest(name=name), metadata=ADMIN)
                async for update in call:
                    last = update.operation
        assert last is not None
        return last

    async def run(self, data: bytes, mapping: dict[str, Any], *, head: dict[str, Any] | None = None,
                  **fields: Any) -> tuple[operation_pb2.Operation, import_pb2.ImportCustomersResult]:
        upload = await self.upload(data, **(head or {}))
        operation = await self.wait((await self.start(upload.name, mapping, **fields)).name)
        return operation, result_of(operation)

    # The module helpers below, for test modules (which cannot import this file).
    csv = staticmethod(lambda rows, delimiter=",": csv_of(rows, delimiter=delimiter))
    result = staticmethod(lambda operation: result_of(operation))
    request = staticmethod(lambda upload, mapping, **fields: request_of(upload, mapping, **fields))
    prefix = staticmethod(lambda: unique_prefix())
    header = staticmethod(lambda data, **overrides: header(data, **overrides))
    messages = staticmethod(lambda head, data, chunk=64 * 1024: messages(head, data, chunk))


def request_of(upload: str, mapping: dict[str, Any], **fields: Any) -> import_pb2.ImportCustomersRequest:
    """A request from the proto-JSON form of its fields (as a mapping file holds them)."""
    body: dict[str, Any] = {"mode": "IMPORT_MODE_LENIENT", "sourceSystem": "legacy-cif", **fields,
                            "upload": upload, "mapping": mapping}
    return json_format.ParseDict(body, import_pb2.ImportCustomersRequest())


def result_of(operation: operation_pb2.Operation) -> import_pb2.ImportCustomersResult:
    result = import_pb2.ImportCustomersResult()
    if operation.HasField("response"):
        assert operation.response.Unpack(result)
        return result
    for detail in operation.error.details:
        if detail.Is(result.DESCRIPTOR):
            detail.Unpack(result)
    return result


def csv_of(rows: Iterable[Iterable[object]], *, delimiter: str = ",") -> bytes:
    return "".join(delimiter.join(str(c) for c in row) + "\n" for row in rows).encode()


def unique_prefix() -> str:
    return f"T{uuid.uuid4().hex[:6].upper()}-"


@pytest.fixture
def importer(profile: Any) -> Importer:
    return Importer(profile)
