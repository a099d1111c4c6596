"""Service functions run in the unit of work they are handed: two calls in one transaction commit
together or not at all."""

from __future__ import annotations

from typing import Any

import pytest

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign import tables
from crm_campaign.api import campaign_messages, offer_messages
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import Campaigns
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.offers.service import Offers
from crmkit.auth import Principal, Role
from crmkit.db import Database
from crmkit.errors import NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens

MARKETER = Principal(subject="marketer-1", roles=frozenset({Role.MARKETER}))


class Abandoned(Exception):
    """Raised inside the outer unit of work to roll it back."""


def use_cases() -> tuple[Campaigns, Offers]:
    outbox, keys, tokens = Outbox(tables.outbox_event), IdempotencyKeys(tables.idempotency_key), PageTokens(b"k" * 32)
    campaigns, offers = CampaignRepository(), OfferRepository()
    return (Campaigns(repository=campaigns, offers=offers, outbox=outbox, idempotency=keys, page_tokens=tokens,
                      feed_payload=campaign_messages.to_proto, reporting_currency="CNY"),
            Offers(repository=offers, campaigns=campaigns, outbox=outbox, idempotency=keys, page_tokens=tokens,
                   feed_payload=offer_messages.to_proto, reporting_currency="CNY",
                   knows_template=lambda channel, template_id: True))


async def create_both(db: Database, campaign: Any, offer: Any, *, abandon: bool) -> None:
    campaigns, offers = use_cases()
    async with db.unit_of_work() as uow:
        created = await campaigns.create(uow=uow, campaign=campaign_messages.to_domain(campaign), request_id=None,
                                         request=pb.CreateCampaignRequest(campaign=campaign), actor=MARKETER)
        await offers.create(uow=uow, offer=offer_messages.to_domain(offer, campaign_id=created.campaign_id),
                            request_id=None, request=pb.CreateOfferRequest(offer=offer), actor=MARKETER)
        if abandon:
            raise Abandoned


async def test_two_service_calls_in_one_unit_of_work_roll_back_together(
        campaign_service: tuple[Any, Any], new_campaign: Any, new_offer: Any, count_rows: Any) -> None:
    _, runtime = campaign_service
    campaign, offer = new_campaign(), new_offer()
    before = (await count_rows("campaign"), await count_rows("offer"), await count_rows("outbox_event"))
    with pytest.raises(Abandoned):
        await create_both(runtime.db, campaign, offer, abandon=True)
    assert (await count_rows("campaign"), await count_rows("offer"), await count_rows("outbox_event")) == before
    campaigns, offers = use_cases()
    async with runtime.db.unit_of_work(read_only=True) as uow:
        with pytest.raises(NotFound):
            await campaigns.get(uow=uow, campaign_id=campaign.campaign_id)

    await create_both(runtime.db, campaign, offer, abandon=False)
    async with runtime.db.unit_of_work(read_only=True) as uow:
        assert (await campaigns.get(uow=uow, campaign_id=campaign.campaign_id)).display_name == campaign.display_name
        assert await offers.get(uow=uow, campaign_id=campaign.campaign_id, offer_id=offer.offer_id)
    assert (await count_rows("campaign"), await count_rows("offer"), await count_rows("outbox_event")) == (
        before[0] + 1, before[1] + 1, before[2] + 2)
