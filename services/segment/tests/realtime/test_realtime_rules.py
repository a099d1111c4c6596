"""The pure half of real-time membership: closures from rules, and the transitions they imply."""

from __future__ import annotations

from crm_segment.cel.to_python import Predicate
from crm_segment.membership.model import ChangeKind
from crm_segment.realtime import rules
from crm_segment.realtime.model import LiveSegment, Transition


def live(segment_id: str, rule: str, version: int = 1) -> tuple[LiveSegment, Predicate]:
    predicate = rules.compile_predicate(rule)
    assert predicate is not None
    return LiveSegment(segment_id, rule, version), predicate


def test_only_segments_whose_verdict_differs_from_the_membership_change() -> None:
    rich, young, payroll = (live("rich", "aum >= 500000.0", 3), live("young", "age < 35"),
                            live("payroll", '"PAYROLL" in product_categories'))
    features = {"aum": 600_000.0, "age": 40, "product_categories": ["PAYROLL"]}
    assert rules.transitions([rich, young, payroll], features, frozenset({"young", "payroll"})) == [
        Transition("rich", ChangeKind.ENTERED, 3), Transition("young", ChangeKind.LEFT, 1)]


def test_a_customer_outside_the_population_leaves_everything_and_enters_nothing() -> None:
    always = live("always", "true")
    assert rules.transitions([always], None, frozenset({"always"})) == [Transition("always", ChangeKind.LEFT, 1)]
    assert rules.transitions([always], None, frozenset()) == []


def test_a_missing_feature_selects_nobody_and_a_rule_that_no_longer_checks_compiles_to_none() -> None:
    young = live("young", "age < 35")
    assert rules.transitions([young], {"age": None}, frozenset({"young"})) == [
        Transition("young", ChangeKind.LEFT, 1)]
    assert rules.compile_predicate("retired_feature > 1") is None
