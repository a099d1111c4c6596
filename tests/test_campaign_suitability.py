"""Campaign asks the real risk service (`CheckSuitabilityBatch`) while building an audience, both in
this process on their own databases: customers risk does not know come back not allowed
(`CUSTOMER_UNKNOWN`) and are suppressed as UNSUITABLE; with risk stopped the same build says
SUITABILITY_UNKNOWN for every candidate, never a silent allow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from google.type import interval_pb2, money_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2, campaign_service_pb2_grpc
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import operation_pb2, product_risk_pb2
from crm_campaign.app import SPEC as CAMPAIGN
from crm_campaign.audience.read_models import customer_contact, segment_member
from crm_risk.app import SPEC as RISK
from crmkit.auth import Role
from crmkit.testing import bearer, migrated_database, running_service, serving

pytestmark = pytest.mark.slow

MARKETER_A = bearer(Role.MARKETER, subject="marketer-a")
MARKETER_B = bearer(Role.MARKETER, subject="marketer-b")
S = audience_pb2
SMS = int(campaign_pb2.CHANNEL_SMS)


async def test_the_real_risk_decides_and_its_absence_is_suitability_unknown(database_factory, tmp_path: Path) -> None:
    risk_url = await migrated_database(database_factory, RISK)
    campaign_url = await migrated_database(database_factory, CAMPAIGN)
    tag = uuid.uuid4().hex[:8]
    customers = [f"{tag}-{n}" for n in range(4)]
    risk_server = serving(RISK, database_url=risk_url, profile_target="", training_dir=str(tmp_path),
                          alert_escalation_poll_seconds=0)
    server, _ = await risk_server.__aenter__()
    stopped = False
    try:
        async with running_service(CAMPAIGN, database_url=campaign_url, templates={"SMS": ["sms-1"]},
                                   dispatcher_enabled=False, feedback_target="", segment_target="",
                                   profile_target="", risk_target=f"127.0.0.1:{server.bound_port}",
                                   suitability_deadline_seconds=2) as (channel, runtime):
            async with runtime.db.unit_of_work() as uow:
                await uow.execute(sa.insert(segment_member), [{"segment_id": f"seg-{tag}", "customer_id": c}
                                                              for c in customers])
                await uow.execute(sa.insert(customer_contact), [{"customer_id": c, "consented_channels": [SMS],
                                                                 "reachable_channels": [SMS]} for c in customers])
            campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            name = await _running(campaigns, tag)
            checked = await _dry_run(campaigns, name)
            assert _counts(checked) == {S.SUPPRESSION_REASON_UNSUITABLE: 4}, "risk knows none of them: not allowed"
            await risk_server.__aexit__(None, None, None)
            stopped = True
            down = await _dry_run(campaigns, name)
            assert _counts(down) == {S.SUPPRESSION_REASON_SUITABILITY_UNKNOWN: 4} and down.eligible_count == 0
    finally:
        if not stopped:
            await risk_server.__aexit__(None, None, None)


async def _running(campaigns: Any, tag: str) -> str:
    period = interval_pb2.Interval()
    period.start_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    period.end_time.FromDatetime(datetime.now(UTC) + timedelta(days=7))
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=campaign_pb2.Campaign(
        campaign_id=f"fund-{tag}", display_name="Balanced fund", type=campaign_pb2.CAMPAIGN_TYPE_BATCH,
        segment=f"segments/seg-{tag}", active_period=period, max_contacts=100,
        contact_policy=campaign_pb2.ContactPolicy(channels=[campaign_pb2.CHANNEL_SMS],
                                                  channel_strategy=campaign_pb2.CHANNEL_STRATEGY_FIXED_ORDER))),
        metadata=MARKETER_A)).campaign
    await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=campaign_pb2.Offer(
        offer_id=f"fund-{tag}", display_name="Balanced fund", product_code="FUND-BAL-R3",
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R3, priority=50,
        expected_value=money_pb2.Money(currency_code="CNY", units=800),
        contents=[campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-1")])),
        metadata=MARKETER_A)
    await campaigns.SubmitCampaign(pb.SubmitCampaignRequest(name=created.name), metadata=MARKETER_A)
    await campaigns.ApproveCampaign(pb.ApproveCampaignRequest(name=created.name), metadata=MARKETER_B)
    await campaigns.LaunchCampaign(pb.LaunchCampaignRequest(name=created.name, defer_audience_build=True),
                                   metadata=MARKETER_A)
    return str(created.name)


async def _dry_run(campaigns: Any, name: str) -> audience_pb2.AudienceBuild:
    started = await campaigns.BuildAudience(pb.BuildAudienceRequest(name=name, dry_run=True,
                                                                    request_id=str(uuid.uuid4())), metadata=MARKETER_A)
    final = started.operation
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.operation.name),
                                                 metadata=MARKETER_A, timeout=60):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    result = audience_pb2.AudienceBuild()
    assert final.response.Unpack(result)
    return result


def _counts(result: audience_pb2.AudienceBuild) -> dict[int, int]:
    return {c.reason: c.count for c in result.suppression_counts if c.count}
