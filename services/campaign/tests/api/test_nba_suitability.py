"""Next best action and the risk service: offers above R1 are checked per customer with a short
deadline; a denial leaves the offer out as UNSUITABLE, and risk down or slow leaves it out as
SUITABILITY_UNKNOWN with the answer marked degraded, while R1 offers are still proposed.
Risk here is a stand-in server speaking risk's contract."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.type import decimal_pb2

from crm.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2, product_risk_pb2
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc, suitability_pb2
from crm_campaign.app import SPEC
from crmkit.auth import Role
from crmkit.testing import bearer, free_port, running_service

APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
TEMPLATES = {"SMS": ["sms-td-renewal-v2"], "MOBILE_APP": ["app-td-banner"]}
R3 = product_risk_pb2.PRODUCT_RISK_LEVEL_R3


class StandInRisk(risk_service_pb2_grpc.RiskServiceServicer):
    def __init__(self) -> None:
        self.denied: set[tuple[str, str]] = set()
        self.delay = 0.0
        self.asked: list[str] = []

    async def CheckSuitabilityBatch(self, request: Any, context: Any) -> Any:
        self.asked.append(request.product_code)
        await asyncio.sleep(self.delay)
        return risk_service_pb2.CheckSuitabilityBatchResponse(results=[suitability_pb2.SuitabilityResult(
            customer=c, product_code=request.product_code, product_risk_level=request.product_risk_level,
            outcome=suitability_pb2.SUITABILITY_OUTCOME_DENY if (c, request.product_code) in self.denied
            else suitability_pb2.SUITABILITY_OUTCOME_ALLOW) for c in request.customers])


@pytest.fixture
async def risk_and_campaigns(campaign_database: str) -> AsyncIterator[tuple[StandInRisk, Any]]:
    """A stand-in risk server and a campaign server (same database) that asks it, 0.2 s deadline."""
    risk = StandInRisk()
    server = grpc.aio.server()
    risk_service_pb2_grpc.add_RiskServiceServicer_to_server(risk, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    try:
        async with running_service(SPEC, database_url=campaign_database, templates=TEMPLATES,
                                   dispatcher_enabled=False, feedback_target="", segment_target="", profile_target="",
                                   risk_target=f"127.0.0.1:{port}", nba_suitability_deadline_seconds=0.2
                                   ) as (channel, _):
            yield risk, campaign_service_pb2_grpc.CampaignServiceStub(channel)
    finally:
        await server.stop(0)


@pytest.fixture
async def campaigns_without_risk(campaign_database: str) -> AsyncIterator[Any]:
    """A campaign server whose risk service is down (nothing listens at its address)."""
    async with running_service(SPEC, database_url=campaign_database, templates=TEMPLATES, dispatcher_enabled=False,
                               feedback_target="", segment_target="", profile_target="",
                               risk_target=f"127.0.0.1:{free_port()}", nba_suitability_deadline_seconds=0.2
                               ) as (channel, _):
        yield campaign_service_pb2_grpc.CampaignServiceStub(channel)


@pytest.fixture
async def two_offers(running_campaign, new_campaign, new_offer, seed_read_models) -> tuple[str, Any, Any]:
    """A customer in the audience of two running campaigns: one offers a fund (R3, needs a check),
    the other a deposit (R1, needs none)."""
    tag = uuid.uuid4().hex[:8]
    segment, customer = f"nba-risk-{tag}", f"nba-risk-cust-{tag}"
    await seed_read_models(segment, [customer])
    nobody_held_out = campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0"))
    _, [fund] = await running_campaign(new_campaign(segment=f"segments/{segment}", control_group=nobody_held_out),
                                       new_offer(offer_id="fund", priority=90, product_code="FUND-EQ-01",
                                                 product_risk_level=R3))
    _, [deposit] = await running_campaign(new_campaign(segment=f"segments/{segment}", control_group=nobody_held_out),
                                          new_offer(offer_id="deposit", priority=40))
    return customer, fund, deposit


async def ask(campaigns: Any, customer: str) -> pb.GetNextBestActionResponse:
    return await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=f"customers/{customer}", channel=campaign_pb2.CHANNEL_MOBILE_APP, audit=SERVICE), metadata=APP)


async def test_risk_allows_denies_and_times_out(risk_and_campaigns, two_offers) -> None:
    risk, campaigns = risk_and_campaigns
    customer, fund, deposit = two_offers

    allowed = await ask(campaigns, customer)
    assert [a.offer for a in allowed.actions] == [fund.name, deposit.name] and not allowed.degraded
    assert risk.asked == ["FUND-EQ-01"], "only the offer above R1 is checked"

    risk.denied.add((f"customers/{customer}", "FUND-EQ-01"))
    denied = await ask(campaigns, customer)
    assert [a.offer for a in denied.actions] == [deposit.name] and not denied.degraded
    assert {e.offer: e.reason for e in denied.excluded} == {fund.name: "UNSUITABLE"}

    risk.denied.clear()
    risk.delay = 1.0
    slow = await ask(campaigns, customer)
    assert [a.offer for a in slow.actions] == [deposit.name]
    assert {e.offer: e.reason for e in slow.excluded} == {fund.name: "SUITABILITY_UNKNOWN"}
    assert slow.degraded and list(slow.degraded_reasons) == ["SUITABILITY_UNAVAILABLE"]


async def test_risk_down_leaves_risky_offers_out_and_says_so(campaigns_without_risk, two_offers) -> None:
    customer, fund, deposit = two_offers
    answer = await ask(campaigns_without_risk, customer)
    assert [a.offer for a in answer.actions] == [deposit.name]
    assert {e.offer: e.reason for e in answer.excluded} == {fund.name: "SUITABILITY_UNKNOWN"}
    assert answer.degraded and list(answer.degraded_reasons) == ["SUITABILITY_UNAVAILABLE"]
