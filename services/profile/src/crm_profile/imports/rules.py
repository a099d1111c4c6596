"""Pure decisions of bulk import: what a valid upload and import request are, how a customer
rule's violation reads as a bad row, what an import's outcome is. No I/O."""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta

from crm_profile.attributes.rules import ATTRIBUTE_ID
from crm_profile.imports import conversion
from crm_profile.imports.model import (
    MODE_LENIENT,
    MODE_STRICT,
    BadRow,
    ImportFileFormat,
    ImportMode,
    ImportResult,
    ImportSpec,
    UploadHeader,
)
from crmkit.errors import FieldViolation, InvalidArgument, ResourceExhausted
from crmkit.validation import Violations

# The contract's ceiling for one file; a deployment may set a lower one.
MAX_UPLOAD_BYTES = 10 * 1024**3
MAX_CHUNK_BYTES = 1024 * 1024
UPLOAD_TTL = timedelta(hours=24)
MAX_FILE_NAME = 255
SHA256 = re.compile(r"[0-9a-f]{64}")
SOURCE_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
ID_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,16}")
# Encodings a CSV file may have, by their contract name -> Python codec. Each keeps the bytes
# of `\n` and of ASCII quotes and delimiters unambiguous, which splitting a file relies on.
ENCODINGS = {"UTF-8": "utf-8", "GB18030": "gb18030", "GBK": "gbk", "ISO-8859-1": "latin-1"}
MAX_COLUMNS = 500
MAX_VALUE_MAP = 1000
MAX_NULL_VALUES = 10
MAX_BAD_ROW_ENTRIES = 10_000
FORMATS = frozenset(ImportFileFormat) - {ImportFileFormat.UNSPECIFIED}
MODES = frozenset(ImportMode) - {ImportMode.UNSPECIFIED}


# --- uploads --------------------------------------------------------------------------------------


def check_header(header: UploadHeader, *, max_bytes: int, area_free: int | None = None) -> None:
    """INVALID_ARGUMENT naming every bad header field; RESOURCE_EXHAUSTED for a file over the
    size limit or one that does not fit in what is left of the upload area."""
    v = Violations()
    if v.required(header.file_name, "header.file_name"):
        v.max_length(header.file_name, "header.file_name", MAX_FILE_NAME)
        v.text(header.file_name, "header.file_name")
    v.enum(header.format, "header.format", FORMATS, "ImportFileFormat",
           required="is required: IMPORT_FILE_FORMAT_CSV or _PARQUET")
    v.check(header.size_bytes > 0, "header.size_bytes", "is required: the exact size of the file, 1 byte or more")
    v.pattern(header.sha256, "header.sha256", SHA256, "must be the file's SHA-256 as 64 lower-case hex characters")
    v.raise_if_any()
    limit = min(max_bytes, MAX_UPLOAD_BYTES)
    if header.size_bytes > limit:
        raise ResourceExhausted(f"the file is larger than the limit of {limit} bytes", reason="UPLOAD_TOO_LARGE",
                                metadata={"limit_bytes": str(limit)})
    if area_free is not None and header.size_bytes > area_free:
        raise ResourceExhausted("the upload area is full; import or wait for older uploads to expire",
                                reason="UPLOAD_AREA_FULL", metadata={"free_bytes": str(max(area_free, 0))})


def check_chunk(chunk: bytes, *, received: int, declared: int) -> None:
    """One more chunk of `received` bytes so far, out of `declared`."""
    if not 1 <= len(chunk) <= MAX_CHUNK_BYTES:
        raise InvalidArgument([FieldViolation("chunk", f"must be 1 to {MAX_CHUNK_BYTES} bytes")])
    if received + len(chunk) > declared:
        raise InvalidArgument([FieldViolation("header.size_bytes",
                                              "is smaller than the bytes sent: the upload was not kept")])


def check_complete(*, received: int, declared: int, sha256: str, declared_sha256: str) -> None:
    if received != declared:
        raise InvalidArgument([FieldViolation(
            "header.size_bytes", f"declared {declared} bytes but {received} arrived: the upload was not kept")])
    if sha256 != declared_sha256:
        raise InvalidArgument([FieldViolation(
            "header.sha256", "does not match the bytes received: the upload was not kept")])


