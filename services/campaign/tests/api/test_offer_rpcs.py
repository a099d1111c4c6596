"""CampaignService offer RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import interval_pb2, money_pb2

from crm.campaign.v1 import campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import product_risk_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
OTHER_MARKETER = bearer(Role.MARKETER, subject="marketer-z")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
C = campaign_pb2


@pytest.fixture
def draft(campaigns, new_campaign):  # type: ignore[no-untyped-def]
    """`await draft(**overrides)`: a new draft campaign by marketer-a."""
    async def create(**overrides: object) -> campaign_pb2.Campaign:
        return (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign(**overrides)),
                                               metadata=MARKETER)).campaign

    return create


async def create_offer(campaigns, parent, offer, metadata=MARKETER, request_id=""):  # type: ignore[no-untyped-def]
    return (await campaigns.CreateOffer(pb.CreateOfferRequest(parent=parent, offer=offer, request_id=request_id),
                                        metadata=metadata)).offer


async def test_create_then_get_and_list_the_offer(campaigns, draft, new_offer, cny) -> None:
    campaign = await draft()
    sent = new_offer(channels=[C.CHANNEL_SMS], eligibility=C.OfferEligibility(
        segment="segments/no-card", excluded_product_codes=["CC-GOLD"]))
    created = await create_offer(campaigns, campaign.name, sent)
    assert created.name == f"{campaign.name}/offers/{sent.offer_id}"
    assert created.etag and created.HasField("create_time")
    assert (created.display_name, created.product_code, created.priority) == (sent.display_name, "TD-3Y-CNY", 70)
    assert created.expected_value == cny(1_200)
    assert created.eligibility == sent.eligibility and list(created.contents) == list(sent.contents)
    fetched = (await campaigns.GetOffer(pb.GetOfferRequest(name=created.name), metadata=ANALYST)).offer
    assert fetched == created
    listed = (await campaigns.ListOffers(pb.ListOffersRequest(parent=campaign.name), metadata=ANALYST)).offers
    assert list(listed) == [created]


async def test_priority_defaults_to_fifty_and_ids_are_generated(campaigns, draft, new_offer) -> None:
    campaign = await draft()
    created = await create_offer(campaigns, campaign.name, new_offer(offer_id="", priority=0))
    assert created.priority == 50 and created.offer_id.startswith("offer-")


def _within_days(start: float, end: float) -> interval_pb2.Interval:
    now = datetime.now(UTC)
    interval = interval_pb2.Interval()
    interval.start_time.FromDatetime(now + timedelta(days=start))
    interval.end_time.FromDatetime(now + timedelta(days=end))
    return interval


BAD_OFFERS = [
    ({"offer_id": "9-starts-with-digit"}, "offer.offer_id"),
    ({"display_name": ""}, "offer.display_name"),
    ({"description": "d" * 2001}, "offer.description"),
    ({"product_code": ""}, "offer.product_code"),
    ({"product_code": "TD 3Y"}, "offer.product_code"),
    ({"product_risk_level": product_risk_pb2.PRODUCT_RISK_LEVEL_UNSPECIFIED}, "offer.product_risk_level"),
    ({"product_risk_level": 6}, "offer.product_risk_level"),
    ({"priority": 101}, "offer.priority"),
    ({"priority": -1}, "offer.priority"),
    ({"expected_value": money_pb2.Money(currency_code="EUR", units=1)}, "offer.expected_value.currency_code"),
    ({"expected_value": money_pb2.Money(currency_code="CNY", units=-1)}, "offer.expected_value"),
    ({"eligibility": C.OfferEligibility(segment="no-card")}, "offer.eligibility.segment"),
    ({"eligibility": C.OfferEligibility(excluded_product_codes=["ok", "bad code"])},
     "offer.eligibility.excluded_product_codes[1]"),
    ({"eligibility": C.OfferEligibility(excluded_product_codes=[f"P{i}" for i in range(51)])},
     "offer.eligibility.excluded_product_codes"),
    ({"channels": [C.CHANNEL_EMAIL]}, "offer.channels[0]"),
    ({"channels": [C.CHANNEL_SMS, C.CHANNEL_SMS]}, "offer.channels"),
    ({"contents": [C.ChannelContent(channel=C.CHANNEL_SMS)]}, "offer.contents[0].template_id"),
    ({"contents": [C.ChannelContent(template_id="t")]}, "offer.contents[0].channel"),
    ({"contents": [C.ChannelContent(channel=C.CHANNEL_SMS, template_id="a"),
                   C.ChannelContent(channel=C.CHANNEL_SMS, template_id="b")]}, "offer.contents[1].channel"),
    ({"contents": [C.ChannelContent(channel=C.CHANNEL_BRANCH_COUNTER, headline="h" * 101)]},
     "offer.contents[0].headline"),
    ({"valid_period": _within_days(-5, 3)}, "offer.valid_period.start_time"),
    ({"valid_period": _within_days(1, 45)}, "offer.valid_period.end_time"),
    ({"valid_period": _within_days(3, 2)}, "offer.valid_period.end_time"),
    ({"conversion_points": 1_000_001}, "offer.conversion_points"),
    ({"offer_type": "Term Deposit"}, "offer.offer_type"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_OFFERS, ids=[f for _, f in BAD_OFFERS])
async def test_bad_offer_field_is_invalid_argument_and_writes_nothing(
    campaigns, draft, new_offer, count_rows, overrides, field,
) -> None:
    campaign = await draft()
    before = (await count_rows("offer"), await count_rows("outbox_event"))
    offer = new_offer()
    for name, value in overrides.items():
        if isinstance(value, list):
            offer.ClearField(name)
            getattr(offer, name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(offer, name).CopyFrom(value)
        else:
            setattr(offer, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_offer(campaigns, campaign.name, offer)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert (await count_rows("offer"), await count_rows("outbox_event")) == before


async def test_a_taken_offer_id_is_already_exists_but_other_campaigns_may_reuse_it(
    campaigns, draft, new_offer,
) -> None:
    first, second = await draft(), await draft()
    offer = new_offer()
    await create_offer(campaigns, first.name, offer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_offer(campaigns, first.name, offer)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value) == "OFFER_EXISTS"
    assert (await create_offer(campaigns, second.name, offer)).offer_id == offer.offer_id


async def test_a_campaign_holds_at_most_twenty_offers(campaigns, draft, new_offer) -> None:
    campaign = await draft()
    for _ in range(20):
        await create_offer(campaigns, campaign.name, new_offer())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_offer(campaigns, campaign.name, new_offer())
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "TOO_MANY_OFFERS"
    page = await campaigns.ListOffers(pb.ListOffersRequest(parent=campaign.name, page_size=8), metadata=ANALYST)
    seen = list(page.offers)
    while page.next_page_token:
        page = await campaigns.ListOffers(pb.ListOffersRequest(parent=campaign.name, page_size=8,
                                                               page_token=page.next_page_token), metadata=ANALYST)
        seen += page.offers
    ids = [o.offer_id for o in seen]
    assert len(ids) == 20 and ids == sorted(ids)


async def test_retry_with_the_same_request_id_returns_the_first_offer(campaigns, draft, new_offer, count_rows) -> None:
    campaign = await draft()
    request_id = str(uuid.uuid4())
    first = await create_offer(campaigns, campaign.name, new_offer(offer_id=""), request_id=request_id)
    before = await count_rows("offer")
    again = await create_offer(campaigns, campaign.name, new_offer(offer_id=""), request_id=request_id)
    assert again == first and await count_rows("offer") == before


async def test_offers_of_an_unknown_campaign_are_not_found(campaigns, new_offer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as create:
        await create_offer(campaigns, "campaigns/no-such-campaign", new_offer())
    assert create.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(create.value) == "CAMPAIGN_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await campaigns.ListOffers(pb.ListOffersRequest(parent="campaigns/no-such-campaign"), metadata=ANALYST)
    assert listing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as single:
        await campaigns.GetOffer(pb.GetOfferRequest(name="campaigns/no-such-campaign/offers/x"), metadata=ANALYST)
    assert single.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(single.value) == "OFFER_NOT_FOUND"
    for name in ("campaigns/x", "campaigns/x/offers/", "offers/x", "campaigns/x/offers/Not A Valid Id"):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await campaigns.GetOffer(pb.GetOfferRequest(name=name), metadata=ANALYST)
        assert "name" in field_violations(bad.value)


async def test_update_changes_masked_fields_and_checks_the_etag(campaigns, draft, new_offer) -> None:
    campaign = await draft()
    created = await create_offer(campaigns, campaign.name, new_offer())
    changed = C.Offer(name=created.name, etag=created.etag, priority=90, product_code="ignored")
    updated = (await campaigns.UpdateOffer(pb.UpdateOfferRequest(
        offer=changed, update_mask=field_mask_pb2.FieldMask(paths=["priority"])), metadata=MARKETER)).offer
    assert updated.priority == 90 and updated.product_code == created.product_code
    assert updated.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await campaigns.UpdateOffer(pb.UpdateOfferRequest(
            offer=changed, update_mask=field_mask_pb2.FieldMask(paths=["priority"])), metadata=MARKETER)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    for paths, field in ((["offer_id"], "update_mask"), ([], "update_mask"), (["channels"], "offer.channels[0]")):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await campaigns.UpdateOffer(pb.UpdateOfferRequest(
                offer=C.Offer(name=created.name, offer_id="x", channels=[C.CHANNEL_WECHAT]),
                update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=MARKETER)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(bad.value)
    fetched = (await campaigns.GetOffer(pb.GetOfferRequest(name=created.name), metadata=ANALYST)).offer
    assert fetched == updated
    typed = (await campaigns.UpdateOffer(pb.UpdateOfferRequest(
        offer=C.Offer(name=created.name, offer_type="term-deposit"),
        update_mask=field_mask_pb2.FieldMask(paths=["offer_type"])), metadata=MARKETER)).offer
    assert (typed.offer_type, typed.priority) == ("term-deposit", 90)


async def test_delete_removes_the_offer(campaigns, draft, new_offer) -> None:
    campaign = await draft()
    created = await create_offer(campaigns, campaign.name, new_offer())
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await campaigns.DeleteOffer(pb.DeleteOfferRequest(name=created.name, etag="42"), metadata=MARKETER)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    await campaigns.DeleteOffer(pb.DeleteOfferRequest(name=created.name, etag=created.etag), metadata=MARKETER)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await campaigns.GetOffer(pb.GetOfferRequest(name=created.name), metadata=ANALYST)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await campaigns.DeleteOffer(pb.DeleteOfferRequest(name=created.name), metadata=MARKETER)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


async def test_analysts_read_offers_but_do_not_write_them(campaigns, draft, new_offer) -> None:
    campaign = await draft()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_offer(campaigns, campaign.name, new_offer(), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert list((await campaigns.ListOffers(pb.ListOffersRequest(parent=campaign.name), metadata=ANALYST)).offers) == []
    # Another marketer of the team may prepare the same draft.
    assert (await create_offer(campaigns, campaign.name, new_offer(), metadata=OTHER_MARKETER)).name
