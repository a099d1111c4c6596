"""Pure segment rules: the catalogue, rule analysis and segment validation. No database."""

from __future__ import annotations

from datetime import timedelta
from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.segment.v1 import segment_pb2
from crm_segment.segments import rules
from crm_segment.segments.model import EvaluationMode, FeatureType, Segment, Severity
from crmkit.errors import InvalidArgument
from crmkit.testing import assert_enum_mirrors


def reasons(rule: str, mode: EvaluationMode = EvaluationMode.BATCH) -> list[str]:
    return [i.reason for i in rules.analyse(rule, mode=mode).issues]


def segment(**overrides: object) -> Segment:
    values: dict[str, object] = {"segment_id": "vip-growth", "display_name": "VIP growth", "rule": "aum > 1.0"}
    values.update(overrides)
    return Segment(**values)  # type: ignore[arg-type]


def bad_fields(candidate: Segment) -> set[str]:
    violations = rules.validate(candidate)
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return {v.field for v in error.violations}
    return set()


# --- the catalogue ------------------------------------------------------------------------------


def test_the_catalogue_is_sorted_unique_and_well_formed() -> None:
    names = [f.feature for f in rules.FEATURES]
    assert names == sorted(names) and len(names) == len(set(names))
    for feature in rules.FEATURES:
        assert feature.feature.islower() and " " not in feature.feature
        assert feature.description and feature.source
        if feature.allowed_values:
            assert feature.type in (FeatureType.STRING, FeatureType.STRING_LIST)
    assert not set(names) & rules.BUILTIN_VARIABLES


def test_the_contract_example_rule_is_valid() -> None:
    analysis = rules.analyse('aum >= 500000.0 && age < 35 && "PAYROLL" in product_categories')
    assert analysis.valid and analysis.issues == ()
    assert analysis.referenced_features == ("age", "aum", "product_categories")
    assert analysis.real_time_capable


def test_feature_pages_follow_feature_order() -> None:
    first = rules.feature_page(after=None, limit=5, real_time_only=False)
    rest = rules.feature_page(after=first[-1].feature, limit=1000, real_time_only=False)
    assert [f.feature for f in first + rest] == [f.feature for f in rules.FEATURES]
    assert all(f.real_time for f in rules.feature_page(after=None, limit=1000, real_time_only=True))


# --- rule analysis ------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [
    "aum > 1.0",
    "'TERM_DEPOSIT' in product_categories",
    "!('LOAN' in product_categories) && size(product_categories) >= 2",
    "now - last_login_time > duration('720h')",
    "last_login_time >= timestamp('2026-01-01T00:00:00Z')",
    "-aum < 0.0",
    "value_tier in ['VALUE_TIER_VIP', 'VALUE_TIER_PRIVATE']",
    "!(kyc_status == 'KYC_STATUS_EXPIRED')",
    "branch_id.startsWith('BJ-') || nationality == 'CN'",
    "has_relationship_manager",
    "aum > 1.0 // a comment",
    "has(age) ? age < 35 : payroll_active",
])
def test_valid_rules_have_no_errors(rule: str) -> None:
    assert rules.analyse(rule).errors == ()


@pytest.mark.parametrize(("rule", "reason"), [
    ("aum >= ", "SYNTAX_ERROR"),
    ("(aum > 1.0", "SYNTAX_ERROR"),
    ("'unterminated", "SYNTAX_ERROR"),
    ("aum @ 1", "SYNTAX_ERROR"),
    ("amu > 1.0", "UNKNOWN_FEATURE"),
    ("customer.aum > 1.0", "UNSUPPORTED_SYNTAX"),
    ("aum > 1.0 && c == 'Y'", "UNKNOWN_FEATURE"),
    ("product_categories.exists(c, c == 'X')", "UNSUPPORTED_FUNCTION"),
    ("branch_id.matches('^BJ-')", "UNSUPPORTED_FUNCTION"),
    ("type(aum) == double", "UNSUPPORTED_FUNCTION"),
    ("eval(aum)", "UNSUPPORTED_FUNCTION"),
    ("aum.round() > 1", "UNSUPPORTED_FUNCTION"),
    ("Customer{aum: 1}", "UNSUPPORTED_SYNTAX"),
    ("aum", "NOT_BOOLEAN"),
    ("aum * 2.0", "NOT_BOOLEAN"),
    ("'text'", "NOT_BOOLEAN"),
    ("[true]", "TYPE_MISMATCH"),
    ("age > 30.0", "TYPE_MISMATCH"),
    ("product_categories == product_categories", "TYPE_MISMATCH"),
    ("age > '30'", "TYPE_MISMATCH"),
    ("'30' < age", "TYPE_MISMATCH"),
    ("value_tier == 2", "TYPE_MISMATCH"),
    ("1 in product_categories", "TYPE_MISMATCH"),
])
def test_each_kind_of_mistake_is_an_error(rule: str, reason: str) -> None:
    analysis = rules.analyse(rule)
    assert not analysis.valid
    assert reason in [i.reason for i in analysis.errors]


