"""BuildAudience through CampaignService: an operation over the read models, the funnel with its
reasons, dry runs that change nothing, and arbitration across running campaigns."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import operation_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, error_info

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
SMS, APP = campaign_pb2.CHANNEL_SMS, campaign_pb2.CHANNEL_MOBILE_APP
S = audience_pb2


async def build(campaigns, name: str, *, dry_run: bool, request_id: str | None = None) -> Any:  # type: ignore[no-untyped-def]
    started = await campaigns.BuildAudience(pb.BuildAudienceRequest(
        name=name, dry_run=dry_run, request_id=request_id or str(uuid.uuid4())), metadata=MARKETER)
    assert started.operation.kind == "campaign.audience_build"
    final = started.operation
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.operation.name),
                                                 metadata=ANALYST, timeout=60):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    result = audience_pb2.AudienceBuild()
    assert final.response.Unpack(result)
    return started.operation, result


def counts(result: audience_pb2.AudienceBuild) -> dict[int, int]:
    return {c.reason: c.count for c in result.suppression_counts if c.count}


async def list_dispatches(campaigns, name: str, **filters: Any) -> list[Any]:  # type: ignore[no-untyped-def]
    return list((await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=name, page_size=1000, **filters),
                                                metadata=ANALYST)).dispatches)


async def test_a_dry_run_reports_the_funnel_and_a_build_queues_the_audience(
        campaigns, running_campaign, new_campaign, seed_read_models) -> None:
    tag = uuid.uuid4().hex[:8]
    customers = [f"{tag}-{n}" for n in range(40)]
    await seed_read_models(f"seg-{tag}", customers, dnc=(customers[0],), complaints=(customers[1],),
                           no_consent=(customers[2],))
    campaign, _ = await running_campaign(new_campaign(segment=f"segments/seg-{tag}"))

    _, dry = await build(campaigns, campaign.name, dry_run=True)
    assert (dry.dry_run, dry.candidate_count, dry.eligible_count) == (True, 40, 37)
    assert counts(dry) == {S.SUPPRESSION_REASON_DO_NOT_CONTACT: 1, S.SUPPRESSION_REASON_OPEN_COMPLAINT: 1,
                           S.SUPPRESSION_REASON_NO_CONSENT: 1}
    assert len(dry.suppression_counts) == 11, "every reason is reported, zero counts included"
    assert dry.control_count + dry.target_count == 37
    # Per channel and per offer: the target only, as the contract says (the control group is not contacted).
    assert sum(c.count for c in dry.channel_counts) == dry.target_count
    assert sum(o.count for o in dry.offer_counts) == dry.target_count
    # No quiet hours here: every message is due on the day of the dry run, on the one channel.
    [today] = dry.daily_volumes
    assert (today.channel, today.count) == (SMS, dry.target_count)
    assert (today.date.year, today.date.month, today.date.day) == dry.build_time.ToDatetime().timetuple()[:3]
    assert await list_dispatches(campaigns, campaign.name) == [], "a dry run reserves nothing"

    _, real = await build(campaigns, campaign.name, dry_run=False)
    assert (real.eligible_count, real.target_count, real.control_count) == (37, dry.target_count, dry.control_count)
    queued = await list_dispatches(campaigns, campaign.name, state=S.DISPATCH_STATE_QUEUED)
    assert len(queued) == real.target_count and {d.channel for d in queued} == {SMS}
    [complaint] = [d for d in await list_dispatches(campaigns, campaign.name, state=S.DISPATCH_STATE_SUPPRESSED)
                   if d.customer == f"customers/{customers[1]}"]
    assert complaint.suppression_reason == S.SUPPRESSION_REASON_OPEN_COMPLAINT

    _, again = await build(campaigns, campaign.name, dry_run=False)
    assert len(await list_dispatches(campaigns, campaign.name, state=S.DISPATCH_STATE_QUEUED)) == len(queued), (
        "a second wave sends no one a second message")
    assert again.eligible_count == 37


async def test_three_campaigns_marketing_one_customer_leave_one_offer(
        campaigns, running_campaign, new_campaign, new_offer, cny, seed_read_models) -> None:
    tag = uuid.uuid4().hex[:8]
    shared = f"{tag}-shared"
    await seed_read_models(f"seg-{tag}", [shared])
    no_holdout = campaign_pb2.ControlGroup()
    offers = {"low": 10, "mid": 50, "high": 90}
    names = {}
    for label, priority in offers.items():
        campaign, [offer] = await running_campaign(
            new_campaign(segment=f"segments/seg-{tag}", control_group=no_holdout),
            new_offer(offer_id=f"{label}-{tag}", priority=priority))
        names[label] = (campaign.name, offer.name)
    _, low = await build(campaigns, names["low"][0], dry_run=False)
    _, high = await build(campaigns, names["high"][0], dry_run=False)
    _, mid = await build(campaigns, names["mid"][0], dry_run=False)
    assert (low.eligible_count, high.eligible_count, high.collision_count) == (1, 1, 1)
    assert counts(mid) == {S.SUPPRESSION_REASON_ARBITRATION_LOST: 1}
    [displaced] = await list_dispatches(campaigns, names["low"][0])
    [lost] = await list_dispatches(campaigns, names["mid"][0])
    [kept] = await list_dispatches(campaigns, names["high"][0])
    assert kept.state == S.DISPATCH_STATE_QUEUED
    for loser in (displaced, lost):
        assert (loser.state, loser.suppression_reason) == (S.DISPATCH_STATE_SUPPRESSED,
                                                           S.SUPPRESSION_REASON_ARBITRATION_LOST)
        info = error_details_pb2.ErrorInfo()
        assert loser.last_error.details[0].Unpack(info)
        assert info.metadata["winner_offer"] == names["high"][1]


async def test_a_real_build_needs_a_running_campaign_and_changes_nothing_otherwise(
        campaigns, new_campaign, count_rows) -> None:
    draft = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                            metadata=MARKETER)).campaign
    before = await count_rows("operation")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.BuildAudience(pb.BuildAudienceRequest(name=draft.name, request_id=str(uuid.uuid4())),
                                      metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value).reason == "CAMPAIGN_NOT_RUNNING"
    assert await count_rows("operation") == before
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await campaigns.BuildAudience(pb.BuildAudienceRequest(name="campaigns/no-such-campaign"), metadata=MARKETER)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_repeated_request_id_returns_the_first_operation(campaigns, new_campaign) -> None:
    draft = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                            metadata=MARKETER)).campaign
    request = pb.BuildAudienceRequest(name=draft.name, dry_run=True, request_id=str(uuid.uuid4()))
    first = await campaigns.BuildAudience(request, metadata=MARKETER)
    again = await campaigns.BuildAudience(request, metadata=MARKETER)
    assert again.operation.name == first.operation.name


async def test_launching_a_batch_campaign_starts_its_first_build_once(
        campaigns, new_campaign, new_offer, seed_read_models) -> None:
    from crm.campaign.v1 import campaign_pb2 as c

    tag = uuid.uuid4().hex[:8]
    await seed_read_models(f"seg-{tag}", [f"{tag}-{n}" for n in range(6)])
    draft = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(
        campaign=new_campaign(segment=f"segments/seg-{tag}", control_group=c.ControlGroup())),
        metadata=MARKETER)).campaign
    await campaigns.CreateOffer(pb.CreateOfferRequest(parent=draft.name, offer=new_offer()), metadata=MARKETER)
    await campaigns.SubmitCampaign(pb.SubmitCampaignRequest(name=draft.name), metadata=MARKETER)
    await campaigns.ApproveCampaign(pb.ApproveCampaignRequest(name=draft.name),
                                    metadata=bearer(Role.MARKETER, subject="marketer-b"))
    request = pb.LaunchCampaignRequest(name=draft.name, request_id=str(uuid.uuid4()))
    launched = await campaigns.LaunchCampaign(request, metadata=MARKETER)
    assert launched.campaign.state == c.CAMPAIGN_STATE_RUNNING
    assert launched.operation.kind == "campaign.audience_build"
    final = launched.operation
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=launched.operation.name),
                                                 metadata=ANALYST, timeout=60):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    assert len(await list_dispatches(campaigns, draft.name, state=S.DISPATCH_STATE_QUEUED)) == 6
    again = await campaigns.LaunchCampaign(request, metadata=MARKETER)
    assert again.operation.name == launched.operation.name, "a retried launch starts no second build"
    assert len(await list_dispatches(campaigns, draft.name)) == 6
