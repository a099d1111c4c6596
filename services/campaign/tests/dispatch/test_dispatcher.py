"""The dispatcher on a real database: queued dispatches of running campaigns go out through the
adapters exactly once, failures are retried or recorded, and ListDispatches shows it all."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from crm.campaign.v1 import audience_pb2, campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import change_event_pb2
from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.base import OutboundMessage, Outcome, SendFailure
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.model import DispatchError, Planned, SuppressionReason, dispatch_id
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.testing import bearer, change_feed, error_info, field_violations, next_events, tail_cursor

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
FEED = bearer(Role.SERVICE, subject="svc-segment")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def dispatcher(runtime: Any, adapter: Any, clock: Any = None, **options: Any) -> Dispatcher:
    channels = ChannelAdapters({int(Channel.SMS): adapter, int(Channel.MOBILE_APP): adapter})
    return Dispatcher(db=runtime.db, repository=DispatchRepository(), adapters=channels,
                      outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto,
                      clock=clock or Clock(), rng=random.Random(3), **options)


def targets(offer_id: str, count: int, channel: int = Channel.SMS) -> list[Planned]:
    tag = uuid.uuid4().hex[:6]
    return [Planned(customer_id=f"c-{tag}-{n}", offer_id=offer_id, channel=channel, template_id="sms-td-renewal-v2")
            for n in range(count)]


async def list_all(campaigns: Any, parent: str, **filters: Any) -> list[audience_pb2.Dispatch]:
    found, token = [], ""
    while True:
        page = await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=parent, page_size=7, page_token=token,
                                                                       **filters), metadata=ANALYST)
        found.extend(page.dispatches)
        if not (token := page.next_page_token):
            return found


async def test_queued_dispatches_go_out_once_and_list_as_sent(campaigns, campaign_service, running_campaign,
                                                              queue_dispatches, tmp_path: Path) -> None:
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    planned = targets(offer.offer_id, 12)
    assert await queue_dispatches(campaign.campaign_id, planned) == 12
    assert await queue_dispatches(campaign.campaign_id, planned) == 0, "queueing again adds nothing"
    listed = await list_all(campaigns, campaign.name)
    assert {d.state for d in listed} == {audience_pb2.DISPATCH_STATE_QUEUED}
    cursor = await tail_cursor(change_feed(campaigns, pb.WatchChangesRequest, FEED))
    worker = dispatcher(runtime, FileAdapter(tmp_path), batch_size=5)
    assert await worker.drain() >= 12
    await worker.close()
    sent = await list_all(campaigns, campaign.name)
    assert len(sent) == 12 and {d.state for d in sent} == {audience_pb2.DISPATCH_STATE_SENT}
    assert all(d.attempt_count == 1 and d.provider_message_id.startswith("sms.jsonl:") and d.HasField("send_time")
               for d in sent)
    assert {d.dispatch_id for d in sent} == {dispatch_id(campaign.campaign_id, p.customer_id, p.channel)
                                            for p in planned}
    written = [json.loads(line) for line in (tmp_path / "sms.jsonl").read_text().splitlines()]
    assert sorted(row["customer"] for row in written) == sorted(f"customers/{p.customer_id}" for p in planned)
    events = await next_events(change_feed(campaigns, pb.WatchChangesRequest, FEED), cursor, 12,
                               resource_types=["crm.campaign.v1.Dispatch"], seconds=30)
    mine = [e for e in events if e.resource_name.startswith(campaign.name + "/")]
    assert len(mine) == 12 and {e.change_type for e in mine} == {change_event_pb2.CHANGE_TYPE_UPDATED}
    payload = audience_pb2.Dispatch()
    assert mine[0].payload.Unpack(payload) and payload.state == audience_pb2.DISPATCH_STATE_SENT


async def test_a_suppressed_customer_lists_with_the_reason_and_the_winner(campaigns, running_campaign,
                                                                          queue_dispatches) -> None:
    campaign, [offer] = await running_campaign()
    lost = Planned(customer_id="c-lost", offer_id=offer.offer_id, channel=Channel.SMS,
                   suppression_reason=SuppressionReason.ARBITRATION_LOST,
                   error=DispatchError("ARBITRATION_LOST", "a better offer won",
                                       {"winner_offer": "campaigns/other/offers/gold"}))
    await queue_dispatches(campaign.campaign_id, [lost, *targets(offer.offer_id, 1)])
    [suppressed] = await list_all(campaigns, campaign.name, state=audience_pb2.DISPATCH_STATE_SUPPRESSED)
    assert suppressed.customer == "customers/c-lost"
    assert suppressed.suppression_reason == audience_pb2.SUPPRESSION_REASON_ARBITRATION_LOST
    info = error_info_of(suppressed)
    assert (info.reason, dict(info.metadata)) == ("ARBITRATION_LOST", {"winner_offer": "campaigns/other/offers/gold"})
    across = await list_all(campaigns, "campaigns/-", customer="customers/c-lost")
    assert [d.name for d in across] == [suppressed.name]


async def test_displaced_dispatches_are_suppressed_together_each_naming_its_winner_once(
        campaigns, campaign_service, running_campaign, queue_dispatches) -> None:
    from crm_campaign.campaigns.repository import CampaignRepository
    from crm_campaign.dispatch.service import Dispatches
    from crmkit.pagination import PageTokens

    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    planned = targets(offer.offer_id, 5)
    await queue_dispatches(campaign.campaign_id, planned)
    ids = [dispatch_id(campaign.campaign_id, p.customer_id, p.channel) for p in planned]
    gold, silver = "campaigns/rival/offers/gold", "campaigns/rival/offers/silver"
    use_case = Dispatches(repository=DispatchRepository(), campaigns=CampaignRepository(),
                          outbox=Outbox(tables.outbox_event), page_tokens=PageTokens(b"k" * 32),
                          feed_payload=dispatch_messages.to_proto)
    async with runtime.db.unit_of_work() as uow:
        assert await use_case.displace(uow=uow, displaced=[(ids[0], gold), (ids[1], silver)], actor="m") == 2
    cursor = await tail_cursor(change_feed(campaigns, pb.WatchChangesRequest, FEED))
    async with runtime.db.unit_of_work() as uow:
        # ids[0] is no longer queued: it stays as the first winner left it, and has no second event.
        changed = await use_case.displace(uow=uow, displaced=[(ids[2], gold), (ids[0], silver), (ids[3], silver),
                                                              (ids[4], gold)], actor="m")
    assert changed == 3
    events = await next_events(change_feed(campaigns, pb.WatchChangesRequest, FEED), cursor, 3,
                               resource_types=["crm.campaign.v1.Dispatch"], seconds=30)
    assert [e.resource_name.rsplit("/", 1)[-1] for e in events] == [ids[2], ids[3], ids[4]], "in the build's order"
    listed = {d.dispatch_id: d for d in await list_all(campaigns, campaign.name)}
    winners = {i: error_info_of(listed[i]).metadata["winner_offer"] for i in ids}
    assert winners == {ids[0]: gold, ids[1]: silver, ids[2]: gold, ids[3]: silver, ids[4]: gold}
    assert {d.state for d in listed.values()} == {audience_pb2.DISPATCH_STATE_SUPPRESSED}


def error_info_of(dispatch: audience_pb2.Dispatch) -> Any:
    from google.rpc import error_details_pb2
    info = error_details_pb2.ErrorInfo()
    assert dispatch.last_error.details[0].Unpack(info)
    return info


class Flaky:
    """Fails every message with `failure` (transient or not)."""

    def __init__(self, failure: SendFailure) -> None:
        self.failure = failure
        self.calls = 0

    async def send(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        self.calls += 1
        return [self.failure] * len(messages)

    async def close(self) -> None:
        pass


async def test_a_transient_failure_waits_with_backoff_and_a_refusal_fails_for_good(
        campaigns, campaign_service, running_campaign, queue_dispatches) -> None:
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    await queue_dispatches(campaign.campaign_id, targets(offer.offer_id, 1))
    clock = Clock()
    transient = Flaky(SendFailure("PROVIDER_UNAVAILABLE", "down", transient=True))
    worker = dispatcher(runtime, transient, clock)
    assert await worker.run_once() >= 1
    [waiting] = await list_all(campaigns, campaign.name)
    assert waiting.state == audience_pb2.DISPATCH_STATE_QUEUED and waiting.attempt_count == 1
    assert waiting.not_before_time.ToDatetime(tzinfo=UTC) > clock.now
    assert error_info_of(waiting).reason == "PROVIDER_UNAVAILABLE"
    for _ in range(10):  # later attempts, each once its backoff has passed, up to the fifth
        clock.now += timedelta(hours=1)
        await worker.drain()
    [failed] = await list_all(campaigns, campaign.name)
    assert (failed.state, failed.attempt_count) == (audience_pb2.DISPATCH_STATE_FAILED, 5)

    await queue_dispatches(campaign.campaign_id, targets(offer.offer_id, 1))
    refusing = dispatcher(runtime, Flaky(SendFailure("INVALID_PHONE", "no such number", transient=False)), clock)
    await refusing.drain()
    states = sorted((d.state, d.attempt_count) for d in await list_all(campaigns, campaign.name))
    assert states == [(audience_pb2.DISPATCH_STATE_FAILED, 1), (audience_pb2.DISPATCH_STATE_FAILED, 5)]


async def test_a_dispatcher_that_died_after_claiming_is_replaced_without_a_second_message(
        campaigns, campaign_service, running_campaign, queue_dispatches, tmp_path: Path) -> None:
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    await queue_dispatches(campaign.campaign_id, targets(offer.offer_id, 3))
    clock = Clock()
    adapter = FileAdapter(tmp_path)
    dead = dispatcher(runtime, adapter, clock, lease=timedelta(minutes=2))
    # It claimed and handed the batch over, then died before recording the outcome.
    async with runtime.db.unit_of_work() as uow:
        claimed = await DispatchRepository().claim(uow, now=clock.now, lease=timedelta(minutes=2), limit=100)
    mine = [d for d in claimed if d.campaign_id == campaign.campaign_id]
    await adapter.send([OutboundMessage(d.dispatch_id, d.campaign_id, d.customer_id, d.offer_id, "SMS",
                                        d.template_id) for d in mine])
    assert {d.state for d in await list_all(campaigns, campaign.name)} == {audience_pb2.DISPATCH_STATE_SENDING}
    await dead.close()
    replacement = dispatcher(runtime, FileAdapter(tmp_path), clock)
    await replacement.drain()  # within the lease, nothing is taken over
    assert {d.state for d in await list_all(campaigns, campaign.name)} == {audience_pb2.DISPATCH_STATE_SENDING}
    clock.now += timedelta(minutes=3)
    await replacement.drain()
    await replacement.close()
    after = await list_all(campaigns, campaign.name)
    assert {(d.state, d.attempt_count) for d in after} == {(audience_pb2.DISPATCH_STATE_SENT, 2)}
    written = (tmp_path / "sms.jsonl").read_text().splitlines()
    assert len(written) == 3, "each customer got one message"


async def test_dispatches_of_a_paused_campaign_wait(campaigns, campaign_service, running_campaign, queue_dispatches,
                                                   tmp_path: Path) -> None:
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    await queue_dispatches(campaign.campaign_id, targets(offer.offer_id, 2))
    await campaigns.PauseCampaign(pb.PauseCampaignRequest(name=campaign.name, reason="checking copy"),
                                  metadata=MARKETER)
    worker = dispatcher(runtime, FileAdapter(tmp_path))
    await worker.drain()
    await worker.close()
    assert {d.state for d in await list_all(campaigns, campaign.name)} == {audience_pb2.DISPATCH_STATE_QUEUED}


@pytest.mark.parametrize(("fields", "field"), [
    ({"parent": "campaigns/-"}, "customer"),
    ({"parent": "campaigns/BAD NAME"}, "parent"),
    ({"parent": "campaigns/-", "customer": "customers/c-1", "state": 99}, "state"),
    ({"parent": "campaigns/-", "customer": "customers/c-1", "channel": 99}, "channel"),
])
async def test_a_bad_list_filter_names_the_field(campaigns, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListDispatches(pb.ListDispatchesRequest(**fields), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_listing_an_unknown_campaign_is_not_found(campaigns) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.ListDispatches(pb.ListDispatchesRequest(parent="campaigns/no-such-campaign"), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error.value).reason == "CAMPAIGN_NOT_FOUND"


async def test_an_offer_with_a_template_the_adapter_does_not_know_is_refused(campaigns, new_campaign,
                                                                            new_offer, count_rows) -> None:
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                              metadata=MARKETER)).campaign
    before = await count_rows("offer")
    bad = new_offer(contents=[campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-typo")])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=bad), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == {
        "offer.contents[0].template_id": "is not a template of the SMS channel's adapter"}
    assert await count_rows("offer") == before
