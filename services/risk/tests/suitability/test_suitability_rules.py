"""The suitability matrix and its age, KYC and vulnerability rules, without a database."""

from __future__ import annotations

from datetime import date
from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from crm.common.v1 import product_risk_pb2
from crm.profile.v1 import customer_pb2
from crm.risk.v1 import alert_pb2, suitability_pb2
from crm_risk.alerts.model import Kind, Severity
from crm_risk.suitability import rules
from crm_risk.suitability.model import (
    CustomerFacts,
    Effect,
    KycStatus,
    Outcome,
    ProductRiskLevel,
    Purpose,
    ReasonCode,
    RuleSet,
)
from crmkit.errors import InvalidArgument
from crmkit.testing import assert_enum_mirrors

TODAY = date(2026, 11, 23)
ADULT = date(1985, 3, 14)
MARKETING, SALE = Purpose.MARKETING, Purpose.SALE


def facts(**changes: object) -> CustomerFacts:
    values: dict[str, object] = dict(risk_tolerance=3, kyc_status=KycStatus.VERIFIED, birth_date=ADULT,
                                     vulnerable=False)
    values.update(changes)
    return CustomerFacts(**values)  # type: ignore[arg-type]


def decide(customer: CustomerFacts, level: int, purpose: int = MARKETING):  # type: ignore[no-untyped-def]
    return rules.decide(customer, product_risk_level=level, purpose=purpose, today=TODAY)


def codes(decision) -> list[tuple[ReasonCode, Effect]]:  # type: ignore[no-untyped-def]
    return [(r.code, r.effect) for r in decision.reasons]


@pytest.mark.parametrize("tolerance", range(0, 6))
@pytest.mark.parametrize("level", range(1, 6))
def test_the_tolerance_matrix_allows_products_up_to_the_customers_level(tolerance: int, level: int) -> None:
    decision = decide(facts(risk_tolerance=tolerance), level)
    # C1 buys up to R1, C2 up to R2, ...; without an assessment only R1.
    assert decision.allowed is (level <= max(tolerance, 1))
    assert decision.customer_risk_tolerance == tolerance
    expected = []
    if tolerance == 0 and level > 1:
        expected = [(ReasonCode.TOLERANCE_NOT_ASSESSED, Effect.BLOCK)]
    elif tolerance and level > tolerance:
        expected = [(ReasonCode.RISK_ABOVE_TOLERANCE, Effect.BLOCK)]
    assert codes(decision) == expected


def test_the_explanation_names_levels_not_people() -> None:
    (reason,) = decide(facts(risk_tolerance=2), 4).reasons
    assert reason.message == "Product R4 exceeds customer tolerance C2"


@pytest.mark.parametrize("status", [KycStatus.UNSPECIFIED, KycStatus.PENDING, KycStatus.EXPIRED, KycStatus.REJECTED])
def test_kyc_not_verified_blocks_everything_above_r1(status: KycStatus) -> None:
    assert decide(facts(kyc_status=status), 1).allowed
    decision = decide(facts(kyc_status=status), 2)
    assert not decision.allowed and codes(decision) == [(ReasonCode.KYC_NOT_VERIFIED, Effect.BLOCK)]


@pytest.mark.parametrize(
    ("birth_date", "minor"),
    [(date(2008, 11, 24), True), (date(2008, 11, 23), False), (date(2010, 1, 1), True)],
)
def test_minors_get_r1_only(birth_date: date, minor: bool) -> None:
    assert decide(facts(birth_date=birth_date), 1).allowed
    decision = decide(facts(birth_date=birth_date, risk_tolerance=5), 2)
    assert decision.allowed is not minor
    assert ((ReasonCode.MINOR, Effect.BLOCK) in codes(decision)) is minor


@pytest.mark.parametrize(
    ("level", "purpose", "expected"),
    [(3, MARKETING, None), (4, MARKETING, Effect.BLOCK), (5, MARKETING, Effect.BLOCK),
     (4, SALE, Effect.IN_PERSON_REVIEW), (4, Purpose.UNSPECIFIED, Effect.BLOCK)],
)
def test_seniors_are_not_marketed_above_r3_and_sales_need_care(level: int, purpose: int,
                                                               expected: Effect | None) -> None:
    senior = facts(birth_date=date(1961, 11, 23), risk_tolerance=5)  # 65 today
    decision = decide(senior, level, purpose)
    assert codes(decision) == ([] if expected is None else [(ReasonCode.SENIOR, expected)])
    assert decision.outcome == {None: Outcome.ALLOW, Effect.BLOCK: Outcome.DENY,
                                Effect.IN_PERSON_REVIEW: Outcome.NEEDS_IN_PERSON_REVIEW}[expected]
    assert decision.allowed is (expected is None)


def test_a_day_before_65_is_not_senior() -> None:
    assert decide(facts(birth_date=date(1961, 11, 24), risk_tolerance=5), 5).allowed


def test_unknown_birth_date_advises_above_r1_only() -> None:
    assert codes(decide(facts(birth_date=None), 1)) == []
    decision = decide(facts(birth_date=None), 3)
    assert decision.allowed and codes(decision) == [(ReasonCode.AGE_UNKNOWN, Effect.ADVISE)]


@pytest.mark.parametrize(("purpose", "effect", "outcome"), [
    (MARKETING, Effect.BLOCK, Outcome.DENY), (SALE, Effect.IN_PERSON_REVIEW, Outcome.NEEDS_IN_PERSON_REVIEW)])
