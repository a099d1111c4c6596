"""The early-warning reasons and suggested actions, pure; the scoring and audit enums mirror the contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm.risk.v1 import decision_audit_pb2, scoring_pb2
from crm_risk.churn.model import Driver
from crm_risk.decisions.model import DecisionType
from crm_risk.early_warning import rules
from crm_risk.early_warning.model import Candidate, ReasonKind, RetentionAction
from crm_risk.scoring import rules as scoring_rules
from crm_risk.scoring.model import RiskBand, Score
from crmkit.testing import assert_enum_mirrors

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def candidate(**overrides: object) -> Candidate:
    values: dict[str, object] = dict(
        customer_id="c", relationship_manager_id="rm", branch_id="b", churn_model_id="m", probability=0.8,
        risk_band=RiskBand.HIGH, drivers=(Driver("is_active_member", "0", "1", 0.2),), score_time=T0,
        open_alerts=0, open_large_outflows=0, first_alert_time=None)
    values.update(overrides)
    return Candidate(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("overrides", "action"), [
    ({}, RetentionAction.RE_ENGAGE),
    ({"drivers": (Driver("account_balance", "0", "9", 0.2),)}, RetentionAction.PRODUCT_REVIEW),
    ({"drivers": (Driver("region", "DE", "FR", 0.2),)}, RetentionAction.RELATIONSHIP_REVIEW),
    ({"open_alerts": 1, "open_large_outflows": 1}, RetentionAction.CALL_ABOUT_OUTFLOW),
    ({"open_alerts": 2, "open_large_outflows": 1}, RetentionAction.WORK_OPEN_ALERT),
])
def test_the_suggestion_follows_the_most_serious_reason(overrides: dict[str, object], action: RetentionAction) -> None:
    assert rules.suggest(candidate(**overrides)) == action


def test_reasons_come_most_serious_first_and_a_medium_score_alone_gives_none() -> None:
    found = rules.reasons(candidate(open_alerts=2, open_large_outflows=1, first_alert_time=T0))
    assert [r.kind for r in found] == [ReasonKind.LARGE_OUTFLOW, ReasonKind.OPEN_ALERT, ReasonKind.HIGH_CHURN_RISK]
    assert rules.reasons(candidate(risk_band=RiskBand.MEDIUM)) == ()


def score(probability: float, band: RiskBand) -> Score:
    return Score(customer_id="c", churn_model_id="m", model_version=1, probability=probability, risk_band=band,
                 drivers=(), features_as_of=None, score_time=T0, decision_audit="")


def test_a_score_is_published_when_first_written_when_its_band_changes_or_it_moves_a_step() -> None:
    assert scoring_rules.publishes(None, score(0.1, RiskBand.LOW))
    assert not scoring_rules.publishes(score(0.10, RiskBand.LOW), score(0.14, RiskBand.LOW))
    assert scoring_rules.publishes(score(0.10, RiskBand.LOW), score(0.15, RiskBand.LOW))
    assert scoring_rules.publishes(score(0.29, RiskBand.LOW), score(0.30, RiskBand.MEDIUM))
    thresholds = {"medium_min_probability": 0.3, "high_min_probability": 0.6}
    assert [scoring_rules.band_of(p, thresholds) for p in (0.29, 0.3, 0.6)] == [RiskBand.LOW, RiskBand.MEDIUM,
                                                                                 RiskBand.HIGH]


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (RiskBand, scoring_pb2.RiskBand, "RISK_BAND_"),
    (ReasonKind, scoring_pb2.EarlyWarningReasonKind, "EARLY_WARNING_REASON_KIND_"),
    (RetentionAction, scoring_pb2.EarlyWarningAction, "EARLY_WARNING_ACTION_"),
    (DecisionType, decision_audit_pb2.DecisionType, "DECISION_TYPE_"),
])
def test_enums_mirror_the_contract(domain, proto, prefix) -> None:  # type: ignore[no-untyped-def]
    assert_enum_mirrors(domain, proto, prefix=prefix)
