"""Alert rule rules (validation, masks, defaults), without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_risk.alerts import rules
from crm_risk.alerts.model import (
    AbnormalTransactions,
    AlertRule,
    ComplaintsSpike,
    ContactDetailChanges,
    Kind,
    LargeOutflows,
    Money,
)
from crm_risk.alerts.repository import decode_parameters, encode_parameters
from crmkit.validation import Violations

CNY = Money("CNY", 500_000)


def rule(**changes: object) -> AlertRule:
    values: dict[str, object] = dict(alert_rule_id="outflow-1", display_name="Large outflow", kind=Kind.LARGE_OUTFLOWS,
                                     severity=3, window=timedelta(days=7), parameters=LargeOutflows(min_amount=CNY))
    values.update(changes)
    return AlertRule(**values)  # type: ignore[arg-type]


def fields(violations: Violations) -> set[str]:
    try:
        violations.raise_if_any()
    except Exception as exc:
        return {v.field for v in exc.violations}  # type: ignore[attr-defined]
    return set()


def test_a_valid_rule_has_no_violations() -> None:
    assert fields(rules.validate(rule())) == set()


@pytest.mark.parametrize(
    ("window", "ok"),
    [(timedelta(hours=1), True), (timedelta(days=90), True), (timedelta(minutes=59), False),
     (timedelta(days=90, seconds=1), False), (None, False)],
)
def test_window_is_one_hour_to_ninety_days(window: timedelta | None, ok: bool) -> None:
    assert fields(rules.validate(rule(window=window))) == (set() if ok else {"alert_rule.window"})


def test_unset_or_zero_durations_take_the_contract_defaults() -> None:
    plain = rule()
    assert rules.effective_response_sla(plain) == timedelta(hours=24)
    assert rules.effective_response_sla(rule(response_sla=timedelta(0))) == timedelta(hours=24)
    assert rules.effective_cooldown(plain) == timedelta(days=7), "cooldown defaults to the window"
    assert rules.effective_cooldown(rule(cooldown=timedelta(days=2))) == timedelta(days=2)
    assert fields(rules.validate(rule(response_sla=timedelta(0), cooldown=timedelta(0)))) == set()


def test_an_alert_is_due_24_hours_after_it_is_raised_unless_the_rule_says_otherwise() -> None:
    raised = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert rules.alert_due_time(rule(), triggered_at=raised) == datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert rules.alert_due_time(rule(response_sla=timedelta(hours=4)), triggered_at=raised) == raised + timedelta(
        hours=4)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        (None, "alert_rule.large_outflows"),
        (ComplaintsSpike(min_complaints=3), "alert_rule.complaints_spike"),
        (LargeOutflows(), "alert_rule.large_outflows.min_amount"),
        (LargeOutflows(min_amount=Money("CNY", 0, 0)), "alert_rule.large_outflows.min_amount"),
        (LargeOutflows(min_amount=Money("CNY", 1, -5)), "alert_rule.large_outflows.min_amount"),
        (LargeOutflows(min_amount=Money("CNY", 0, 1_000_000_000)), "alert_rule.large_outflows.min_amount"),
        (LargeOutflows(min_amount=Money("", 5)), "alert_rule.large_outflows.min_amount.currency_code"),
        (LargeOutflows(min_amount=CNY, min_balance_share=float("nan")), "alert_rule.large_outflows.min_balance_share"),
    ],
)
def test_parameters_must_match_the_kind_and_its_bounds(parameters: object, field: str) -> None:
    assert fields(rules.validate(rule(parameters=parameters))) == {field}


def test_a_tiny_positive_amount_is_positive() -> None:
    assert fields(rules.validate(rule(parameters=LargeOutflows(min_amount=Money("CNY", 0, 1))))) == set()


def test_contact_fields_must_be_known_and_distinct() -> None:
    ok = rule(kind=Kind.CONTACT_DETAIL_CHANGES, parameters=ContactDetailChanges(min_changes=2, fields=("email",)))
    assert fields(rules.validate(ok)) == set()
    twice = rule(kind=Kind.CONTACT_DETAIL_CHANGES,
                 parameters=ContactDetailChanges(min_changes=2, fields=("email", "email")))
    assert fields(rules.validate(twice)) == {"alert_rule.contact_detail_changes.fields"}


def test_mask_accepts_own_parameters_only() -> None:
    assert fields(rules.check_mask(["enabled", "large_outflows", "large_outflows.min_amount"],
                                   Kind.LARGE_OUTFLOWS)) == set()
    for paths in ([], ["kind"], ["complaints_spike"], ["large_outflows.min_amount.units"], ["etag"]):
        assert fields(rules.check_mask(paths, Kind.LARGE_OUTFLOWS)) == {"update_mask"}, paths


def test_apply_takes_only_the_masked_fields() -> None:
    current = rule(parameters=LargeOutflows(min_amount=CNY, min_balance_share=0.3))
    changes = rule(display_name="new", enabled=True,
                   parameters=LargeOutflows(min_amount=Money("USD", 9), include_own_account_transfers=True))
    updated = rules.apply(current, changes, ["enabled", "large_outflows.min_amount"])
    assert updated.enabled and updated.display_name == "Large outflow"
    assert updated.parameters == LargeOutflows(min_amount=Money("USD", 9), min_balance_share=0.3)
    # A parameter path with the message unset in the request reads as its default, as in proto3.
    cleared = rules.apply(current, rule(parameters=None), ["large_outflows.min_balance_share"])
    assert cleared.parameters == LargeOutflows(min_amount=CNY, min_balance_share=0.0)


@pytest.mark.parametrize(
    ("kind", "parameters"),
    [
        (Kind.CONTACT_DETAIL_CHANGES, ContactDetailChanges(min_changes=3, fields=("email", "address"))),
        (Kind.ABNORMAL_TRANSACTIONS, AbnormalTransactions(
            min_z_score=3.5, baseline_window=timedelta(days=90, microseconds=7), min_amount=Money("CNY", 1, 500),
            min_transactions=2)),
        (Kind.ABNORMAL_TRANSACTIONS, AbnormalTransactions(min_amount=Money("CNY", 1))),
        (Kind.LARGE_OUTFLOWS, LargeOutflows(min_amount=CNY, min_balance_share=0.25,
                                            include_own_account_transfers=True)),
        (Kind.COMPLAINTS_SPIKE, ComplaintsSpike(min_complaints=2, count_poor_survey_scores=True)),
    ],
)
def test_stored_parameters_read_back_as_themselves(kind: Kind, parameters: object) -> None:
    assert decode_parameters(kind, encode_parameters(parameters)) == parameters  # type: ignore[arg-type]