def test_vulnerable_customers_are_not_marketed_above_r1_and_sales_need_review(purpose: int, effect: Effect,
                                                                              outcome: Outcome) -> None:
    assert decide(facts(vulnerable=True), 1, purpose).allowed
    decision = decide(facts(vulnerable=True), 2, purpose)
    assert codes(decision) == [(ReasonCode.VULNERABLE_CUSTOMER, effect)]
    assert decision.outcome == outcome and not decision.allowed


@pytest.mark.parametrize(("expiry", "level", "purpose", "outcome"), [
    (date(2026, 11, 22), 3, MARKETING, Outcome.DENY),
    (date(2026, 11, 22), 3, SALE, Outcome.NEEDS_IN_PERSON_REVIEW),
    (date(2026, 11, 22), 1, MARKETING, Outcome.ALLOW),
    (date(2026, 11, 23), 3, MARKETING, Outcome.ALLOW),  # valid through its last day
    (None, 3, MARKETING, Outcome.ALLOW),
])
def test_an_expired_assessment_blocks_marketing_and_sends_a_sale_to_review(
        expiry: date | None, level: int, purpose: int, outcome: Outcome) -> None:
    decision = decide(facts(assessment_expiry=expiry), level, purpose)
    assert decision.outcome == outcome
    assert (ReasonCode.ASSESSMENT_EXPIRED in {r.code for r in decision.reasons}) is (outcome != Outcome.ALLOW)


def test_every_applicable_rule_is_reported_blocking_first() -> None:
    customer = CustomerFacts(risk_tolerance=2, kyc_status=KycStatus.EXPIRED, birth_date=date(1950, 1, 1),
                             vulnerable=True)
    decision = decide(customer, 5, SALE)
    assert not decision.allowed
    assert decision.outcome == Outcome.DENY
    assert codes(decision) == [
        (ReasonCode.RISK_ABOVE_TOLERANCE, Effect.BLOCK),
        (ReasonCode.KYC_NOT_VERIFIED, Effect.BLOCK),
        (ReasonCode.SENIOR, Effect.IN_PERSON_REVIEW),
        (ReasonCode.VULNERABLE_CUSTOMER, Effect.IN_PERSON_REVIEW),
    ]
    assert decision.rule_set_version == rules.DEFAULT_RULE_SET.version


def test_age_limits_are_settings_of_the_rule_set() -> None:
    stricter = RuleSet(version="test", senior_age=60, senior_max_level=2)
    decision = rules.decide(facts(birth_date=date(1965, 1, 1), risk_tolerance=5), product_risk_level=3,
                            purpose=MARKETING, today=TODAY, rule_set=stricter)
    assert codes(decision) == [(ReasonCode.SENIOR, Effect.BLOCK)] and decision.rule_set_version == "test"


def test_ages_count_completed_years_and_leap_birthdays() -> None:
    assert rules.age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert rules.age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18
    assert rules.age_on(date(2000, 2, 29), date(2024, 2, 29)) == 24


def test_unknown_customers_in_a_batch_are_blocked() -> None:
    decision = rules.unknown_customer()
    assert not decision.allowed and codes(decision) == [(ReasonCode.CUSTOMER_UNKNOWN, Effect.BLOCK)]


def test_request_validation_names_every_bad_field() -> None:
    v = rules.validate_check(customers=["C1"], product_code="fund 1", product_risk_level=0, purpose=7,
                             context="x" * 201, batch=False)
    with pytest.raises(Exception) as error:
        v.raise_if_any()
    assert {f.field for f in error.value.violations} == {  # type: ignore[attr-defined]
        "customer", "product_code", "product_risk_level", "purpose", "context"}
    batch = rules.validate_check(customers=["customers/a", "customers/a", "bad"], product_code="FUND-1",
                                 product_risk_level=3, purpose=0, context="", batch=True)
    with pytest.raises(Exception) as batch_error:
        batch.raise_if_any()
    assert {f.field for f in batch_error.value.violations} == {"customers", "customers[2]"}  # type: ignore[attr-defined]
    assert not rules.validate_check(customers=["customers/a"], product_code="FUND-1", product_risk_level=3,
                                    purpose=2, context="campaigns/c1", batch=False)


def test_an_unknown_product_risk_level_is_named_as_such_and_a_missing_one_as_required() -> None:
    def described(level: int) -> str:
        v = rules.validate_check(customers=["customers/a"], product_code="FUND-1", product_risk_level=level,
                                 purpose=1, context="", batch=False)
        with pytest.raises(InvalidArgument) as error:
            v.raise_if_any()
        return {f.field: f.description for f in error.value.violations}["product_risk_level"]

    assert described(9) == "9 is not a known ProductRiskLevel value"
    assert described(0).startswith("is required")


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (ProductRiskLevel, product_risk_pb2.ProductRiskLevel, "PRODUCT_RISK_LEVEL_"),
    (Purpose, suitability_pb2.SuitabilityPurpose, "SUITABILITY_PURPOSE_"),
    (ReasonCode, suitability_pb2.SuitabilityReasonCode, "SUITABILITY_REASON_CODE_"),
    (Effect, suitability_pb2.ReasonEffect, "REASON_EFFECT_"),
    (Outcome, suitability_pb2.SuitabilityOutcome, "SUITABILITY_OUTCOME_"),
    (KycStatus, customer_pb2.KycStatus, "KYC_STATUS_"),
    (Kind, alert_pb2.AlertRuleKind, "ALERT_RULE_KIND_"),
    (Severity, alert_pb2.AlertSeverity, "ALERT_SEVERITY_"),
])
def test_domain_enums_mirror_the_contract(domain: type[IntEnum], proto: EnumTypeWrapper, prefix: str) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)
