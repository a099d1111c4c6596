"""Cross-sell rules: a hand-computed example, edge cases, and properties against brute force."""

from __future__ import annotations

import pickle
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crm_segment.crosssell
from crm_segment.crosssell import rules
from crm_segment.crosssell.model import AssociationRule, RuleMiningRequest
from crm_segment.segments import rules as segment_rules
from crm_segment.segments.model import EvaluationMode
from crmkit.errors import InvalidArgument

# Counts: A 3, B 3, C 2, AB 2, AC 1, BC 2, ABC 1; five customers, one holding nothing.
HAND = {"c1": frozenset("AB"), "c2": frozenset("ABC"), "c3": frozenset("A"), "c4": frozenset("BC"),
        "c5": frozenset()}


def mine(baskets: dict[str, frozenset[str]], **overrides: object) -> tuple[AssociationRule, ...]:
    return rules.mine(RuleMiningRequest(baskets=baskets, **overrides)).rules  # type: ignore[arg-type]


def shape(rule: AssociationRule) -> tuple[tuple[str, ...], str]:
    return rule.antecedent, rule.consequent


def test_hand_computed_rules_exact_support_confidence_lift_and_order() -> None:
    found = mine(HAND, min_support=0.2, min_confidence=0.5, min_lift=1.2, max_antecedent_size=2)

    assert [shape(r) for r in found] == [(("C",), "B"), (("A", "C"), "B"), (("B",), "C"), (("A", "B"), "C")]
    c_to_b, ac_to_b, b_to_c, ab_to_c = found
    assert (c_to_b.support, c_to_b.confidence, c_to_b.lift) == pytest.approx((2 / 5, 1.0, 5 / 3))
    assert (c_to_b.antecedent_count, c_to_b.consequent_count, c_to_b.both_count) == (2, 3, 2)
    assert (ac_to_b.support, ac_to_b.confidence, ac_to_b.lift) == pytest.approx((1 / 5, 1.0, 5 / 3))
    assert (b_to_c.support, b_to_c.confidence, b_to_c.lift) == pytest.approx((2 / 5, 2 / 3, 5 / 3))
    assert (ab_to_c.support, ab_to_c.confidence, ab_to_c.lift) == pytest.approx((1 / 5, 1 / 2, 5 / 4))


def test_thresholds_and_antecedent_size_filter_the_hand_example() -> None:
    everything = mine(HAND, min_support=0.2, min_confidence=0.0, min_lift=0.0, max_antecedent_size=2)
    assert len(everything) == 9  # 3 pairs x 2 directions + 1 triple x 3 consequents
    a_to_c = next(r for r in everything if shape(r) == (("A",), "C"))
    assert (a_to_c.confidence, a_to_c.lift) == pytest.approx((1 / 3, 5 / 6))

    singles = mine(HAND, min_support=0.2, min_confidence=0.0, min_lift=0.0, max_antecedent_size=1)
    assert {shape(r) for r in singles} == {((x,), y) for x in "ABC" for y in "ABC" if x != y}
    # AC and ABC are held by one customer in five: below 0.3 they and their rules go.
    frequent = mine(HAND, min_support=0.3, min_confidence=0.0, min_lift=0.0, max_antecedent_size=3)
    assert {shape(r) for r in frequent} == {(("A",), "B"), (("B",), "A"), (("B",), "C"), (("C",), "B")}


def test_the_rule_cap_keeps_the_highest_lift_and_says_it_truncated() -> None:
    result = rules.mine(RuleMiningRequest(baskets=HAND, min_support=0.2, min_confidence=0.0, min_lift=0.0,
                                          max_rules=2))
    assert [shape(r) for r in result.rules] == [(("C",), "B"), (("A", "C"), "B")]
    assert result.truncated and result.matching_rule_count == 9


@pytest.mark.parametrize("baskets", [
    {},
    {"c1": frozenset(), "c2": frozenset()},
    {"c1": frozenset({"SAVINGS"}), "c2": frozenset({"SAVINGS"}), "c3": frozenset()},
])
def test_no_rules_from_no_customers_no_holdings_or_one_product(baskets: dict[str, frozenset[str]]) -> None:
    result = rules.mine(RuleMiningRequest(baskets=baskets, min_support=0.01, min_confidence=0.0, min_lift=0.0))
    assert result.rules == () and not result.truncated
    assert result.basket_count == len(baskets)


