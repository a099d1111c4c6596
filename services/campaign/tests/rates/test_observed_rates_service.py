"""Observed response rates through the running service: a history of sent dispatches and ACCEPTED
responses recorded through RecordResponse decides, for offers no model scores, which offer an
audience build and next best action choose and on which channel the build sends it; the copy one
customer at a time reads is cached for its ttl."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.type import decimal_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2, operation_pb2
from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.audience.model import Eligible
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crm_campaign.rates.repository import ResponseRateRepository
from crm_campaign.rates.rules import Prior, Tally
from crm_campaign.rates.service import ResponseRates
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.testing import bearer
from crmkit.values import timestamp

APP_USER = bearer(Role.CHANNEL_APP, subject="mobile-app")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")
SMS, APP = campaign_pb2.CHANNEL_SMS, campaign_pb2.CHANNEL_MOBILE_APP
BY_RESPONSE = campaign_pb2.ContactPolicy(channels=[SMS, APP],
                                         channel_strategy=campaign_pb2.CHANNEL_STRATEGY_PREFERENCE_AND_RESPONSE)
NO_HOLDOUT = campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0"))
TEMPLATE = {int(Channel.SMS): "sms-td-renewal-v2", int(Channel.MOBILE_APP): "app-td-banner"}


async def sent_history(campaigns: Any, runtime: Any, assign_audience: Any, campaign_id: str, tmp_path: Path,
                       contacts: list[tuple[str, str, int, bool]]) -> None:
    """(customer, offer id, channel, accepted): each sent by the file adapter, then the accepted ones'
    ACCEPTED responses recorded through RecordResponse."""
    await assign_audience(campaign_id, [Eligible(customer_id=c, offer_id=o, channel=ch, template_id=TEMPLATE[ch],
                                                 segment="segments/history") for c, o, ch, _ in contacts])
    worker = Dispatcher(db=runtime.db, repository=DispatchRepository(), adapters=ChannelAdapters(
        {int(Channel.SMS): FileAdapter(tmp_path), int(Channel.MOBILE_APP): FileAdapter(tmp_path)}),
        outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto)
    await worker.drain()
    await worker.close()
    sent = {d.customer: d for d in (await campaigns.ListDispatches(pb.ListDispatchesRequest(
        parent=f"campaigns/{campaign_id}", page_size=1000), metadata=ANALYST)).dispatches}
    assert {d.state for d in sent.values()} == {audience_pb2.DISPATCH_STATE_SENT} and len(sent) == len(contacts)
    for customer, _, channel, accepted in contacts:
        if not accepted:
            continue
        dispatch = sent[f"customers/{customer}"]
        response = engagement_pb2.OfferResponse(
            customer=dispatch.customer, offer=dispatch.offer, dispatch=dispatch.name, channel=channel,
            type=engagement_pb2.RESPONSE_TYPE_ACCEPTED,
            response_time=timestamp(datetime.now(UTC) - timedelta(minutes=1)))
        await campaigns.RecordResponse(pb.RecordResponseRequest(response=response, request_id=str(uuid.uuid4())),
                                       metadata=APP_USER)


async def build(campaigns: Any, name: str) -> None:
    started = (await campaigns.BuildAudience(pb.BuildAudienceRequest(name=name, request_id=str(uuid.uuid4())),
                                             metadata=MARKETER)).operation
    final = started
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.name), metadata=ANALYST,
                                                 timeout=60):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message


async def test_the_offer_type_with_the_better_response_history_wins_and_goes_by_its_best_channel(
        campaigns, campaign_service, running_campaign, new_campaign, new_offer, cny, seed_read_models,
        assign_audience, tmp_path: Path) -> None:
    _, runtime = campaign_service
    tag = uuid.uuid4().hex[:8]
    good, poor = f"good-{tag}", f"poor-{tag}"
    history, [good_then, poor_then] = await running_campaign(
        new_campaign(control_group=NO_HOLDOUT, contact_policy=BY_RESPONSE),
        new_offer(offer_id=f"then-good-{tag}", offer_type=good),
        new_offer(offer_id=f"then-poor-{tag}", offer_type=poor))
    # The good type: 8 of 10 accepted on the app, 1 of 10 by SMS; the poor type: 0 of 20 by SMS.
    contacts = ([(f"{tag}-h{n}", good_then.offer_id, int(Channel.MOBILE_APP), n < 8) for n in range(10)]
                + [(f"{tag}-h{n}", good_then.offer_id, int(Channel.SMS), n == 10) for n in range(10, 20)]
                + [(f"{tag}-h{n}", poor_then.offer_id, int(Channel.SMS), False) for n in range(20, 40)])
    await sent_history(campaigns, runtime, assign_audience, history.campaign_id, tmp_path, contacts)

    # A new campaign offers one new offer of each type; the poor type's is worth half as much again.
    customers = [f"{tag}-c{n}" for n in range(5)]
    await seed_read_models(f"seg-{tag}", customers)
    campaign, [good_now, poor_now] = await running_campaign(
        new_campaign(segment=f"segments/seg-{tag}", control_group=NO_HOLDOUT, contact_policy=BY_RESPONSE),
        new_offer(offer_id=f"now-good-{tag}", priority=50, expected_value=cny(100), offer_type=good),
        new_offer(offer_id=f"now-poor-{tag}", priority=50, expected_value=cny(150), offer_type=poor))
    await build(campaigns, campaign.name)
    queued = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=campaign.name, page_size=1000),
                                             metadata=ANALYST)).dispatches
    assert len(queued) == len(customers)
    # Smoothed (5 %, 20 pseudo-contacts): good 10 of 40 = 25 %, poor 1 of 40 = 2.5 %; the app 13 of 30 against
    # SMS 6 of 30 for the good type (each centred on the type's 25 %). 50 x 100 x 0.25 beats 50 x 150 x 0.025.
    assert {(d.offer, d.state, d.channel, d.channel_reason) for d in queued} == {
        (good_now.name, audience_pb2.DISPATCH_STATE_QUEUED, APP,
         audience_pb2.CHANNEL_CHOICE_REASON_OBSERVED_RESPONSE_RATE)}

    # Next best action scores with the same rates: the good offer, at priority x value x 25 %.
    answer = await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=f"customers/{customers[0]}", channel=APP, audit=audit_pb2.AuditContext(
            purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)), metadata=APP_USER)
    [action] = [a for a in answer.actions if a.campaign == campaign.name]
    assert action.offer == good_now.name and action.score == pytest.approx(50 * 100 * 0.25)
    assert {e.offer: e.reason for e in answer.excluded}.get(poor_now.name) == "ARBITRATION_LOST"


class CountingRepository(ResponseRateRepository):
    """The real aggregate, counting how often it runs."""

    def __init__(self) -> None:
        self.runs = 0

    async def tallies(self, uow: Any) -> list[Tally]:
        self.runs += 1
        return await super().tallies(uow)


async def test_one_customer_at_a_time_reads_a_copy_cached_for_the_ttl(campaign_service) -> None:
    _, runtime = campaign_service
    now = [0.0]
    repository = CountingRepository()
    rates = ResponseRates(db=runtime.db, repository=repository, prior=Prior(0.1, 10), ttl_seconds=60,
                          monotonic=lambda: now[0])
    first = await rates.current()
    assert first.prior == Prior(0.1, 10) and first.type_rate(f"never-{uuid.uuid4().hex[:6]}") == 0.1
    now[0] = 59.0
    assert await rates.current() is first and repository.runs == 1, "within the ttl: no second aggregate"
    now[0] = 60.0
    assert await rates.current() is not first and repository.runs == 2, "past it: read again"
    # A build's fresh read refreshes the cached copy too.
    async with runtime.db.unit_of_work(read_only=True) as uow:
        built = await rates.load(uow)
    assert await rates.current() is built and repository.runs == 3
