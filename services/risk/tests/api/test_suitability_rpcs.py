"""Suitability checks and the decision audit through a real in-process server and PostgreSQL: the
customer facts come from risk's customer read model (seeded here as the profile feed follower
will fill it); every answer is allow, deny or needs in-person review with its reasons, and every
decision is in ListDecisionAudits; bad input is refused naming each field, with nothing audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.common.v1 import product_risk_pb2 as pr
from crm.risk.v1 import decision_audit_pb2 as da
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import suitability_pb2 as su
from crm_risk.customers.tables import customer
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

CAMPAIGN = bearer(Role.SERVICE, subject="svc-campaign")
AUDITOR = bearer(Role.AUDITOR, subject="au-1")
TODAY = datetime.now(UTC).date()


@pytest.fixture
async def seed(risk_service) -> Any:  # type: ignore[no-untyped-def]
    """`await seed(**facts)`: a customer in the read model; returns its resource name."""
    _, runtime = risk_service

    async def insert(**facts: object) -> str:
        values: dict[str, object] = dict(customer_id=f"c-{uuid.uuid4().hex[:10]}", risk_tolerance=4, kyc_status=2,
                                         age_years=40, age_on=TODAY, vulnerable=False, assessment_expiry=None,
                                         data_as_of=datetime.now(UTC))
        values.update(facts)
        async with runtime.db.unit_of_work() as uow:
            await uow.execute(sa.insert(customer).values(values))
        return f"customers/{values['customer_id']}"

    return insert


async def audits(risk, **filters: Any) -> list[da.DecisionAudit]:  # type: ignore[no-untyped-def]
    return list((await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(**filters), metadata=AUDITOR)
                 ).decision_audits)


def check(name: str, level: int = pr.PRODUCT_RISK_LEVEL_R4, purpose: int = su.SUITABILITY_PURPOSE_MARKETING,
          context: str = "campaigns/spring") -> pb.CheckSuitabilityRequest:
    return pb.CheckSuitabilityRequest(customer=name, product_code="EQ-FUND_01", product_risk_level=level,  # type: ignore[arg-type]
                                      purpose=purpose, context=context)  # type: ignore[arg-type]


async def test_a_check_allows_denies_or_asks_for_review_and_is_audited(risk, seed) -> None:
    fits, cautious, senior = await seed(), await seed(risk_tolerance=2), await seed(risk_tolerance=5, age_years=70)
    allowed = (await risk.CheckSuitability(check(fits), metadata=CAMPAIGN)).result
    assert allowed.outcome == su.SUITABILITY_OUTCOME_ALLOW and allowed.allowed and not allowed.reasons
    assert allowed.customer_risk_tolerance == su.RISK_TOLERANCE_MODERATELY_AGGRESSIVE
    assert allowed.HasField("data_as_of") and allowed.rule_set_version

    denied = (await risk.CheckSuitability(check(cautious), metadata=CAMPAIGN)).result
    assert denied.outcome == su.SUITABILITY_OUTCOME_DENY and not denied.allowed
    assert [(r.code, r.effect) for r in denied.reasons] == [
        (su.SUITABILITY_REASON_CODE_RISK_ABOVE_TOLERANCE, su.REASON_EFFECT_BLOCK)]
    assert denied.reasons[0].message == "Product R4 exceeds customer tolerance C2"

    marketed = (await risk.CheckSuitability(check(senior), metadata=CAMPAIGN)).result
    assert marketed.outcome == su.SUITABILITY_OUTCOME_DENY
    sale = (await risk.CheckSuitability(check(senior, purpose=su.SUITABILITY_PURPOSE_SALE, context=""),
                                        metadata=bearer(Role.CHANNEL_APP))).result
    assert sale.outcome == su.SUITABILITY_OUTCOME_NEEDS_IN_PERSON_REVIEW and not sale.allowed
    assert [(r.code, r.effect) for r in sale.reasons] == [
        (su.SUITABILITY_REASON_CODE_SENIOR, su.REASON_EFFECT_IN_PERSON_REVIEW)]

    [record] = await audits(risk, customer=cautious)
    assert record.name == denied.decision_audit and record.decision_type == da.DECISION_TYPE_SUITABILITY_CHECK
    assert record.outcome.startswith("outcome=DENY allowed=false")
    assert list(record.reason_codes) == ["RISK_ABOVE_TOLERANCE"]
    assert record.requester == "svc-campaign" and record.context == "campaigns/spring"
    assert record.inputs["risk_tolerance"] == 2 and record.inputs["age_years"] == 40
    assert len(record.inputs_sha256) == 64 and record.decided_by == f"suitability/{denied.rule_set_version}"
    senior_audits = await audits(risk, customer=senior)
    assert [a.name for a in senior_audits] == [sale.decision_audit, marketed.decision_audit], "newest first"


async def test_an_expired_assessment_denies_marketing_and_sends_a_sale_to_review(risk, seed) -> None:
    expired = await seed(assessment_expiry=TODAY - timedelta(days=1))
    marketed = (await risk.CheckSuitability(check(expired, level=pr.PRODUCT_RISK_LEVEL_R2),
                                            metadata=CAMPAIGN)).result
    assert marketed.outcome == su.SUITABILITY_OUTCOME_DENY
    assert marketed.reasons[0].code == su.SUITABILITY_REASON_CODE_ASSESSMENT_EXPIRED
    assert marketed.assessment_expire_time.ToDatetime().date() == TODAY - timedelta(days=1)
    sale = (await risk.CheckSuitability(check(expired, level=pr.PRODUCT_RISK_LEVEL_R2,
                                              purpose=su.SUITABILITY_PURPOSE_SALE), metadata=CAMPAIGN)).result
    assert sale.outcome == su.SUITABILITY_OUTCOME_NEEDS_IN_PERSON_REVIEW


async def test_an_unknown_customer_is_not_found_and_nothing_is_audited(risk) -> None:
    name = f"customers/c-{uuid.uuid4().hex[:10]}"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await risk.CheckSuitability(check(name), metadata=CAMPAIGN)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and error_reason(unknown.value) == "CUSTOMER_NOT_FOUND"
    assert await audits(risk, customer=name) == []


async def test_a_batch_answers_in_request_order_and_audits_each_decision(risk, seed) -> None:
    context = f"campaigns/{uuid.uuid4().hex[:8]}"
    fits, vulnerable = await seed(), await seed(vulnerable=True)
    unknown = f"customers/c-{uuid.uuid4().hex[:10]}"
    results = (await risk.CheckSuitabilityBatch(pb.CheckSuitabilityBatchRequest(
        customers=[vulnerable, unknown, fits], product_code="BOND-2", product_risk_level=pr.PRODUCT_RISK_LEVEL_R2,
        context=context), metadata=CAMPAIGN)).results
    assert [r.customer for r in results] == [vulnerable, unknown, fits]
    assert [r.outcome for r in results] == [su.SUITABILITY_OUTCOME_DENY, su.SUITABILITY_OUTCOME_DENY,
                                            su.SUITABILITY_OUTCOME_ALLOW]
    assert results[0].reasons[0].code == su.SUITABILITY_REASON_CODE_VULNERABLE_CUSTOMER
    assert results[1].reasons[0].code == su.SUITABILITY_REASON_CODE_CUSTOMER_UNKNOWN
    recorded = await audits(risk, context=context, decision_type=da.DECISION_TYPE_SUITABILITY_CHECK)
    assert sorted(a.name for a in recorded) == sorted(r.decision_audit for r in results)
    assert {a.customer for a in recorded} == {vulnerable, unknown, fits}


async def test_bad_checks_name_every_field_and_audit_nothing(risk, seed) -> None:
    context = f"campaigns/{uuid.uuid4().hex[:8]}"
    name = await seed()
    with pytest.raises(grpc.aio.AioRpcError) as batch:
        await risk.CheckSuitabilityBatch(pb.CheckSuitabilityBatchRequest(
            customers=[name, name, "people/1"], product_code="no spaces", context=context), metadata=CAMPAIGN)
    assert batch.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(batch.value)) == {"customers", "customers[2]", "product_code", "product_risk_level"}
    with pytest.raises(grpc.aio.AioRpcError) as single:
        await risk.CheckSuitability(pb.CheckSuitabilityRequest(customer=name, product_risk_level=9, purpose=7,
                                                               context=context), metadata=CAMPAIGN)
    assert set(field_violations(single.value)) == {"product_code", "product_risk_level", "purpose"}
    assert await audits(risk, context=context) == []


async def test_decision_audits_page_newest_first_and_refuse_bad_filters_and_other_roles(risk, seed) -> None:
    context = f"campaigns/{uuid.uuid4().hex[:8]}"
    name = await seed()
    made = [(await risk.CheckSuitability(check(name, context=context), metadata=CAMPAIGN)).result.decision_audit
            for _ in range(3)]
    first = await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(context=context, page_size=2),
                                          metadata=AUDITOR)
    rest = await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(context=context, page_size=2,
                                                                      page_token=first.next_page_token),
                                         metadata=AUDITOR)
    assert [a.name for a in [*first.decision_audits, *rest.decision_audits]] == made[::-1]
    assert not rest.next_page_token
    for bad_filter, field in [(dict(decision_type=9), "decision_type"), (dict(customer="people/x"), "customer"),
                              (dict(page_token="forged"), "page_token")]:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(**bad_filter), metadata=AUDITOR)
        assert set(field_violations(bad.value)) == {field}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await risk.ListDecisionAudits(pb.ListDecisionAuditsRequest(), metadata=CAMPAIGN)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