def test_customers_holding_nothing_count_in_the_denominator() -> None:
    pair = {"c1": frozenset("AB"), "c2": frozenset("AB")}
    alone = mine(pair, min_support=0.5, min_confidence=0.0, min_lift=0.0)
    with_empty = mine({**pair, "c3": frozenset(), "c4": frozenset()}, min_support=0.5, min_confidence=0.0,
                      min_lift=0.0)
    assert {(r.support, r.lift) for r in alone} == {(1.0, 1.0)}
    assert {(r.support, r.lift) for r in with_empty} == {(0.5, 2.0)}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"min_support": 0.0}, "min_support"),
    ({"min_support": 1.5}, "min_support"),
    ({"min_support": float("nan")}, "min_support"),
    ({"min_confidence": -0.1}, "min_confidence"),
    ({"min_confidence": 1.1}, "min_confidence"),
    ({"min_lift": -1.0}, "min_lift"),
    ({"min_lift": float("inf")}, "min_lift"),
    ({"max_antecedent_size": 0}, "max_antecedent_size"),
    ({"max_antecedent_size": 4}, "max_antecedent_size"),
    ({"max_rules": 0}, "max_rules"),
    ({"max_rules": 1001}, "max_rules"),
    ({"baskets": {"c1": frozenset({""})}}, "baskets"),
    ({"baskets": {"c1": frozenset(f"P{i}" for i in range(201))}}, "baskets"),
])
def test_bad_requests_name_the_field(overrides: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {"baskets": HAND, **overrides}
    with pytest.raises(InvalidArgument) as caught:
        rules.mine(RuleMiningRequest(**fields))  # type: ignore[arg-type]
    assert {v.field for v in caught.value.violations} == {field}


def test_results_survive_pickling_for_the_worker_process() -> None:
    result = rules.mine(RuleMiningRequest(baskets=HAND, min_support=0.2))
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301 - our own bytes


def test_the_documented_cel_targeting_rules_are_valid_segment_rules() -> None:
    doc = crm_segment.crosssell.__doc__ or ""
    single = '"TERM_DEPOSIT" in product_categories && !("FUND" in product_categories)'
    double = ('"PAYROLL" in product_categories && "CREDIT_CARD" in product_categories\n'
              '        && !("WEALTH" in product_categories)')
    for rule in (single, double):
        assert rule in doc
        assert rules_issues(rule) == []


def rules_issues(rule: str) -> list[str]:
    return [issue.reason for issue in segment_rules.analyse(rule, mode=EvaluationMode.BATCH).issues]


CATEGORIES = "ABCDEF"
baskets_strategy = st.dictionaries(
    st.text("xyz0123456789", min_size=1, max_size=6),
    st.frozensets(st.sampled_from(CATEGORIES)),
    max_size=40,
)


def brute_force(baskets: dict[str, frozenset[str]], request: RuleMiningRequest) -> dict[tuple[tuple[str, ...], str],
                                                                                       tuple[int, int, int]]:
    """Every qualifying rule by counting sets in plain Python: shape -> (antecedent, consequent, both) counts."""
    n = len(baskets)
    held = list(baskets.values())

    def count(items: set[str]) -> int:
        return sum(items <= basket for basket in held)

    found = {}
    for size in range(1, request.max_antecedent_size + 1):
        for antecedent in combinations(CATEGORIES, size):
            for consequent in sorted(set(CATEGORIES) - set(antecedent)):
                x, y, both = count(set(antecedent)), count({consequent}), count({*antecedent, consequent})
                if both == 0 or both / n < request.min_support:
                    continue
                confidence = both / x
                if confidence >= request.min_confidence and confidence / (y / n) >= request.min_lift:
                    found[(antecedent, consequent)] = (x, y, both)
    return found


@settings(max_examples=150, deadline=None)
@given(baskets=baskets_strategy, min_support=st.floats(0.01, 1.0), min_confidence=st.floats(0.0, 1.0),
       min_lift=st.floats(0.0, 4.0), max_antecedent_size=st.integers(1, 3))
def test_rules_obey_the_definitions_and_thresholds_and_match_brute_force(
        baskets: dict[str, frozenset[str]], min_support: float, min_confidence: float, min_lift: float,
        max_antecedent_size: int) -> None:
    request = RuleMiningRequest(baskets=baskets, min_support=min_support, min_confidence=min_confidence,
                                min_lift=min_lift, max_antecedent_size=max_antecedent_size, max_rules=1000)
    result = rules.mine(request)
    n = len(baskets)

    for rule in result.rules:
        support_x, support_y = rule.antecedent_count / n, rule.consequent_count / n
        assert rule.support == pytest.approx(rule.both_count / n)
        assert rule.confidence == pytest.approx(rule.support / support_x)
        assert rule.lift == pytest.approx(rule.confidence / support_y)
        assert rule.support >= min_support and rule.confidence >= min_confidence and rule.lift >= min_lift
        assert 1 <= len(rule.antecedent) <= max_antecedent_size and rule.consequent not in rule.antecedent
    lifts = [r.lift for r in result.rules]
    assert lifts == sorted(lifts, reverse=True)
    expected = brute_force(baskets, request)
    assert {shape(r): (r.antecedent_count, r.consequent_count, r.both_count) for r in result.rules} == expected
    assert result.matching_rule_count == len(expected)
