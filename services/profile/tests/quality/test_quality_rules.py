"""The data-quality report's pure rules: thresholds, flags, request checks. No database."""

from __future__ import annotations

import pytest

from crm_profile.quality import rules
from crm_profile.quality.rules import FieldCounts, FieldThreshold, Thresholds
from crmkit.errors import InvalidArgument

BANK = Thresholds(min_completeness_percent=98.0, max_error_rate_percent=2.0)


def test_an_expected_field_below_completeness_is_flagged() -> None:
    row = rules.assess("mobile_phone", "", 100, FieldCounts(filled=97), expected=True, thresholds=BANK)
    assert row.completeness_percent == 97.0 and row.flags == (rules.COMPLETENESS_BELOW_THRESHOLD,)
    unexpected = rules.assess("email", "", 100, FieldCounts(filled=10), expected=False, thresholds=BANK)
    assert unexpected.flags == ()


def test_error_rate_is_over_filled_values_and_flagged_above_the_threshold() -> None:
    counts = FieldCounts(filled=50, invalid=2, violations={"E164": 1, "PATTERN": 1, "LENGTH": 0})
    row = rules.assess("x", "", 100, counts, expected=False, thresholds=BANK)
    assert row.error_rate_percent == 4.0 and row.flags == (rules.ERROR_RATE_ABOVE_THRESHOLD,)
    assert row.violations == (("E164", 1), ("PATTERN", 1))
    empty = rules.assess("x", "", 100, FieldCounts(), expected=False, thresholds=BANK)
    assert empty.error_rate_percent == 0.0 and empty.flags == ()


def test_field_thresholds_override_the_general_ones() -> None:
    applied = rules.effective(BANK, Thresholds(field_thresholds=(FieldThreshold("x", 50.0, None),)))
    row = rules.assess("x", "", 100, FieldCounts(filled=60), expected=True, thresholds=applied)
    assert (row.min_completeness_percent, row.max_error_rate_percent, row.flags) == (50.0, 2.0, ())


def test_request_checks_name_every_bad_member() -> None:
    with pytest.raises(InvalidArgument) as error:
        rules.check_request(["email", "attributes.gone"], Thresholds(
            max_error_rate_percent=101, field_thresholds=(FieldThreshold(""), FieldThreshold("email", -1))),
            frozenset({"kept"}))
    assert {v.field for v in error.value.violations} == {
        "fields[1]", "thresholds.max_error_rate_percent", "thresholds.field_thresholds[0].field",
        "thresholds.field_thresholds[1].min_completeness_percent"}


def test_fields_come_in_report_order() -> None:
    assert rules.order_fields(["attributes.b", "email", "full_name"], ["b", "a"]) == [
        "full_name", "email", "attributes.b"]
    assert rules.order_fields([], ["a"])[-1] == "attributes.a"
