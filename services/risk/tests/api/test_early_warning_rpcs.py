"""The early-warning list through a real in-process server and PostgreSQL: customers with a high
current score or an open alert, highest probability first, with reasons and a suggested action;
a manager sees only their book; filters and pages; bad filters named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import scoring_pb2 as sc
from crm_risk.alerting.model import Evidence
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.scoring.tables import churn_score
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations

OFFICER = bearer(Role.RISK_OFFICER, subject="ro-ew")


async def put_score(runtime: Any, customer_id: str, *, rm: str, probability: float, band: int, driver: str) -> None:
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(churn_score).values(
            customer_id=customer_id, churn_model_id="m-1", model_version=1, probability=probability, risk_band=band,
            top_drivers=[{"feature": driver, "value": "0", "reference": "1", "contribution": 0.2}],
            features_as_of=datetime.now(UTC), score_time=datetime.now(UTC), decision_audit="decisionAudits/x",
            relationship_manager_id=rm, branch_id="b-ew"))


async def test_the_list_ranks_explains_and_suggests_and_keeps_managers_to_their_book(
        risk, risk_service, new_rule, alerts_of, movable_clock) -> None:
    _, runtime = risk_service
    rm, tag = f"rm-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    high, medium, outflow, products = (f"{name}-{tag}" for name in ("high", "medium", "outflow", "products"))
    await put_score(runtime, high, rm=rm, probability=0.91, band=sc.RISK_BAND_HIGH, driver="is_active_member")
    await put_score(runtime, medium, rm=rm, probability=0.41, band=sc.RISK_BAND_MEDIUM, driver="age_years")
    await put_score(runtime, products, rm=rm, probability=0.72, band=sc.RISK_BAND_HIGH, driver="product_count")
    rule = (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=new_rule()), metadata=OFFICER)).alert_rule
    async with runtime.db.unit_of_work() as uow:
        stored = await AlertRuleRepository().get(uow, rule.alert_rule_id)
        assert stored is not None
        await alerts_of(runtime, movable_clock()).raise_alert(
            uow=uow, rule=stored, customer_id=outflow, relationship_manager_id=rm, branch_id="b-ew",
            summary="outflow", evidence=[Evidence(description="outgoing transfer")], trigger_time=datetime.now(UTC))

    listed = (await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(relationship_manager_id=rm),
                                           metadata=OFFICER)).early_warnings
    assert [w.customer for w in listed] == [f"customers/{c}" for c in (high, products, outflow)]
    first, second, third = listed
    assert [r.kind for r in first.reasons] == [sc.EARLY_WARNING_REASON_KIND_HIGH_CHURN_RISK]
    assert first.suggested_action == sc.EARLY_WARNING_ACTION_RE_ENGAGE and first.suggested_action_description
    assert first.top_drivers[0].feature == "is_active_member" and first.model == "churnModels/m-1"
    assert second.suggested_action == sc.EARLY_WARNING_ACTION_PRODUCT_REVIEW
    assert [r.kind for r in third.reasons] == [sc.EARLY_WARNING_REASON_KIND_LARGE_OUTFLOW]
    assert third.suggested_action == sc.EARLY_WARNING_ACTION_CALL_ABOUT_OUTFLOW and third.open_alerts == 1
    assert third.model == "" and third.HasField("first_flag_time")

    page = await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(relationship_manager_id=rm, page_size=2),
                                        metadata=OFFICER)
    rest = await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(relationship_manager_id=rm, page_size=2,
                                                                    page_token=page.next_page_token), metadata=OFFICER)
    assert [w.customer for w in [*page.early_warnings, *rest.early_warnings]] == [w.customer for w in listed]
    outflows = await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(
        relationship_manager_id=rm, reason_kinds=[sc.EARLY_WARNING_REASON_KIND_LARGE_OUTFLOW]), metadata=OFFICER)
    assert [w.customer for w in outflows.early_warnings] == [f"customers/{outflow}"]

    own = await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(relationship_manager_id="someone-else"),
                                       metadata=bearer(Role.RELATIONSHIP_MANAGER, subject=rm))
    assert [w.customer for w in own.early_warnings] == [w.customer for w in listed]
    assert (await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(),
                                         metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-nobody"))
            ).early_warnings == []

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await risk.ListEarlyWarnings(pb.ListEarlyWarningsRequest(min_risk_band=9, reason_kinds=[0]),  # type: ignore[arg-type]
                                     metadata=OFFICER)
    assert set(field_violations(bad.value)) == {"min_risk_band", "reason_kinds[0]"}
