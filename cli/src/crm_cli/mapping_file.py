"""Import mapping files (`services/profile/mappings/*.json`): read and checked before any call.

A mapping file holds an `ImportCustomersRequest` in proto JSON form without its `upload`, the
custom attributes it writes, and the file format. Everything wrong with it is the user's to fix,
so it is reported as `MappingFileError` (exit status 2) before anything is uploaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from crm.profile.v1 import attribute_pb2, import_pb2

FORMAT_BY_SUFFIX = {".csv": import_pb2.IMPORT_FILE_FORMAT_CSV, ".txt": import_pb2.IMPORT_FILE_FORMAT_CSV,
                    ".parquet": import_pb2.IMPORT_FILE_FORMAT_PARQUET}


class MappingFileError(Exception):
    """The mapping file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class MappingFile:
    format: import_pb2.ImportFileFormat.ValueType
    request: import_pb2.ImportCustomersRequest
    attributes: tuple[attribute_pb2.AttributeDefinition, ...]


def _file_format(raw: Any, data_file: Path, where: str) -> import_pb2.ImportFileFormat.ValueType:
    if raw is None:
        found = FORMAT_BY_SUFFIX.get(data_file.suffix.lower())
        if found is None:
            raise MappingFileError(f"{where}: no `format`, and {data_file.name!r} does not end in "
                                   f"{', '.join(FORMAT_BY_SUFFIX)}")
        return found
    names = [n for n, number in import_pb2.ImportFileFormat.items() if number]
    if raw not in names:
        raise MappingFileError(f"{where}: `format` must be one of {', '.join(names)}")
    return import_pb2.ImportFileFormat.Value(raw)


def _request(raw: Any, where: str) -> import_pb2.ImportCustomersRequest:
    if not isinstance(raw, dict) or not isinstance(raw.get("mapping"), dict):
        raise MappingFileError(f"{where}: `request.mapping` is required (an ImportMapping object)")
    body = {k: v for k, v in raw.items() if k != "upload"}  # the upload is the one made by this command
    try:
        return json_format.ParseDict(body, import_pb2.ImportCustomersRequest())
    except json_format.ParseError as exc:
        raise MappingFileError(f"{where}: `request` is not an ImportCustomersRequest: {exc}") from exc


def _attributes(raw: Any, where: str) -> tuple[attribute_pb2.AttributeDefinition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MappingFileError(f"{where}: `attributes` must be a list of AttributeDefinition objects")
    definitions = []
    for index, item in enumerate(raw):
        try:
            definitions.append(json_format.ParseDict(item, attribute_pb2.AttributeDefinition()))
        except json_format.ParseError as exc:
            raise MappingFileError(f"{where}: `attributes[{index}]` is not an AttributeDefinition: {exc}") from exc
    return tuple(definitions)


def load(path: Path, *, data_file: Path) -> MappingFile:
    where = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingFileError(f"{where}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise MappingFileError(f"{where}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise MappingFileError(f"{where}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(document, dict):
        raise MappingFileError(f"{where}: must be a JSON object with `request` (and `format`, `attributes`)")
    return MappingFile(format=_file_format(document.get("format"), data_file, where),
                       request=_request(document.get("request"), where),
                       attributes=_attributes(document.get("attributes"), where))
