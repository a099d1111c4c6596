"""Campaign follows profile's Customer events into `customer_manager` (crmkit.peer_feed), so that
a relationship manager's own book can be checked without asking profile: a customer's manager is
the one profile's latest Customer event names.

It is a follower of its own (feed `profile-customers`, its own cursor) rather than one more
resource type on the contactability follower, so it starts from the beginning of profile's feed
and learns the managers of customers that have not changed since that follower started."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_campaign.audience import peers
from crm_campaign.book.tables import customer_manager as t
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeedFollower
from crmkit.settings import ServiceSettings

FEED = "profile-customers"
CUSTOMER_TYPE = "crm.profile.v1.Customer"


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """One Customer event: the row takes the customer's manager (a deleted record: none, inactive)."""
    if event.resource_type != CUSTOMER_TYPE or not event.resource_name.startswith("customers/"):
        return False
    customer_id = event.resource_name.removeprefix("customers/")
    values: dict[str, object] = {"relationship_manager_id": "", "active": False,
                                 "event_at": event.occurred_at.ToDatetime(tzinfo=UTC)}
    if event.change_type != change_event_pb2.CHANGE_TYPE_DELETED:
        customer = customer_pb2.Customer()
        if not event.payload.Unpack(customer):
            return False
        values.update(relationship_manager_id=customer.relationship_manager_id, active=True)
    statement = pg.insert(t).values(customer_id=customer_id, **values)
    await connection.execute(statement.on_conflict_do_update(index_elements=[t.c.customer_id], set_=values))
    return True


def follow_profile_customers(*, db: Database, settings: ServiceSettings, target: str, max_backoff_seconds: float
                             ) -> PeerFeedFollower:
    return peers.follow(name=FEED, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                        request_type=profile_service_pb2.WatchChangesRequest, resource_types=(CUSTOMER_TYPE,),
                        apply=apply, db=db, settings=settings, max_backoff_seconds=max_backoff_seconds)
