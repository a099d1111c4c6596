"""Pure rules of contact-history imports: which mappings are valid, and what a cell becomes."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from crm_campaign.campaigns.model import Channel, DayOfWeek
from crm_campaign.contacts.model import (
    ColumnSpec,
    ContactOutcome,
    ContextType,
    ImportMode,
    ImportSpec,
    PreviousOutcome,
)
from crmkit.validation import Violations

MAX_FILE_BYTES = 12 * 1024 * 1024
MAX_COLUMNS = 100
MAX_VALUE_MAP = 1000
MAX_NULL_VALUES = 10
MAX_BAD_ROW_ENTRIES = 10_000
SOURCE_SYSTEM = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
OFFER_TYPE = SOURCE_SYSTEM
CONTEXT_KEY = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
ID_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,16}$")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Columns whose value is known only once the contact is over (the call's length): a model
# trained on them learns the outcome from itself.
POST_CONTACT = re.compile(r"duration", re.IGNORECASE)

# Each field: the error-free converter of a cleaned cell, and whether every mapping needs it.
REQUIRED_FIELDS = ("channel", "outcome")


class CellError(ValueError):
    """A cell that does not convert: the reason (UPPER_SNAKE) and the rule, never the value."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


def _enum(enum: type[Channel] | type[ContactOutcome] | type[PreviousOutcome] | type[DayOfWeek], prefix: str
          ) -> Callable[[str], int]:
    names = {member.name: int(member) for member in enum if member.name != "UNSPECIFIED" and int(member)}

    def convert(cell: str) -> int:
        name = cell.strip().upper()
        name = name.removeprefix(prefix)
        if name not in names:
            raise CellError("UNKNOWN_ENUM_VALUE", f"must be one of {', '.join(names)}")
        return names[name]
    return convert


def _integer(low: int, high: int) -> Callable[[str], int]:
    def convert(cell: str) -> int:
        try:
            value = int(cell)
        except ValueError:
            raise CellError("INVALID_FORMAT", "must be a whole number") from None
        if not low <= value <= high:
            raise CellError("OUT_OF_RANGE", f"must be between {low} and {high}")
        return value
    return convert


def _time(cell: str) -> datetime:
    try:
        value = datetime.fromisoformat(cell)
    except ValueError:
        raise CellError("INVALID_FORMAT", "must be an ISO 8601 time with a UTC offset") from None
    if value.tzinfo is None:
        raise CellError("INVALID_FORMAT", "must be an ISO 8601 time with a UTC offset")
    return value


def _offer_type(cell: str) -> str:
    if not OFFER_TYPE.fullmatch(cell):
        raise CellError("INVALID_FORMAT", f"must match {OFFER_TYPE.pattern}")
    return cell


FIELDS: dict[str, Callable[[str], object]] = {
    "channel": _enum(Channel, "CHANNEL_"),
    "contact_time": _time,
    "contact_month": _integer(1, 12),
    "contact_day_of_week": _enum(DayOfWeek, "DAY_OF_WEEK_"),
    "attempt_number": _integer(1, 1000),
    "outcome": _enum(ContactOutcome, "CONTACT_OUTCOME_"),
    "previous_outcome": _enum(PreviousOutcome, "PREVIOUS_OUTCOME_"),
    "days_since_previous_contact": _integer(0, 100_000),
    "previous_contact_count": _integer(0, 1000),
    "offer_type": _offer_type,
}


