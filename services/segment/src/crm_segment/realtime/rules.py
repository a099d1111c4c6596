"""Pure decisions of real-time membership: compile a rule to a closure, and the entries and
exits one customer's features imply. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crm_segment import cel
from crm_segment.cel.to_python import Predicate
from crm_segment.membership.model import ChangeKind
from crm_segment.realtime.model import LiveSegment, Transition
from crm_segment.segments import rules as segment_rules


def compile_predicate(rule: str) -> Predicate | None:
    """The rule as a closure over the feature values; None when it no longer checks against the
    catalogue (the segment is then left alone until its rule is fixed)."""
    try:
        return cel.to_python(cel.check(rule, segment_rules.CEL_CATALOGUE))
    except cel.InvalidRule:
        return None


def transitions(segments: Iterable[tuple[LiveSegment, Predicate]], features: Mapping[str, Any] | None,
                members_of: frozenset[str]) -> list[Transition]:
    """Entries and exits that make the customer a member of exactly the segments whose rule
    holds; `features` None (not in the read model, or removed by profile) matches nothing."""
    decided = []
    for segment, predicate in segments:
        now_in = features is not None and predicate(features)
        was_in = segment.segment_id in members_of
        if now_in != was_in:
            kind = ChangeKind.ENTERED if now_in else ChangeKind.LEFT
            decided.append(Transition(segment.segment_id, kind, segment.rule_version))
    return decided
