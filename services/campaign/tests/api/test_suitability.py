"""Suitability in the audience funnel: risk's `CheckSuitabilityBatch` is asked for offers above the
lowest risk level; a denial suppresses the customer as UNSUITABLE, and risk down, slow past the
deadline or not configured is SUITABILITY_UNKNOWN for every such candidate, never a silent allow.
Risk here is a stand-in server speaking risk's contract (the real one is in tests/)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from crm.campaign.v1 import audience_pb2, campaign_service_pb2_grpc
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import operation_pb2, product_risk_pb2
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc, suitability_pb2
from crm_campaign.app import SPEC
from crmkit.auth import Role
from crmkit.testing import bearer, free_port, running_service

S = audience_pb2
R3 = product_risk_pb2.PRODUCT_RISK_LEVEL_R3
MARKETER = bearer(Role.MARKETER, subject="marketer-a")
TEMPLATES = {"SMS": ["sms-td-renewal-v2"], "MOBILE_APP": ["app-td-banner"]}


async def build(campaigns: Any, name: str, *, dry_run: bool) -> tuple[Any, audience_pb2.AudienceBuild]:
    started = await campaigns.BuildAudience(pb.BuildAudienceRequest(
        name=name, dry_run=dry_run, request_id=str(uuid.uuid4())), metadata=MARKETER)
    final = started.operation
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.operation.name),
                                                 metadata=MARKETER, timeout=60):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    result = audience_pb2.AudienceBuild()
    assert final.response.Unpack(result)
    return final, result


def counts(result: audience_pb2.AudienceBuild) -> dict[int, int]:
    return {c.reason: c.count for c in result.suppression_counts if c.count}


class StandInRisk(risk_service_pb2_grpc.RiskServiceServicer):
    def __init__(self) -> None:
        self.denied: set[str] = set()
        self.delay = 0.0
        self.requests: list[risk_service_pb2.CheckSuitabilityBatchRequest] = []

    async def CheckSuitabilityBatch(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        await asyncio.sleep(self.delay)
        return risk_service_pb2.CheckSuitabilityBatchResponse(results=[suitability_pb2.SuitabilityResult(
            customer=c, product_code=request.product_code, product_risk_level=request.product_risk_level,
            allowed=c not in self.denied,
            outcome=suitability_pb2.SUITABILITY_OUTCOME_DENY if c in self.denied
            else suitability_pb2.SUITABILITY_OUTCOME_ALLOW) for c in request.customers])


@pytest.fixture
async def risk_and_campaigns(campaign_database: str) -> AsyncIterator[tuple[StandInRisk, Any]]:
    """A stand-in risk server and a second campaign server (same database) that asks it."""
    risk = StandInRisk()
    server = grpc.aio.server()
    risk_service_pb2_grpc.add_RiskServiceServicer_to_server(risk, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    try:
        async with running_service(SPEC, database_url=campaign_database, templates=TEMPLATES,
                                   dispatcher_enabled=False, feedback_target="", segment_target="", profile_target="",
                                   risk_target=f"127.0.0.1:{port}", suitability_deadline_seconds=0.5) as (channel, _):
            yield risk, campaign_service_pb2_grpc.CampaignServiceStub(channel)
    finally:
        await server.stop(0)


async def test_risk_denials_are_unsuitable_and_a_slow_risk_is_unknown(
        risk_and_campaigns, running_campaign, new_campaign, new_offer, seed_read_models) -> None:
    risk, campaigns = risk_and_campaigns
    tag = uuid.uuid4().hex[:8]
    customers = [f"{tag}-{n}" for n in range(5)]
    await seed_read_models(f"seg-{tag}", customers)
    campaign, _ = await running_campaign(new_campaign(segment=f"segments/seg-{tag}"),
                                               new_offer(product_risk_level=R3, product_code="FUND-R3"))
    risk.denied = {f"customers/{customers[0]}"}

    _, checked = await build(campaigns, campaign.name, dry_run=True)
    assert counts(checked) == {S.SUPPRESSION_REASON_UNSUITABLE: 1} and checked.eligible_count == 4
    [asked] = risk.requests
    assert (list(asked.customers), asked.product_code, asked.product_risk_level, asked.context) == (
        [f"customers/{c}" for c in customers], "FUND-R3", R3, campaign.name)

    risk.delay = 2.0  # past the 0.5 s deadline
    _, slow = await build(campaigns, campaign.name, dry_run=True)
    assert counts(slow) == {S.SUPPRESSION_REASON_SUITABILITY_UNKNOWN: 5} and slow.eligible_count == 0


async def test_without_risk_offers_above_the_lowest_level_are_unknown_and_r1_needs_no_check(
        campaigns, running_campaign, new_campaign, new_offer, seed_read_models) -> None:
    tag = uuid.uuid4().hex[:8]
    customers = [f"{tag}-{n}" for n in range(3)]
    await seed_read_models(f"seg-{tag}", customers)
    risky, _ = await running_campaign(new_campaign(segment=f"segments/seg-{tag}"),
                                      new_offer(product_risk_level=R3, product_code="FUND-R3"))
    _, unknown = await build(campaigns, risky.name, dry_run=True)
    assert counts(unknown) == {S.SUPPRESSION_REASON_SUITABILITY_UNKNOWN: 3} and unknown.eligible_count == 0
    plain, _ = await running_campaign(new_campaign(segment=f"segments/seg-{tag}"))
    _, fine = await build(campaigns, plain.name, dry_run=True)
    assert counts(fine) == {} and fine.eligible_count == 3
