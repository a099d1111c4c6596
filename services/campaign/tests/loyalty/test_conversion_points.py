"""Points earned by conversions: `Offer.conversion_points` credited to the ledger in the conversion's
own transaction, once per conversion, never for the control group."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm.campaign.v1 import audience_pb2, engagement_pb2, loyalty_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2
from crm_campaign import tables
from crm_campaign.api import dispatch_messages
from crm_campaign.audience.model import Eligible
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.testing import bearer
from crmkit.values import timestamp

APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_MARKETING)


async def convert(campaigns: Any, customer: str, reference: str, **fields: Any) -> engagement_pb2.Conversion:
    conversion = engagement_pb2.Conversion(customer=customer, source_reference=reference,
                                           conversion_time=timestamp(datetime.now(UTC)),
                                           **fields)
    return (await campaigns.RecordConversion(pb.RecordConversionRequest(
        conversion=conversion, request_id=str(uuid.uuid4())), metadata=APP)).conversion


async def history(campaigns: Any, customer: str) -> list[loyalty_pb2.LoyaltyTransaction]:
    return list((await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
        customer=customer, audit=AUDIT), metadata=ANALYST)).transactions)


async def test_a_conversion_earns_the_offers_points_once(  # type: ignore[no-untyped-def]
        campaigns, campaign_service, running_campaign, assign_audience, tmp_path: Path) -> None:
    _, runtime = campaign_service
    campaign, [offer] = await running_campaign()
    tag = uuid.uuid4().hex[:6]
    await assign_audience(campaign.campaign_id, [
        Eligible(customer_id=f"{tag}-{n}", offer_id=offer.offer_id, channel=Channel.SMS,
                 template_id="sms-td-renewal-v2", segment=campaign.segment) for n in range(40)])
    worker = Dispatcher(db=runtime.db, repository=DispatchRepository(),
                        adapters=ChannelAdapters({int(Channel.SMS): FileAdapter(tmp_path)}),
                        outbox=Outbox(tables.outbox_event), feed_payload=dispatch_messages.to_proto)
    await worker.drain()
    await worker.close()
    dispatches = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=campaign.name, page_size=1000),
                                                 metadata=ANALYST)).dispatches
    sent = [d for d in dispatches if d.state == audience_pb2.DISPATCH_STATE_SENT]
    targets = {d.customer for d in sent}
    controls = sorted({f"customers/{tag}-{n}" for n in range(40)} - targets)
    customer = sent[0].customer

    reference = f"ACC-{uuid.uuid4().hex[:8]}"
    bought = await convert(campaigns, customer, reference, offer=offer.name)
    assert bought.points_awarded == offer.conversion_points == 500
    again = await convert(campaigns, customer, reference, offer=offer.name)
    assert again.name == bought.name
    [earned] = await history(campaigns, customer)
    assert (earned.type, earned.points, earned.balance_after, earned.source) == (
        loyalty_pb2.LOYALTY_TRANSACTION_TYPE_EARNED, 500, 500, bought.name)
    assert earned.HasField("expire_on") and earned.actor == "mobile-app"
    found = (await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(customer=customer, audit=AUDIT),
                                               metadata=ANALYST)).loyalty_account
    assert (found.balance, found.lifetime_earned, found.expiring_points) == (500, 500, 500)

    if controls:  # about 10 % of 40 are held out; a held-out customer's conversion earns nothing
        held_out = await convert(campaigns, controls[0], f"ACC-{uuid.uuid4().hex[:8]}", product_code="TD-3Y-CNY")
        assert held_out.control_group and held_out.points_awarded == 0
        assert await history(campaigns, controls[0]) == []