def test_a_syntax_error_reports_its_line_and_column() -> None:
    [issue] = rules.analyse("aum > 1.0 &&\n   && age < 35").issues
    assert (issue.reason, issue.line, issue.column) == ("SYNTAX_ERROR", 2, 4)
    [early_end] = rules.analyse("aum >=").issues
    assert (early_end.line, early_end.column) == (1, 7)
    assert early_end.describe().startswith("line 1, column 7: ")


def test_an_unknown_feature_suggests_the_closest_one_once() -> None:
    analysis = rules.analyse("amu > 1.0 || amu < 0.0")
    [issue] = analysis.issues
    assert issue.message == 'unknown feature "amu"; did you mean "aum"?'
    assert (issue.line, issue.column) == (1, 1)
    assert not analysis.real_time_capable
    assert "ListFeatures" in rules.analyse("zzzzzz > 1").issues[0].message


def test_macros_are_refused_where_they_are_called() -> None:
    [issue] = rules.analyse("payroll_active && product_categories.exists(p, p == 'FUND')").issues
    assert (issue.reason, issue.line, issue.column) == ("UNSUPPORTED_FUNCTION", 1, 38)


def test_real_time_mode_refuses_batch_features_where_they_are_used() -> None:
    rule = "aum > 1.0 && value_tier == 'VALUE_TIER_VIP'"
    batch = rules.analyse(rule, mode=EvaluationMode.BATCH)
    assert batch.valid and not batch.real_time_capable
    real_time = rules.analyse(rule, mode=EvaluationMode.REAL_TIME)
    [issue] = real_time.issues
    assert (issue.reason, issue.severity, issue.column) == ("NOT_REAL_TIME_FEATURE", Severity.ERROR, 14)


def test_the_first_error_is_reported_and_a_rule_always_true_is_a_warning() -> None:
    analysis = rules.analyse("true || (zz > 1 && yy > 2)")
    assert [(i.severity, i.reason, i.column) for i in analysis.issues] == [(Severity.ERROR, "UNKNOWN_FEATURE", 10)]
    warning = rules.analyse("true")
    assert [(i.severity, i.reason) for i in warning.issues] == [(Severity.WARNING, "ALWAYS_TRUE")]
    assert warning.valid


@pytest.mark.parametrize("depth", [50, 2000])
def test_deeply_nested_rules_are_analysed_without_recursion(depth: int) -> None:
    assert rules.analyse("(" * depth + "aum > 1.0" + ")" * depth).valid
    # Parentheses cost the checker nothing; a tower of operators is refused, not a crash.
    negated = rules.analyse("!" * depth + "payroll_active")
    assert negated.valid if depth == 50 else [i.reason for i in negated.issues] == ["TOO_DEEP"]
    assert [i.reason for i in rules.analyse("(" * depth + "amu > 1.0" + ")" * depth).issues] == ["UNKNOWN_FEATURE"]


def test_a_rule_too_long_or_blank_is_not_worth_parsing() -> None:
    assert rules.rule_length_ok("aum > 1.0")
    assert not rules.rule_length_ok("  ")
    assert not rules.rule_length_ok("a" * 10_001)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_analysis_never_crashes_on_arbitrary_text(text: str) -> None:
    analysis = rules.analyse(text)
    assert all(i.reason and isinstance(i.line, int) and isinstance(i.column, int) for i in analysis.issues)
    assert analysis.valid == (not analysis.errors)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([f.feature for f in rules.FEATURES]), min_size=1, max_size=4))