# --- the import request ---------------------------------------------------------------------------


def check_request(spec: ImportSpec, *, enum_values: conversion.EnumValues) -> Violations:
    """Every problem of the request that needs no file and no database, each naming its field."""
    v = Violations()
    _check_csv(spec, v)
    _check_mapping(spec, v, enum_values)
    v.enum(spec.mode, "mode", MODES, "ImportMode", required="is required: IMPORT_MODE_STRICT or IMPORT_MODE_LENIENT")
    v.check(spec.max_bad_rows >= 0, "max_bad_rows", "must not be negative")
    v.check(spec.max_bad_rows == 0 or spec.mode != MODE_STRICT, "max_bad_rows",
            "applies only to IMPORT_MODE_LENIENT (a strict import loads nothing when any row is bad)")
    if v.required(spec.source_system, "source_system"):
        v.pattern(spec.source_system, "source_system", SOURCE_SYSTEM,
                  "must be 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$")
    return v


def _check_csv(spec: ImportSpec, v: Violations) -> None:
    csv = spec.csv
    v.check(len(csv.delimiter) == 1 and csv.delimiter not in "\r\n", "csv_options.delimiter",
            "must be one character other than a line break")
    v.check(len(csv.quote) == 1 and csv.quote not in "\r\n" and csv.quote != csv.delimiter, "csv_options.quote",
            "must be one character, not a line break and not the delimiter")
    v.check(csv.encoding.upper() in ENCODINGS, "csv_options.encoding", f"must be one of {', '.join(ENCODINGS)}")
    v.check(len(csv.null_values) <= MAX_NULL_VALUES, "csv_options.null_values",
            f"must have at most {MAX_NULL_VALUES} entries")


def _check_mapping(spec: ImportSpec, v: Violations, enum_values: conversion.EnumValues) -> None:
    rule = spec.id_rule
    v.check(bool(rule.column) or rule.line_number, "mapping.customer_id",
            "is required: a column holding the id, or line_number")
    v.pattern(rule.prefix, "mapping.customer_id.prefix", ID_PREFIX,
              "must be at most 16 characters from A-Z a-z 0-9 _ -")
    v.check(1 <= len(spec.columns) <= MAX_COLUMNS, "mapping.columns", f"must have 1 to {MAX_COLUMNS} entries")
    first_of: dict[str, int] = {}
    for i, column in enumerate(spec.columns):
        path = f"mapping.columns[{i}]"
        v.required(column.column, f"{path}.column")
        if column.field:
            if v.check(column.field in conversion.CORE_TARGETS, f"{path}.field",
                       "is not a core customer field path that an import can set, such as full_name, "
                       "mobile_phone, address.locality, id_document.number"):
                _check_default(column.field, column.default_value, column.date_format, f"{path}.default_value",
                               v, enum_values)
                kind = conversion.CORE_TARGETS[column.field][1]
                v.check(not column.date_format or kind == conversion.DATE, f"{path}.date_format",
                        "applies only to date targets")
        elif column.attribute:
            v.pattern(column.attribute, f"{path}.attribute", ATTRIBUTE_ID,
                      "must be an attribute id: 1 to 63 characters matching ^[a-z][a-z0-9_]{0,62}$")
        else:
            v.add(path, "needs a target: a core field or a declared attribute")
        target = column.target
        if target and target not in conversion.REPEATABLE_TARGETS:
            if target in first_of:
                v.add(f"{path}.{'field' if column.field else 'attribute'}",
                      f"maps {target}, which mapping.columns[{first_of[target]}] maps already")
            else:
                first_of[target] = i
        v.check(len(column.value_map) <= MAX_VALUE_MAP, f"{path}.value_map",
                f"must have at most {MAX_VALUE_MAP} entries")


