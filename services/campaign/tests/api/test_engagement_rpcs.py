"""Responses, conversions and results through CampaignService, on an audience with a control group."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.type import money_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import change_event_pb2
from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.audience.model import Eligible, Suppressed
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.model import SuppressionReason
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crm_campaign.results.stats import newcombe_interval
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.testing import bearer, change_feed, error_info, field_violations, next_events, rows_about, tail_cursor
from crmkit.values import timestamp

APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")
FEED = bearer(Role.SERVICE, subject="svc-risk")
SEGMENT = "segments/maturing-deposits"


def now_minus(minutes: int = 0) -> Any:
    return timestamp(datetime.now(UTC) - timedelta(minutes=minutes))


@pytest.fixture
async def measured(campaigns, campaign_service, running_campaign, assign_audience, tmp_path: Path) -> Any:
    """A running campaign (10 % held out) whose 300 eligible customers are split and whose
    target group has been sent its SMS; two customers were suppressed."""
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    tag = uuid.uuid4().hex[:6]
    eligible = [Eligible(customer_id=f"{tag}-{n}", offer_id=offer.offer_id, channel=Channel.SMS,
                         template_id="sms-td-renewal-v2", segment=SEGMENT) for n in range(300)]
    assigned = await assign_audience(campaign.campaign_id, eligible, [
        Suppressed(customer_id=f"{tag}-dnc", reason=SuppressionReason.DO_NOT_CONTACT, segment=SEGMENT)])
    again = await assign_audience(campaign.campaign_id, eligible)
    assert (again.target, again.control) == (0, 0), "a second wave adds no one already in the audience"
    worker = Dispatcher(db=runtime.db, repository=DispatchRepository(),
                        adapters=ChannelAdapters({int(Channel.SMS): FileAdapter(tmp_path)}),
                        outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto)
    await worker.drain()
    await worker.close()
    dispatches = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=campaign.name, page_size=1000),
                                                 metadata=ANALYST)).dispatches
    sent = [d for d in dispatches if d.state == audience_pb2.DISPATCH_STATE_SENT]
    targets = {d.customer.removeprefix("customers/") for d in sent}
    controls = sorted({e.customer_id for e in eligible} - targets)
    return campaign, offer, assigned, sent, controls, tag


async def record_response(campaigns, dispatch, request_id: str, **fields: Any):  # type: ignore[no-untyped-def]
    response = engagement_pb2.OfferResponse(customer=dispatch.customer, offer=dispatch.offer,
                                            dispatch=dispatch.name, channel=campaign_pb2.CHANNEL_SMS,
                                            type=engagement_pb2.RESPONSE_TYPE_CLICKED, response_time=now_minus(1))
    for key, value in fields.items():
        setattr(response, key, value) if not hasattr(value, "CopyFrom") else getattr(response, key).CopyFrom(value)
    return (await campaigns.RecordResponse(pb.RecordResponseRequest(response=response, request_id=request_id),
                                           metadata=APP)).response


async def record_conversion(campaigns, customer: str, reference: str, **fields: Any):  # type: ignore[no-untyped-def]
    conversion = engagement_pb2.Conversion(customer=customer, conversion_time=now_minus(), source_reference=reference,
                                           **fields)
    return (await campaigns.RecordConversion(pb.RecordConversionRequest(conversion=conversion,
                                                                        request_id=str(uuid.uuid4())),
                                             metadata=APP)).conversion


async def test_the_control_group_is_held_out_and_suppressed_customers_are_listed(campaigns, measured) -> None:
    campaign, _, assigned, sent, controls, tag = measured
    assert assigned.target + assigned.control == 300 and assigned.suppressed == 1
    assert 10 <= assigned.control <= 55, "about 10 % of 300 held out"
    assert (len(sent), len(controls)) == (assigned.target, assigned.control)
    stored = (await campaigns.GetCampaign(pb.GetCampaignRequest(name=campaign.name), metadata=ANALYST)).campaign
    assert (stored.target_count, stored.control_count) == (assigned.target, assigned.control)
    assert stored.control_group.seed == campaign.control_group.seed != 0
    [dnc] = (await campaigns.ListDispatches(pb.ListDispatchesRequest(
        parent=campaign.name, state=audience_pb2.DISPATCH_STATE_SUPPRESSED), metadata=ANALYST)).dispatches
    assert (dnc.customer, dnc.suppression_reason) == (f"customers/{tag}-dnc",
                                                       audience_pb2.SUPPRESSION_REASON_DO_NOT_CONTACT)


async def test_responses_conversions_and_results(campaigns, campaign_service, measured) -> None:
    campaign, offer, assigned, sent, controls, _ = measured
    cursor = await tail_cursor(change_feed(campaigns, pb.WatchChangesRequest, FEED))
    request_id, clicked_at = str(uuid.uuid4()), now_minus(1)
    first = await record_response(campaigns, sent[0], request_id, response_time=clicked_at)
    again = await record_response(campaigns, sent[0], request_id, response_time=clicked_at)
    assert again.name == first.name and first.recorder == "mobile-app"
    assert await rows_about(campaign_service, "outbox_event", first.name) == 1, "a retried response has one effect"

    bought = await record_conversion(campaigns, sent[0].customer, f"ACC-{uuid.uuid4().hex[:8]}", offer=offer.name)
    assert (bought.dispatch, bought.control_group, bought.points_awarded) == (sent[0].name, False, 500)
    assert (bought.value.units, bought.value.currency_code) == (1200, "CNY")
    repeated = await record_conversion(campaigns, sent[0].customer, bought.source_reference, offer=offer.name)
    assert repeated.name == bought.name, "one conversion per source reference"
    held_out = await record_conversion(campaigns, f"customers/{controls[0]}", f"ACC-{uuid.uuid4().hex[:8]}",
                                       product_code="TD-3Y-CNY",
                                       value=money_pb2.Money(currency_code="CNY", units=900))
    assert (held_out.offer, held_out.control_group, held_out.dispatch, held_out.points_awarded) == (
        offer.name, True, "", 0)

    results = (await campaigns.GetCampaignResults(pb.GetCampaignResultsRequest(campaign=campaign.name),
                                                  metadata=ANALYST)).results
    overall = results.overall
    nt, nc = assigned.target, assigned.control
    assert (overall.target_count, overall.control_count, overall.contact_count, overall.response_count) == (
        nt, nc, nt, 1)
    assert (overall.target_conversion_count, overall.control_conversion_count) == (1, 1)
    assert overall.uplift == pytest.approx(1 / nt - 1 / nc)
    low, high = newcombe_interval(1, nt, 1, nc)
    assert (overall.uplift_interval.low, overall.uplift_interval.high, overall.uplift_interval.level) == (
        pytest.approx(low), pytest.approx(high), pytest.approx(0.95))
    assert (overall.revenue.units, overall.revenue.nanos) == (1200, 0)
    cost = 20_000 + nt * 0.05
    assert overall.cost.units + overall.cost.nanos / 1e9 == pytest.approx(cost)
    incremental = (1 / nt - 1 / nc) * nt * 1200
    assert overall.incremental_revenue.units + overall.incremental_revenue.nanos / 1e9 == pytest.approx(
        incremental, abs=1e-6)
    assert overall.roi == pytest.approx((incremental - cost) / cost)
    assert [s.offer for s in results.by_offer] == [offer.name]
    assert [s.channel for s in results.by_channel] == [campaign_pb2.CHANNEL_SMS]
    assert [(s.segment, s.target_count) for s in results.by_segment] == [(SEGMENT, nt)]
    assert not results.final

    events = await next_events(change_feed(campaigns, pb.WatchChangesRequest, FEED), cursor, 3,
                               resource_types=["crm.campaign.v1.OfferResponse", "crm.campaign.v1.Conversion"])
    assert [(e.resource_name, e.change_type) for e in events] == [
        (first.name, change_event_pb2.CHANGE_TYPE_CREATED), (bought.name, change_event_pb2.CHANGE_TYPE_CREATED),
        (held_out.name, change_event_pb2.CHANGE_TYPE_CREATED)]


async def test_a_purchase_with_no_contact_in_any_window_is_refused(campaigns, measured, count_rows) -> None:
    before = await count_rows("conversion")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await record_conversion(campaigns, "customers/never-contacted", "ACC-none", product_code="TD-3Y-CNY")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value).reason == "NO_ATTRIBUTABLE_CONTACT"
    assert await count_rows("conversion") == before


async def test_an_opt_out_stops_the_customers_queued_messages_on_that_channel(
        campaigns, running_campaign, assign_audience, new_campaign, measured) -> None:
    _, _, _, sent, _, _ = measured
    other, [other_offer] = await running_campaign(new_campaign(control_group=campaign_pb2.ControlGroup()))
    customer_id = sent[0].customer.removeprefix("customers/")
    await assign_audience(other.campaign_id, [Eligible(customer_id=customer_id, offer_id=other_offer.offer_id,
                                                       channel=Channel.SMS, template_id="sms-td-renewal-v2")])
    [queued] = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=other.name), metadata=ANALYST)
                ).dispatches
    assert queued.state == audience_pb2.DISPATCH_STATE_QUEUED
    await record_response(campaigns, sent[0], str(uuid.uuid4()), type=engagement_pb2.RESPONSE_TYPE_OPTED_OUT)
    [stopped] = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=other.name), metadata=ANALYST)
                 ).dispatches
    assert stopped.state == audience_pb2.DISPATCH_STATE_SUPPRESSED
    assert stopped.last_error.message == "the customer opted out of this channel"


@pytest.mark.parametrize(("change", "field"), [
    ({"request_id": ""}, "request_id"),
    ({"response_time": "future"}, "response.response_time"),
    ({"type": 0}, "response.type"),
    ({"channel": 99}, "response.channel"),
    ({"dispatch": "other-customer"}, "response.dispatch"),
])
async def test_a_bad_response_names_the_field_and_records_nothing(campaigns, measured, count_rows,
                                                                  change: dict[str, Any], field: str) -> None:
    _, _, _, sent, _, _ = measured
    response = engagement_pb2.OfferResponse(customer=sent[0].customer, offer=sent[0].offer, dispatch=sent[0].name,
                                            channel=campaign_pb2.CHANNEL_SMS,
                                            type=engagement_pb2.RESPONSE_TYPE_CLICKED, response_time=now_minus(1))
    request_id = change.get("request_id", str(uuid.uuid4()))
    if change.get("response_time") == "future":
        response.response_time.CopyFrom(timestamp(datetime.now(UTC) + timedelta(hours=1)))
    if "type" in change:
        response.type = change["type"]
    if "channel" in change:
        response.channel = change["channel"]
    if change.get("dispatch") == "other-customer":
        response.dispatch = sent[1].name
    before = await count_rows("offer_response")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.RecordResponse(pb.RecordResponseRequest(response=response, request_id=request_id),
                                       metadata=APP)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await count_rows("offer_response") == before


async def test_a_campaign_not_yet_launched_has_no_responses_and_no_results(campaigns, new_campaign,
                                                                          new_offer) -> None:
    draft = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                            metadata=MARKETER)).campaign
    offer = (await campaigns.CreateOffer(pb.CreateOfferRequest(parent=draft.name, offer=new_offer()),
                                         metadata=MARKETER)).offer
    response = engagement_pb2.OfferResponse(customer="customers/c-1", offer=offer.name,
                                            channel=campaign_pb2.CHANNEL_MOBILE_APP,
                                            type=engagement_pb2.RESPONSE_TYPE_SHOWN, response_time=now_minus(1))
    for call in (campaigns.RecordResponse(pb.RecordResponseRequest(response=response, request_id=str(uuid.uuid4())),
                                          metadata=APP),
                 campaigns.GetCampaignResults(pb.GetCampaignResultsRequest(campaign=draft.name), metadata=ANALYST)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(error.value).reason == "CAMPAIGN_NOT_LAUNCHED"


async def test_results_refuse_a_confidence_level_out_of_range(campaigns, measured) -> None:
    campaign = measured[0]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.GetCampaignResults(pb.GetCampaignResultsRequest(campaign=campaign.name, confidence_level=2),
                                           metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "confidence_level" in field_violations(error.value)