def test_every_catalogue_feature_is_accepted_and_reported(features: list[str]) -> None:
    rule = " || ".join(f"has({name})" for name in features)
    referenced = rules.analyse(rule).referenced_features
    assert referenced == tuple(sorted(set(features)))


# --- segments -----------------------------------------------------------------------------------


def test_a_valid_segment_has_no_violations() -> None:
    assert bad_fields(segment()) == set()
    assert bad_fields(segment(refresh_interval=timedelta(hours=1))) == set()
    assert bad_fields(segment(refresh_interval=timedelta(days=31))) == set()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"segment_id": ""}, "segment.segment_id"),
    ({"segment_id": "a" * 64}, "segment.segment_id"),
    ({"segment_id": "under_score"}, "segment.segment_id"),
    ({"display_name": ""}, "segment.display_name"),
    ({"display_name": "n" * 101}, "segment.display_name"),
    ({"description": "d" * 1001}, "segment.description"),
    ({"rule": ""}, "segment.rule"),
    ({"rule": "aum >"}, "segment.rule"),
    ({"evaluation_mode": EvaluationMode.UNSPECIFIED}, "segment.evaluation_mode"),
    ({"refresh_interval": timedelta(minutes=59)}, "segment.refresh_interval"),
    ({"refresh_interval": timedelta(days=31, seconds=1)}, "segment.refresh_interval"),
])
def test_each_bad_field_is_named(overrides: dict[str, object], field: str) -> None:
    assert field in bad_fields(segment(**overrides))


def test_normalise_trims_names_and_defaults_the_mode() -> None:
    normal = rules.normalise(segment(display_name="  VIP   growth ", description=" x ",
                                     evaluation_mode=EvaluationMode.UNSPECIFIED, refresh_interval=timedelta(0)))
    assert normal.display_name == "VIP growth" and normal.description == "x"
    assert normal.evaluation_mode is EvaluationMode.BATCH
    assert normal.refresh_interval is None


def test_apply_bumps_the_rule_version_only_when_membership_may_change() -> None:
    current = segment(rule_version=4)
    assert rules.apply(current, segment(description="new"), ["description"]).rule_version == 4
    assert rules.apply(current, segment(rule="aum > 1.0"), ["rule"]).rule_version == 4
    assert rules.apply(current, segment(rule="aum > 2.0"), ["rule"]).rule_version == 5
    changed_mode = rules.apply(current, segment(evaluation_mode=EvaluationMode.REAL_TIME), ["evaluation_mode"])
    assert changed_mode.rule_version == 5
    untouched = rules.apply(current, segment(display_name="other", rule="aum > 9.0"), ["display_name"])
    assert untouched.rule == "aum > 1.0" and untouched.display_name == "other"


@pytest.mark.parametrize("paths", [[], ["segment_id"], ["rule_version"], ["display_name", "creator"]])
def test_a_mask_naming_nothing_or_an_immutable_field_is_refused(paths: list[str]) -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.check_mask(paths)
    assert {v.field for v in error.value.violations} == {"update_mask"}


def test_watched_segments_must_be_segment_names() -> None:
    assert rules.validate_watched_segments(["segments/a", "segments/b-2"]) == ("segments/a", "segments/b-2")
    with pytest.raises(InvalidArgument) as error:
        rules.validate_watched_segments(["segments/a", "segments/A", "customers/x"])
    assert {v.field for v in error.value.violations} == {"segments[1]", "segments[2]"}


def test_an_unknown_evaluation_mode_is_named_by_its_number() -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.read_evaluation_mode(9, "segment.evaluation_mode")
    assert [(v.field, v.description) for v in error.value.violations] == [
        ("segment.evaluation_mode", "9 is not a known SegmentEvaluationMode value")]
    assert rules.read_evaluation_mode(0, "evaluation_mode") is EvaluationMode.UNSPECIFIED


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (EvaluationMode, segment_pb2.SegmentEvaluationMode, "SEGMENT_EVALUATION_MODE_"),
    (FeatureType, segment_pb2.FeatureType, "FEATURE_TYPE_"),
    (Severity, segment_pb2.RuleIssueSeverity, "RULE_ISSUE_SEVERITY_"),
])
def test_domain_enums_mirror_the_contract(domain: type[IntEnum], proto: EnumTypeWrapper, prefix: str) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)
