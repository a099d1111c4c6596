"""Imported contact history: what an import is asked to do, and what a row becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class ImportMode(IntEnum):
    UNSPECIFIED = 0
    STRICT = 1
    LENIENT = 2


class ContextType(IntEnum):
    UNSPECIFIED = 0
    NUMBER = 1
    TEXT = 2
    BOOL = 3


class ContactOutcome(IntEnum):
    UNSPECIFIED = 0
    ACCEPTED = 1
    DECLINED = 2
    NOT_REACHED = 3


class PreviousOutcome(IntEnum):
    UNSPECIFIED = 0
    NONE = 1
    SUCCESS = 2
    FAILURE = 3


@dataclass(frozen=True)
class ColumnSpec:
    """One source column into one contact field (`field`) or one context key (`context`)."""

    column: str
    field: str = ""
    context: str = ""
    context_type: ContextType = ContextType.UNSPECIFIED
    value_map: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        return self.field or f"context.{self.context}"


@dataclass(frozen=True)
class ImportSpec:
    """An import request, checked: how to read the file and how its columns become contacts."""

    file_name: str
    source_system: str
    mode: ImportMode
    columns: tuple[ColumnSpec, ...]
    offer_type: str = ""
    customer_id_column: str = ""
    line_number_ids: bool = False
    id_prefix: str = ""
    delimiter: str = ","
    quote: str = '"'
    null_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportedContact:
    """One good row: a past contact with its outcome and the context at contact time."""

    line: int
    customer_id: str
    offer_type: str
    channel: int
    outcome: int
    contacted_at: datetime | None = None
    contact_month: int | None = None
    contact_day_of_week: int | None = None
    attempt_number: int | None = None
    previous_outcome: int = 0
    days_since_previous_contact: int | None = None
    previous_contact_count: int | None = None
    context: dict[str, float | str | bool] = field(default_factory=dict)

    @property
    def contact_key(self) -> str:
        when = (self.contacted_at.isoformat() if self.contacted_at is not None
                else f"{self.contact_month or ''}/{self.contact_day_of_week or ''}")
        return f"{self.attempt_number or ''}|{when}"


@dataclass(frozen=True)
class BadRow:
    """One problem with one row (the shape of profile's import `BadRow`); never the cell value."""

    line: int
    column: str
    field: str
    reason: str
    description: str


@dataclass(frozen=True)
class ParsedFile:
    """What reading a file found: the good contacts, and every problem of the bad rows."""

    contacts: tuple[ImportedContact, ...]
    bad_rows: tuple[BadRow, ...]
    bad_row_count: int
    row_count: int


@dataclass(frozen=True)
class ImportResult:
    inserted_count: int
    unchanged_count: int
    bad_row_count: int
    bad_rows: tuple[BadRow, ...]
    bad_rows_truncated: bool
