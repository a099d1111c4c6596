"""A bulk customer import through profile's contract: upload the file, declare the mapping's
attributes, start `ImportCustomers`. Watching the operation is `operations.watch`."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from crm.common.v1 import operation_pb2
from crm.profile.v1 import attribute_pb2, import_pb2

CHUNK_BYTES = 1024 * 1024  # the contract's largest chunk: fewest messages
CALL_TIMEOUT_SECONDS = 30.0
# The upload's deadline grows with the file: a minute, plus a second per MiB (a slow link's rate).
UPLOAD_BASE_SECONDS = 60.0


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    sha256: str


def inspect(path: Path) -> LocalFile:
    """Size and SHA-256, which the upload's header declares before the first byte is sent."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
            size += len(block)
    return LocalFile(path=path, size=size, sha256=digest.hexdigest())


async def _messages(file: LocalFile, header: import_pb2.UploadImportFileHeader, on_bytes: Callable[[int], None]
                    ) -> AsyncIterator[import_pb2.UploadImportFileRequest]:
    yield import_pb2.UploadImportFileRequest(header=header)
    with file.path.open("rb") as source:
        while block := source.read(CHUNK_BYTES):
            yield import_pb2.UploadImportFileRequest(chunk=block)
            on_bytes(len(block))


async def upload(stub: Any, file: LocalFile, *, file_format: import_pb2.ImportFileFormat.ValueType, metadata: Any,
                 on_bytes: Callable[[int], None]) -> import_pb2.ImportUpload:
    header = import_pb2.UploadImportFileHeader(file_name=file.path.name[:255], format=file_format,
                                               size_bytes=file.size, sha256=file.sha256,
                                               request_id=str(uuid.uuid4()))
    reply = await stub.UploadImportFile(_messages(file, header, on_bytes), metadata=metadata,
                                        timeout=UPLOAD_BASE_SECONDS + file.size / CHUNK_BYTES)
    return reply.upload


async def declare_attributes(stub: Any, attributes: tuple[attribute_pb2.AttributeDefinition, ...], *,
                             metadata: Any) -> list[str]:
    """Declare the attributes the mapping writes that the catalogue lacks (an undeclared one fails
    the import with NOT_FOUND); the ids declared now. Existing definitions are left as they are."""
    declared = []
    for definition in attributes:
        try:
            await stub.CreateAttributeDefinition(
                attribute_pb2.CreateAttributeDefinitionRequest(attribute_definition=definition),
                metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        else:
            declared.append(definition.attribute_id)
    return declared


async def start(stub: Any, request: import_pb2.ImportCustomersRequest, *, metadata: Any) -> operation_pb2.Operation:
    reply = await stub.ImportCustomers(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
    return reply.operation


def result_of(operation: operation_pb2.Operation) -> import_pb2.ImportCustomersResult | None:
    """The counts and bad rows: the response of a success, or a detail of a STRICT failure."""
    result = import_pb2.ImportCustomersResult()
    if operation.HasField("response") and operation.response.Unpack(result):
        return result
    for detail in operation.error.details:
        if detail.Unpack(result):
            return result
    return None


def metadata_of(operation: operation_pb2.Operation) -> import_pb2.ImportCustomersMetadata | None:
    described = import_pb2.ImportCustomersMetadata()
    return described if operation.metadata.Unpack(described) else None
