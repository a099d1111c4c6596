"""Campaign follows segment's change feed into the `segment_member` read model (crmkit.peer_feed):
the candidates of every audience build, so a build needs no call to segment."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.segment.v1 import segment_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_campaign.audience import peers
from crm_campaign.audience.read_models import segment_member
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import ApplyEvent, PeerFeedFollower
from crmkit.settings import ServiceSettings

FEED = "segment"
MEMBER_TYPE = "crm.segment.v1.SegmentMember"


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """A customer entered a segment (recorded) or left it (removed)."""
    change = segment_pb2.MembershipChange()
    if (event.resource_type != MEMBER_TYPE or event.change_type != change_event_pb2.CHANGE_TYPE_EVENT
            or not event.payload.Unpack(change)):
        return False
    segment_id = change.segment.removeprefix("segments/")
    customer_id = change.customer.removeprefix("customers/")
    if change.kind == segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED:
        await connection.execute(pg.insert(segment_member).values(
            segment_id=segment_id, customer_id=customer_id, updated_at=sa.func.now()).on_conflict_do_nothing())
        return True
    if change.kind == segment_pb2.MEMBERSHIP_CHANGE_KIND_LEFT:
        return (await connection.execute(sa.delete(segment_member).where(
            segment_member.c.segment_id == segment_id, segment_member.c.customer_id == customer_id))).rowcount > 0
    return False


def follow_segment(*, db: Database, settings: ServiceSettings, target: str, max_backoff_seconds: float,
                   triggers: ApplyEvent | None = None) -> PeerFeedFollower:
    """`triggers` also sees every event, in the same transaction (after the membership is recorded)."""
    return peers.follow(name=FEED, target=target, stub=segment_service_pb2_grpc.SegmentServiceStub,
                        request_type=segment_service_pb2.WatchChangesRequest, resource_types=(MEMBER_TYPE,),
                        apply=peers.together(apply, triggers), db=db, settings=settings,
                        max_backoff_seconds=max_backoff_seconds)
