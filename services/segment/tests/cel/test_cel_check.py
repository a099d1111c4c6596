"""Type-checking and compiling segment rules: refusals with position and reason, SQL text and
parameters, closure semantics for missing values, and the closure's cost per call."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import pytest

from crm_segment.cel import CelType, InvalidRule, check, to_python, to_sql

CATALOGUE = {"age": CelType.INT, "aum": CelType.DOUBLE, "name": CelType.STRING, "tags": CelType.LIST_STRING,
             "vip": CelType.BOOL, "seen": CelType.TIMESTAMP, "now": CelType.TIMESTAMP}
COLUMNS = {name: f'"{name}"' for name in CATALOGUE}


def error_of(rule: str) -> tuple[str, int, int, str]:
    with pytest.raises(InvalidRule) as raised:
        check(rule, CATALOGUE)
    error = raised.value.error
    return error.reason, error.line, error.column, error.message


def matches(rule: str, **features: object) -> bool:
    return to_python(check(rule, CATALOGUE))(features)


# --- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "reason", "line", "column", "says"), [
    ("age >", "SYNTAX_ERROR", 1, 6, "ends too early"),
    ("age > 30 &&\n  aum >> 1.0", "SYNTAX_ERROR", 2, 8, "unexpected"),
    ("age > 30 && agee < 50", "UNKNOWN_FEATURE", 1, 13, '"agee"'),
    ("age > 30.0", "TYPE_MISMATCH", 1, 7, "write 30.0 for a double"),
    ('aum == "rich"', "TYPE_MISMATCH", 1, 8, "cannot compare double with string"),
    ("vip && age", "TYPE_MISMATCH", 1, 8, "right side of `&&` must be bool, not int"),
    ('1 in tags', "TYPE_MISMATCH", 1, 1, "int cannot be in a list<string>"),
    ('name.matches("^a")', "UNSUPPORTED_FUNCTION", 1, 6, '"matches"'),
    ('tags.exists(t, t == "X")', "UNSUPPORTED_FUNCTION", 1, 6, '"exists"'),
    ("int(aum) > 3", "UNSUPPORTED_FUNCTION", 1, 1, '"int"'),
    ("has(age.years)", "UNSUPPORTED_FUNCTION", 1, 1, "has() takes one feature name"),
    ("age == null", "UNSUPPORTED_SYNTAX", 1, 8, "has(feature)"),
    ("tags[0] == \"X\"", "UNSUPPORTED_SYNTAX", 1, 1, "indexing"),
    ("age", "NOT_BOOLEAN", 1, 1, "not int"),
    ("age % 0 == 1", "DIVISION_BY_ZERO", 1, 7, "literal zero"),
    ('seen > timestamp("yesterday")', "INVALID_LITERAL", 1, 18, "cannot read"),
])
def test_a_bad_rule_is_refused_with_its_position_and_reason(rule: str, reason: str, line: int, column: int,
                                                             says: str) -> None:
    got_reason, got_line, got_column, message = error_of(rule)
    assert (got_reason, got_line, got_column) == (reason, line, column)
    assert says in message


def test_the_error_describes_position_and_reason_in_one_line() -> None:
    with pytest.raises(InvalidRule, match=r"^line 1, column 13: unknown feature \"agee\" \(UNKNOWN_FEATURE\)$"):
        check("age > 30 && agee < 50", CATALOGUE)


# --- SQL -----------------------------------------------------------------------------------------

def test_every_literal_is_a_bound_parameter_and_columns_come_from_the_mapping() -> None:
    condition = to_sql(check('age >= 18 && "X" in tags && name.startsWith("Al")', CATALOGUE), COLUMNS)
    assert condition.params == (18, "X", "Al")
    assert "18" not in condition.text and "Al" not in condition.text
    assert '"age"' in condition.text and '"tags"' in condition.text


@pytest.mark.parametrize("hostile", ["'; DROP TABLE customer; --", "\\'); DELETE FROM t; --", "$1", "a\" OR 1=1 --"])
def test_a_hostile_string_literal_only_ever_reaches_the_parameters(hostile: str) -> None:
    escaped = hostile.replace("\\", "\\\\").replace('"', '\\"')
    condition = to_sql(check(f'name == "{escaped}" || name.contains("{escaped}")', CATALOGUE), COLUMNS)
    assert condition.params == (hostile, hostile)
    assert "DROP" not in condition.text and "DELETE" not in condition.text and "OR 1=1" not in condition.text


@pytest.mark.parametrize("hostile", ['age; DROP TABLE customer', 'age) OR (1', '`age`', 'age--'])
def test_a_hostile_identifier_never_becomes_a_column(hostile: str) -> None:
    with pytest.raises(InvalidRule):
        to_sql(check(f"{hostile} > 1", CATALOGUE), COLUMNS)


def test_a_variable_without_a_column_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no column for age"):
        to_sql(check("age > 1", CATALOGUE), {"aum": "aum"})


def test_durations_bind_as_microseconds() -> None:
    condition = to_sql(check('now - seen > duration("720h")', CATALOGUE), COLUMNS)
    assert condition.params == (720 * 3600 * 1_000_000,)
    assert "interval '1 microsecond'" in condition.text


# --- closure semantics ---------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "features", "expected"), [
    ("age < 30", {}, False),
    ("!(age >= 30)", {}, False),
    ("age < 30", {"age": None}, False),
    ("!has(age) || age < 30", {}, True),
    ("has(age) && age < 30", {"age": 20}, True),
    ("age > 100 && vip", {"age": 20}, False),
    ("vip || age > 1", {"vip": True}, True),
    ("age > 1 || vip", {"vip": True}, True),
    ("age > 1 || vip", {"vip": False}, False),
    ("age / (age - 3) == 0 || vip", {"age": 3, "vip": False}, False),
    ("!(age / (age - age) == 0)", {"age": 3}, False),
    ("-7 / 2 == -3 && -7 % 2 == -1", {}, True),
    ("age * 4611686018427387904 > 0", {"age": 4}, False),
    ('"X" in tags', {"tags": ["X", "Y"]}, True),
    ('!("X" in tags)', {"tags": []}, True),
    ('!(name in ["a"])', {}, False),
    ("size(tags) == 0", {"tags": []}, True),
    ('size(name) == 3 && name.endsWith("é") && name.contains("b")', {"name": "abé"}, True),
    ('vip ? age > 1 : aum > 1.0', {"vip": False, "aum": 2.0}, True),
    ('vip ? age > 1 : aum > 1.0', {"aum": 2.0}, False),
    ('name < "b"', {"name": "a\U0001F600"}, True),
    ('now - seen > duration("24h")', {"now": datetime(2025, 1, 3, tzinfo=UTC),
                                        "seen": datetime(2025, 1, 1, tzinfo=UTC)}, True),
    ('seen + duration("1h") < timestamp("2025-01-01T02:00:00+01:00")',
     {"seen": datetime(2025, 1, 1, tzinfo=UTC)}, False),
])
def test_the_closure_follows_the_missing_value_semantics(rule: str, features: dict[str, object],
                                                        expected: bool) -> None:
    assert matches(rule, **features) is expected


def test_closure_cost_per_call() -> None:
    """Prints the closure's cost for a realistic rule (no timing assertion: shared machines)."""
    predicate = to_python(check('aum >= 500000.0 && age < 35 && "PAYROLL" in tags && !vip '
                                '&& (name.startsWith("Zh") || size(tags) > 2)', CATALOGUE))
    customers = [{"aum": 600000.0 + i, "age": 20 + i % 30, "tags": ["PAYROLL", "FUND"], "vip": i % 3 == 0,
                  "name": "Zhang"} for i in range(200)]
    samples = []
    for _ in range(50):
        start = time.perf_counter_ns()
        for customer in customers:
            predicate(customer)
        samples.append((time.perf_counter_ns() - start) / len(customers) / 1000)
    samples.sort()
    print(f"\nclosure cost per call: p50 {statistics.median(samples):.2f} us, "
          f"p99 {samples[int(len(samples) * 0.99) - 1]:.2f} us")
    assert sum(predicate(c) for c in customers) > 0
