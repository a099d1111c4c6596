"""The campaign change feed: outbox rows written with each campaign and offer change, streamed by
WatchChanges (dispatches, responses and conversions are checked with their own RPCs)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.campaign.v1 import campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import change_event_pb2
from crmkit.auth import Role
from crmkit.outbox import parse_cursor
from crmkit.testing import bearer, change_feed, next_events, tail_cursor

FEED = bearer(Role.SERVICE, subject="svc-segment")
MARKETER = bearer(Role.MARKETER, subject="marketer-a")


def feed(campaigns):  # type: ignore[no-untyped-def]
    """Opens the campaign change feed as the platform service that reads it."""
    return change_feed(campaigns, pb.WatchChangesRequest, FEED)


async def test_campaign_and_offer_changes_appear_on_the_feed_in_order(campaigns, new_campaign, new_offer) -> None:
    cursor = await tail_cursor(feed(campaigns))
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                              metadata=MARKETER)).campaign
    offer = (await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=new_offer()),
                                         metadata=MARKETER)).offer
    await campaigns.UpdateCampaign(pb.UpdateCampaignRequest(
        campaign=campaign_pb2.Campaign(name=created.name, display_name="Renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=MARKETER)
    await campaigns.DeleteCampaign(pb.DeleteCampaignRequest(name=created.name), metadata=MARKETER)
    events = await next_events(feed(campaigns), cursor, 4,
                               resource_types=["crm.campaign.v1.Campaign", "crm.campaign.v1.Offer"])
    mine = [e for e in events if e.resource_name.startswith(created.name)]
    assert [(e.resource_name, e.change_type) for e in mine] == [
        (created.name, change_event_pb2.CHANGE_TYPE_CREATED),
        (offer.name, change_event_pb2.CHANGE_TYPE_CREATED),
        (created.name, change_event_pb2.CHANGE_TYPE_UPDATED),
        (created.name, change_event_pb2.CHANGE_TYPE_DELETED),
    ]
    assert all(e.actor == "marketer-a" for e in mine)
    assert [parse_cursor(e.cursor) for e in events] == sorted(parse_cursor(e.cursor) for e in events)
    payload = campaign_pb2.Campaign()
    assert mine[2].payload.Unpack(payload)
    assert payload.display_name == "Renamed"


async def test_a_malformed_cursor_is_invalid_argument(campaigns) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in campaigns.WatchChanges(pb.WatchChangesRequest(after_cursor="-1"), metadata=FEED):
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_feed_readers_need_the_service_role(campaigns) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in campaigns.WatchChanges(pb.WatchChangesRequest(), metadata=MARKETER):
            pass
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
