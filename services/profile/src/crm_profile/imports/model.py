"""Bulk import as the service's code sees it: plain values, no protos (api/ maps them)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

KIND = "profile.import"



class ImportFileFormat(IntEnum):
    UNSPECIFIED = 0
    CSV = 1
    PARQUET = 2


class ImportMode(IntEnum):
    UNSPECIFIED = 0
    STRICT = 1
    LENIENT = 2


FORMAT_CSV, FORMAT_PARQUET = ImportFileFormat.CSV, ImportFileFormat.PARQUET
MODE_STRICT, MODE_LENIENT = ImportMode.STRICT, ImportMode.LENIENT

# What a staged row does to its customer (the work table's `action`).
INSERT = 1
UPDATE = 2
UNCHANGED = 3
BAD = 4


@dataclass(frozen=True)
class UploadHeader:
    file_name: str
    format: int
    size_bytes: int
    sha256: str
    request_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Upload:
    upload_id: uuid.UUID
    file_name: str
    format: int
    size_bytes: int
    sha256: str
    create_time: datetime
    expire_time: datetime

    @property
    def name(self) -> str:
        return f"importUploads/{self.upload_id}"


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "UTF-8"
    no_header: bool = False
    null_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnRule:
    """One source column -> one target: a core field path or a custom attribute."""

    column: str
    field: str = ""
    attribute: str = ""
    value_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    date_format: str = ""
    default_value: str = ""

    @property
    def target(self) -> str:
        return self.field or (f"attributes.{self.attribute}" if self.attribute else "")


@dataclass(frozen=True)
class IdRule:
    """Where a row's customer id comes from: a column, or the line number; then the prefix."""

    column: str = ""
    line_number: bool = False
    prefix: str = ""


@dataclass(frozen=True)
class ImportSpec:
    """An ImportCustomers request, read."""

    upload: str
    csv: CsvOptions
    id_rule: IdRule
    columns: tuple[ColumnRule, ...]
    mode: int
    max_bad_rows: int
    validate_only: bool
    source_system: str
    request_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """One problem with one row; never the cell's value (it may be personal data)."""

    line: int
    column: str
    field: str
    reason: str
    description: str


@dataclass
class ImportResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_row_count: int = 0
    bad_rows: list[BadRow] = dataclasses.field(default_factory=list)
    bad_rows_truncated: bool = False
