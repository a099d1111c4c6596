"""Proto enums and names as a person types and reads them on the command line, shared by the
commands: `--severity high` for ALERT_SEVERITY_HIGH, `customers/C1` from `C1`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp


def choices(enum: Any, prefix: str) -> list[str]:
    """The enum's values without `prefix`, lower case, UNSPECIFIED left out: click choices."""
    return [n.removeprefix(prefix).lower() for n in enum.DESCRIPTOR.values_by_name if not n.endswith("UNSPECIFIED")]


def value_of(enum: Any, prefix: str, choice: str | None) -> Any:
    """A choice back to its enum number; 0 (unspecified) when none was given."""
    return enum.Value(prefix + choice.upper()) if choice else 0


def label(enum: Any, prefix: str, value: int) -> str:
    """An enum number as words (`in progress`), `-` when unspecified."""
    return enum.Name(value).removeprefix(prefix).lower().replace("_", " ") if value else "-"


def customer_name(value: str) -> str:
    return value if value.startswith("customers/") else f"customers/{value}"


def time_of(stamp: Timestamp) -> datetime | None:
    """The time in UTC, None when the field is unset."""
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None
