"""Explanations as plain values. No protos, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class ClauseOutcome(IntEnum):
    """Numbered as crm.segment.v1.ClauseOutcome."""

    HELD = 1
    NOT_HELD = 2
    UNDEFINED = 3


@dataclass(frozen=True)
class ClauseResult:
    text: str
    outcome: ClauseOutcome
    # Feature -> the customer's value as text, "" when missing.
    values: dict[str, str]


@dataclass(frozen=True)
class Explanation:
    member: bool
    clauses: tuple[ClauseResult, ...]
    features_as_of: datetime | None
