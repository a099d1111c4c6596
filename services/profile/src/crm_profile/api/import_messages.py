"""Bulk import protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from crm.profile.v1 import import_pb2
from crm_profile.imports.model import ColumnRule, CsvOptions, IdRule, ImportSpec, Upload, UploadHeader
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.idempotency import parse_request_id
from crmkit.values import timestamp


def upload_header(message: import_pb2.UploadImportFileRequest | None) -> UploadHeader:
    """The header of an upload: the first message of the stream must carry it."""
    if message is None or message.WhichOneof("part") != "header":
        raise InvalidArgument([FieldViolation("header", "the first message of the stream must carry the header")])
    h = message.header
    return UploadHeader(file_name=h.file_name, format=h.format, size_bytes=h.size_bytes, sha256=h.sha256,
                        request_id=parse_request_id(h.request_id, "header.request_id"))


async def upload_chunks(messages: AsyncIterator[import_pb2.UploadImportFileRequest]) -> AsyncIterator[bytes]:
    """The bytes of the messages after the header; any other message is INVALID_ARGUMENT."""
    async for message in messages:
        if message.WhichOneof("part") != "chunk":
            raise InvalidArgument([FieldViolation("chunk", "every message after the first must carry a chunk")])
        yield message.chunk


def upload_to_proto(upload: Upload) -> import_pb2.ImportUpload:
    return import_pb2.ImportUpload(
        name=upload.name, upload_id=str(upload.upload_id), file_name=upload.file_name,
        format=import_pb2.ImportFileFormat.ValueType(upload.format),
        size_bytes=upload.size_bytes, sha256=upload.sha256, create_time=timestamp(upload.create_time),
        expire_time=timestamp(upload.expire_time))


def spec_of(request: import_pb2.ImportCustomersRequest) -> ImportSpec:
    csv = request.csv_options
    id_mapping = request.mapping.customer_id
    return ImportSpec(
        upload=request.upload,
        csv=CsvOptions(delimiter=csv.delimiter or ",", quote=csv.quote or '"', encoding=csv.encoding or "UTF-8",
                       no_header=csv.no_header, null_values=tuple(csv.null_values)),
        id_rule=IdRule(column=id_mapping.column, line_number=id_mapping.line_number, prefix=id_mapping.prefix),
        columns=tuple(ColumnRule(column=c.column, field=c.field, attribute=c.attribute,
                                 value_map=dict(c.value_map), date_format=c.date_format,
                                 default_value=c.default_value) for c in request.mapping.columns),
        mode=request.mode, max_bad_rows=request.max_bad_rows, validate_only=request.validate_only,
        source_system=request.source_system, request_id=parse_request_id(request.request_id),
    )


def describe(spec: ImportSpec, upload: Upload, unmapped: Sequence[str]) -> import_pb2.ImportCustomersMetadata:
    """The operation's metadata."""
    return import_pb2.ImportCustomersMetadata(
        upload=upload.name, format=import_pb2.ImportFileFormat.ValueType(upload.format),
        mode=import_pb2.ImportMode.ValueType(spec.mode),
        validate_only=spec.validate_only, source_system=spec.source_system, unmapped_columns=list(unmapped))
