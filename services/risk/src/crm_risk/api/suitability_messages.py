"""crm.risk.v1 suitability and decision audit messages <-> values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, time

from crm.common.v1 import product_risk_pb2
from crm.risk.v1 import decision_audit_pb2 as da
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import suitability_pb2 as su
from crm_risk.api.alert_messages import CUSTOMER_NAME, interval_from
from crm_risk.decisions.model import DecisionAudit, DecisionFilter
from crm_risk.suitability.service import SuitabilityCheck
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import set_timestamps


def result_to_proto(check: SuitabilityCheck) -> su.SuitabilityResult:
    decision = check.decision
    message = su.SuitabilityResult(
        customer=f"customers/{check.customer_id}", product_code=check.product_code,
        product_risk_level=product_risk_pb2.ProductRiskLevel.ValueType(check.product_risk_level),
        allowed=decision.allowed, outcome=su.SuitabilityOutcome.ValueType(decision.outcome),
        reasons=[su.SuitabilityReason(code=su.SuitabilityReasonCode.ValueType(r.code),
                                      effect=su.ReasonEffect.ValueType(r.effect), message=r.message)
                 for r in decision.reasons],
        customer_risk_tolerance=su.RiskTolerance.ValueType(decision.customer_risk_tolerance),
        rule_set_version=decision.rule_set_version, decision_audit=check.decision_audit)
    expiry = (datetime.combine(check.assessment_expiry, time.max, tzinfo=UTC)
              if check.assessment_expiry is not None else None)
    set_timestamps(message, data_as_of=check.data_as_of, assessment_expire_time=expiry)
    return message


def audit_filter_from(request: pb.ListDecisionAuditsRequest) -> DecisionFilter:
    bad: list[FieldViolation] = []
    start, end = interval_from(request, "decide_interval", bad)
    customer_id = ""
    if request.customer:
        if CUSTOMER_NAME.matches(request.customer):
            customer_id = CUSTOMER_NAME.parse_one(request.customer, "customer")
        else:
            bad.append(FieldViolation("customer", "must be customers/{customer_id}"))
    if bad:
        raise InvalidArgument(bad)
    return DecisionFilter(customer_id=customer_id, decision_type=request.decision_type,
                          decided_by=request.decided_by, context=request.context, decide_from=start,
                          decide_before=end)


def audit_to_proto(audit: DecisionAudit) -> da.DecisionAudit:
    message = da.DecisionAudit(
        name=audit.name, decision_type=da.DecisionType.ValueType(audit.decision_type),
        customer=f"customers/{audit.customer_id}", decided_by=audit.decided_by,
        decider_version=audit.decider_version, outcome=audit.outcome, reason_codes=audit.reason_codes,
        inputs=audit.inputs, inputs_sha256=audit.inputs_sha256, context=audit.context, requester=audit.requester,
        trace_id=audit.trace_id)
    set_timestamps(message, decide_time=audit.decide_time)
    return message
