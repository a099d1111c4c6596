"""Collect every field violation of a request, then fail once (AIP-193: name all bad fields)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Container, Sequence
from datetime import date

from google.type import date_pb2

from crmkit.errors import FieldViolation, InvalidArgument

NO_CONTROL_CHARACTERS = "must not contain control characters"
NO_CONTROL_CHARACTERS_MULTILINE = "must not contain control characters other than line breaks and tabs"

# What no stored text may hold: C0 and C1 controls (Unicode category Cc, NUL included), the line
# and paragraph separators, and the bidi embeddings, overrides and isolates that make text read
# differently from what it is (Trojan Source). Free text keeps \t, \n and \r.
_SPECIALS = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_SPECIALS}]")
_CONTROL_MULTILINE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_SPECIALS}]")


def has_control_characters(value: str, *, multiline: bool = False) -> bool:
    """Whether `value` holds a character no stored text may (with `multiline`, line breaks and tabs pass)."""
    return (_CONTROL_MULTILINE if multiline else _CONTROL).search(value) is not None


def unknown_enum(number: int, enum_name: str) -> str:
    """The rule an enum number outside its type breaks, e.g. "999 is not a known AccessPurpose value"."""
    return f"{number} is not a known {enum_name} value"


def bounds_rule(low: object | None, high: object | None) -> str:
    """"must be between low and high", naming only the bounds that exist."""
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    if low is not None:
        return f"must be at least {low}"
    if high is not None:
        return f"must be at most {high}"
    return "may be any value"


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

    def text(self, value: str, field: str, *, multiline: bool = False) -> bool:
        """Text a caller gives us to store: no control characters (free text, `multiline`, may
        break lines and hold tabs)."""
        if not has_control_characters(value, multiline=multiline):
            return True
        self.add(field, NO_CONTROL_CHARACTERS_MULTILINE if multiline else NO_CONTROL_CHARACTERS)
        return False

    def enum(self, number: int, field: str, known: Container[int], enum_name: str, *,
             required: bool | str = False) -> bool:
        """An enum number read from a request. 0 is unset: fine unless `required` ("is required",
        or the description given). Any other number must be in `known`; one that is not is named
        as such rather than reported as missing."""
        if number == 0 and 0 not in known:
            if not required:
                return True
            self.add(field, required if isinstance(required, str) else "is required")
            return False
        if number in known:
            return True
        self.add(field, unknown_enum(number, enum_name))
        return False

    def update_mask(self, paths: Sequence[str], updatable: Collection[str], *,
                    accepts: Callable[[str], bool] | None = None) -> None:
        """An update's field mask (AIP-134): required, and every path one of `updatable` (or one
        `accepts` takes, for open-ended paths such as `attributes.<key>`)."""
        self.check(bool(paths), "update_mask", "is required: name the fields to update")
        for path in paths:
            self.check(path in updatable or (accepts is not None and accepts(path)), "update_mask",
                       f"'{path}' cannot be updated; updatable: {', '.join(sorted(updatable))}")

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