def context_value(context_type: ContextType, cell: str) -> float | str | bool:
    if context_type is ContextType.NUMBER:
        try:
            number = float(cell)
        except ValueError:
            raise CellError("INVALID_FORMAT", "must be a decimal number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise CellError("INVALID_FORMAT", "must be a finite decimal number")
        return number
    if context_type is ContextType.BOOL:
        if cell.lower() not in ("true", "false"):
            raise CellError("INVALID_FORMAT", "must be true or false")
        return cell.lower() == "true"
    if len(cell) > 200:
        raise CellError("OUT_OF_RANGE", "must be at most 200 characters")
    return cell


def check_spec(spec: ImportSpec, v: Violations) -> None:
    """Every rule of the request that does not need the file, all violations at once."""
    v.check(0 < len(spec.file_name) <= 255, "file_name", "must be 1 to 255 characters")
    v.check(bool(SOURCE_SYSTEM.fullmatch(spec.source_system)), "source_system",
            f"is required and must match {SOURCE_SYSTEM.pattern}")
    v.check(spec.mode is not ImportMode.UNSPECIFIED, "mode", "is required: STRICT or LENIENT")
    v.check(len(spec.delimiter) == 1, "csv_options.delimiter", "must be one character")
    v.check(len(spec.quote) == 1 and spec.quote != spec.delimiter, "csv_options.quote",
            "must be one character other than the delimiter")
    v.check(len(spec.null_values) <= MAX_NULL_VALUES, "csv_options.null_values",
            f"must have at most {MAX_NULL_VALUES} entries")
    if spec.line_number_ids:
        v.check(not spec.customer_id_column, "mapping.customer_id", "must name a column or ask for line numbers")
    else:
        v.check(bool(spec.customer_id_column), "mapping.customer_id", "is required: a column or line_number")
        _check_column_name(spec.customer_id_column, "mapping.customer_id.column", v)
    v.check(bool(ID_PREFIX.fullmatch(spec.id_prefix)), "mapping.customer_id.prefix",
            "must be at most 16 characters from A-Z a-z 0-9 _ -")
    v.check(not spec.offer_type or bool(OFFER_TYPE.fullmatch(spec.offer_type)), "mapping.offer_type",
            f"must match {OFFER_TYPE.pattern}")
    v.check(0 < len(spec.columns) <= MAX_COLUMNS, "mapping.columns", f"must have 1 to {MAX_COLUMNS} entries")
    seen: set[str] = set()
    for i, column in enumerate(spec.columns):
        _check_column(i, column, seen, v)
    for name in REQUIRED_FIELDS:
        v.check(name in seen, "mapping.columns", f"must map a column to `{name}`")
    v.check("offer_type" in seen or bool(spec.offer_type), "mapping.offer_type",
            "is required when no column maps to `offer_type`")


def _check_column_name(name: str, path: str, v: Violations) -> None:
    if v.check(bool(POST_CONTACT.search(name)) is False, path,
               "POST_CONTACT_COLUMN: a call's duration is known only after the contact and must not be imported"):
        return


def _check_column(i: int, column: ColumnSpec, seen: set[str], v: Violations) -> None:
    path = f"mapping.columns[{i}]"
    v.check(bool(column.column), f"{path}.column", "is required")
    _check_column_name(column.column, f"{path}.column", v)
    v.check(len(column.value_map) <= MAX_VALUE_MAP, f"{path}.value_map",
            f"must have at most {MAX_VALUE_MAP} entries")
    if bool(column.field) == bool(column.context):
        v.add(f"{path}.field", "exactly one of field or context is required")
        return
    if column.field:
        if v.check(column.field in FIELDS, f"{path}.field", f"must be one of {', '.join(FIELDS)}"):
            v.check(column.field not in seen, f"{path}.field", "may appear once")
        seen.add(column.field)
        return
    if v.check(bool(CONTEXT_KEY.fullmatch(column.context)), f"{path}.context",
               f"must match {CONTEXT_KEY.pattern}"):
        _check_column_name(column.context, f"{path}.context", v)
        v.check(f"context.{column.context}" not in seen, f"{path}.context", "may appear once")
    seen.add(f"context.{column.context}")
    v.check(column.context_type is not ContextType.UNSPECIFIED, f"{path}.context_type",
            "is required for a context target: NUMBER, TEXT or BOOL")


def check_header(spec: ImportSpec, header: Sequence[str], v: Violations) -> list[str]:
    """Mapped columns missing from the header; returns the columns no mapping names."""
    present = set(header)
    if spec.customer_id_column:
        v.check(spec.customer_id_column in present, "mapping.customer_id.column", "is not a column of the file")
    for i, column in enumerate(spec.columns):
        v.check(column.column in present, f"mapping.columns[{i}].column", "is not a column of the file")
    mapped = {c.column for c in spec.columns} | {spec.customer_id_column}
    return [name for name in header if name not in mapped]


def customer_id(spec: ImportSpec, *, line: int, cell: str | None) -> str:
    raw = str(line) if spec.line_number_ids else (cell or "")
    if not raw:
        raise CellError("REQUIRED", "customer_id is required")
    value = spec.id_prefix + raw
    if not CUSTOMER_ID.fullmatch(value):
        raise CellError("INVALID_FORMAT", "customer_id must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    return value
