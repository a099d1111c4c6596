"""Collect every field violation of a request, then fail once (AIP-193: name all bad fields)."""

from __future__ import annotations

import re
from datetime import date

from google.type import date_pb2

from crmkit.errors import FieldViolation, InvalidArgument


class Violations:
    """A collector: `check(...)` records, `raise_if_any()` fails with all of them at once."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        if not ok:
            self.add(field, description)
        return ok

    def required(self, value: object, field: str) -> bool:
        return self.check(bool(value), field, "is required")

    def max_length(self, value: str, field: str, limit: int) -> bool:
        if len(value) <= limit:  # the usual case: no message to format
            return True
        self.add(field, f"must be at most {limit} characters")
        return False

    def pattern(self, value: str, field: str, regex: re.Pattern[str], rule: str) -> bool:
        return self.check(bool(regex.fullmatch(value)), field, rule)

    def __bool__(self) -> bool:
        return bool(self._items)

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidArgument(self._items)


def to_date(value: date_pb2.Date | None) -> date | None:
    """A google.type.Date as a `date`, None when unset (all zero); ValueError when not a real date."""
    if value is None or (value.year == 0 and value.month == 0 and value.day == 0):
        return None
    return date(value.year, value.month, value.day)


def from_date(value: date | None) -> date_pb2.Date | None:
    if value is None:
        return None
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def set_date(target: date_pb2.Date, value: date) -> None:
    """`target.CopyFrom(from_date(value))` in place, for mappers on hot paths."""
    target.year, target.month, target.day = value.year, value.month, value.day
