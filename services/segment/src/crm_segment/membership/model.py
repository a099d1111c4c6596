"""Membership as the service's code sees it: plain values, no protos. The enums mirror the
contract's numbers (`crm.segment.v1`), so `api/` converts by value."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from crm_segment.segments.model import RuleIssue

KIND = "segment.materialise"


class ChangeKind(IntEnum):
    UNSPECIFIED = 0
    ENTERED = 1
    LEFT = 2


class ChangeCause(IntEnum):
    UNSPECIFIED = 0
    MATERIALISATION = 1
    FEATURE_CHANGED = 2
    RULE_CHANGED = 3
    CUSTOMER_REMOVED = 4
    CUSTOMER_MERGED = 5
    SEGMENT_DELETED = 6


@dataclass(frozen=True)
class Preview:
    count: int
    total_customers: int
    sample_customer_ids: tuple[str, ...]
    warnings: tuple[RuleIssue, ...]
    # None while the read model is empty.
    features_as_of: datetime | None


@dataclass(frozen=True)
class Materialised:
    segment_id: str
    rule_version: int
    member_count: int
    entered_count: int
    left_count: int
    features_as_of: datetime | None


@dataclass(frozen=True)
class Member:
    segment_id: str
    customer_id: str
    entered_at: datetime
    rule_version: int


@dataclass(frozen=True)
class MembershipChange:
    change_id: int
    segment_id: str
    customer_id: str
    kind: ChangeKind
    cause: ChangeCause
    changed_at: datetime
    rule_version: int
    operation_id: uuid.UUID | None
    source_event_id: str
