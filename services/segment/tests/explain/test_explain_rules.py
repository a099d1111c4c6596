"""Splitting a rule into its top-level clauses, and the values shown, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_segment import cel
from crm_segment.explain import rules


@pytest.mark.parametrize(("rule", "expected"), [
    ("age < 30", ["age < 30"]),
    ("age < 30 && aum > 1.0 && has(gender)", ["age < 30", "aum > 1.0", "has(gender)"]),
    # Only the outermost operator's chain is split; an `&&` inside an `||` stays one clause.
    ("age < 30 && aum > 1.0 || aum > 5.0", ["age < 30 && aum > 1.0", "aum > 5.0"]),
    ("(age < 30 || has(age)) || (aum > 1.0)", ["age < 30", "has(age)", "(aum > 1.0)"]),
    ("!(age < 30 && aum > 1.0)", ["!(age < 30 && aum > 1.0)"]),
    ("age > 1 ? aum > 1.0 : aum > 2.0", ["age > 1 ? aum > 1.0 : aum > 2.0"]),
])
def test_clauses_are_the_outermost_chains_operands_in_source_order(rule: str, expected: list[str]) -> None:
    assert rules.clauses(rule) == expected


def test_a_rule_that_does_not_parse_is_invalid() -> None:
    with pytest.raises(cel.InvalidRule):
        rules.clauses("age < ")


def test_an_erring_clause_is_undefined() -> None:
    explanation = rules.explain("100 / age == 1 || age >= 0", {"age": 0})
    assert [c.outcome for c in explanation.clauses] == [rules.ClauseOutcome.UNDEFINED, rules.ClauseOutcome.HELD]
    assert explanation.member


@pytest.mark.parametrize(("value", "text"), [
    (None, ""), (True, "true"), (3, "3"), (2.5, "2.5"), (["A", "B"], "A,B"),
    (datetime(2026, 1, 2, tzinfo=UTC), "2026-01-02T00:00:00+00:00"), (timedelta(hours=1), "3600s")])
def test_values_as_text(value: object, text: str) -> None:
    assert rules.as_text(value) == text
