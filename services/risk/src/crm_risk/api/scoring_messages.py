"""crm.risk.v1 scoring messages <-> values. Nothing else: no rules, no I/O."""

from __future__ import annotations

import math

from crm.risk.v1 import scoring_pb2 as sc
from crm_risk.churn.model import Driver
from crm_risk.early_warning.model import EarlyWarning
from crm_risk.scoring.batch import BatchResult
from crm_risk.scoring.model import RiskBand, Score
from crmkit.values import set_timestamps


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def driver_to_proto(driver: Driver) -> sc.ChurnDriver:
    return sc.ChurnDriver(feature=driver.feature, value=_number(driver.value), contribution=driver.contribution,
                          display_value=driver.value, reference_value=driver.reference)


def to_proto(score: Score) -> sc.ChurnScore:
    message = sc.ChurnScore(
        customer=f"customers/{score.customer_id}", model=score.model, model_version=score.model_version,
        probability=score.probability, risk_band=sc.RiskBand.ValueType(score.risk_band),
        top_drivers=[driver_to_proto(d) for d in score.drivers], decision_audit=score.decision_audit)
    set_timestamps(message, features_as_of=score.features_as_of, score_time=score.score_time)
    return message


def warning_to_proto(warning: EarlyWarning) -> sc.EarlyWarning:
    c = warning.candidate
    message = sc.EarlyWarning(
        customer=f"customers/{c.customer_id}", relationship_manager_id=c.relationship_manager_id,
        branch_id=c.branch_id, churn_probability=c.probability or 0.0,
        risk_band=sc.RiskBand.ValueType(c.risk_band), top_drivers=[driver_to_proto(d) for d in c.drivers[:3]],
        open_alerts=c.open_alerts, model=f"churnModels/{c.churn_model_id}" if c.churn_model_id else "",
        suggested_action=sc.EarlyWarningAction.ValueType(warning.action),
        suggested_action_description=warning.action_description)
    for r in warning.reasons:
        reason = message.reasons.add(kind=sc.EarlyWarningReasonKind.ValueType(r.kind), description=r.description)
        set_timestamps(reason, observe_time=r.observe_time)
    set_timestamps(message, first_flag_time=warning.first_flag_time, score_time=c.score_time)
    return message


def batch_result_to_proto(result: BatchResult) -> sc.ScoreCustomersResult:
    bands = result.bands or {}
    message = sc.ScoreCustomersResult(
        model=result.model.name, model_version=result.model.version, scored_customers=result.scored,
        failed_customers=result.failed, low_band_customers=bands.get(RiskBand.LOW, 0),
        medium_band_customers=bands.get(RiskBand.MEDIUM, 0), high_band_customers=bands.get(RiskBand.HIGH, 0),
        written_back=result.written_back)
    set_timestamps(message, features_as_of=result.features_as_of)
    return message