def _check_default(field: str, default: str, date_format: str, path: str, v: Violations,
                   enum_values: conversion.EnumValues) -> None:
    if not default:
        return
    kind = conversion.CORE_TARGETS[field][1]
    try:
        if kind == conversion.ENUM:
            conversion._enum(field, enum_values[field])(default)
        elif kind == conversion.DATE:
            conversion._date(date_format)(default)
    except conversion._CellError as error:
        v.add(path, error.rule)


def check_columns(spec: ImportSpec, file_columns: Sequence[str]) -> Violations:
    """The mapping's columns that the file does not have."""
    present = set(file_columns)
    v = Violations()
    if spec.id_rule.column:
        v.check(spec.id_rule.column in present, "mapping.customer_id.column", "is not a column of the file")
    for i, column in enumerate(spec.columns):
        if column.column:
            v.check(column.column in present, f"mapping.columns[{i}].column", "is not a column of the file")
    return v


def unmapped_columns(spec: ImportSpec, file_columns: Iterable[str]) -> list[str]:
    mapped = {c.column for c in spec.columns} | {spec.id_rule.column}
    return [c for c in file_columns if c not in mapped]


def unknown_attributes(spec: ImportSpec, declared: Collection[str]) -> list[tuple[str, str]]:
    """(field path, attribute id) of every attribute target the catalogue does not declare."""
    return [(f"mapping.columns[{i}].attribute", c.attribute) for i, c in enumerate(spec.columns)
            if c.attribute and c.attribute not in declared]


# --- rows -----------------------------------------------------------------------------------------


def reason_for(description: str, *, given: bool) -> str:
    """The BadRow reason of a customer rule's violation (crm_profile.customers.rules wording)."""
    if description.startswith("is required"):
        return "REQUIRED" if not given else "INVALID_FORMAT"
    if description.startswith(("must be between", "must not be before", "must be at most", "must be at least",
                               "must have at most", "each line must be at most")):
        return "OUT_OF_RANGE"
    if " is not a known " in description or description.startswith("is not a known"):
        return "UNKNOWN_ENUM_VALUE"
    return "INVALID_FORMAT"


def bad_rows(line: int, violations: Iterable[FieldViolation], *, column_of: Mapping[str, str],
             given: Collection[str], skip: Collection[str] = ()) -> list[BadRow]:
    """Customer rule violations (paths `customer.<target>`) as bad-row entries of one line."""
    found = []
    for violation in violations:
        target = violation.field.removeprefix("customer.")
        if target in skip:
            continue
        column = column_of.get(target) or column_of.get(target.split(".")[0], "")
        found.append(BadRow(line, column, target, reason_for(violation.description, given=target in given),
                            f"{target} {violation.description}"))
    return found


# --- the outcome ----------------------------------------------------------------------------------


class Outcome(enum.Enum):
    WRITE = "write"  # load the good rows
    DRY_RUN = "dry_run"  # validate_only: report, write nothing
    BAD_ROWS = "bad_rows"  # strict with bad rows: fail, load nothing
    TOO_MANY_BAD_ROWS = "too_many_bad_rows"  # lenient over max_bad_rows: fail, load nothing


def outcome(spec: ImportSpec, *, bad_row_count: int) -> Outcome:
    if spec.mode == MODE_STRICT and bad_row_count:
        return Outcome.BAD_ROWS
    if spec.mode == MODE_LENIENT and spec.max_bad_rows and bad_row_count > spec.max_bad_rows:
        return Outcome.TOO_MANY_BAD_ROWS
    return Outcome.DRY_RUN if spec.validate_only else Outcome.WRITE


def failed_result(result: ImportResult) -> ImportResult:
    """What a failed import reports: its bad rows, and nothing inserted, updated or unchanged."""
    return ImportResult(bad_row_count=result.bad_row_count, bad_rows=result.bad_rows,
                        bad_rows_truncated=result.bad_rows_truncated)


def first_entries(entries: Iterable[BadRow]) -> tuple[list[BadRow], bool]:
    """The first MAX_BAD_ROW_ENTRIES entries, and whether there were more."""
    kept: list[BadRow] = []
    for entry in entries:
        if len(kept) == MAX_BAD_ROW_ENTRIES:
            return kept, True
        kept.append(entry)
    return kept, False
