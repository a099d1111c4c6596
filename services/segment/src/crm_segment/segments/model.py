"""Segments and rule analysis as the service's code sees them: plain values, no protos.

The enums mirror the contract's numbers (`crm.segment.v1`), so `api/` converts by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum


class EvaluationMode(IntEnum):
    UNSPECIFIED = 0
    BATCH = 1
    REAL_TIME = 2


class FeatureType(IntEnum):
    BOOL = 1
    INT = 2
    DOUBLE = 3
    STRING = 4
    STRING_LIST = 5
    TIMESTAMP = 6
    DURATION = 7


class Severity(IntEnum):
    ERROR = 1
    WARNING = 2


@dataclass(frozen=True)
class Feature:
    """One variable of the customer read model that a rule may read."""

    feature: str
    type: FeatureType
    description: str
    source: str
    real_time: bool
    unit: str = ""
    allowed_values: tuple[str, ...] = ()
    nullable: bool = False

    @property
    def name(self) -> str:
        return f"features/{self.feature}"


@dataclass(frozen=True)
class RuleIssue:
    """A problem in a rule; line and column are 1-based, 0 when it concerns the whole rule."""

    severity: Severity
    reason: str
    message: str
    line: int = 0
    column: int = 0

    def describe(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{where}{self.message} ({self.reason})"


@dataclass(frozen=True)
class RuleAnalysis:
    issues: tuple[RuleIssue, ...]
    referenced_features: tuple[str, ...]
    real_time_capable: bool

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[RuleIssue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)


@dataclass
class Segment:
    segment_id: str
    display_name: str
    rule: str
    description: str = ""
    evaluation_mode: EvaluationMode = EvaluationMode.BATCH
    # None: materialised on demand only.
    refresh_interval: timedelta | None = None
    rule_version: int = 1
    member_count: int = 0
    last_materialised_at: datetime | None = None
    last_materialise_operation: str = ""
    creator: str = ""
    # The features the rule reads, sorted; derived from `rule` on every change.
    referenced_features: tuple[str, ...] = field(default_factory=tuple)
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"segments/{self.segment_id}"

    @property
    def etag(self) -> str:
        return str(self.version)
