"""Real-time membership as plain values: the segments evaluated per event and the entries and
exits one evaluation decides. No protos, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from crm_segment.membership.model import ChangeKind


@dataclass(frozen=True)
class LiveSegment:
    """A segment kept current per event: real-time mode and materialised at least once."""

    segment_id: str
    rule: str
    rule_version: int


@dataclass(frozen=True)
class Transition:
    """One customer entering or leaving one segment under the segment's current rule version."""

    segment_id: str
    kind: ChangeKind
    rule_version: int
