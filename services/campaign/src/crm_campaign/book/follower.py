"""Campaign follows profile's Customer events into `customer_manager` (crmkit.peer_feed), so that
a relationship manager's own book can be checked without asking profile: a customer's manager is
the one profile's latest Customer event names. It is campaign's one copy of the books: care tasks,
contact history, next best action, loyalty and renewals all read it (`BookRepository`, or a join)
and decide with `book.rules`.

One follower of profile's feed (feed `profile-customers`, one stream, one cursor) keeps both the
books and renewal tracking's holdings (`renewals.feed.apply`, passed in as `holdings`): both
models must be built from the beginning of profile's feed, and both were new together, so they
share a cursor; each event is applied to both in one transaction, so they advance together.
The books are not applied by the contactability follower (feed `profile`) instead: that cursor
may already stand past the beginning of the feed where it was deployed before the books existed,
and the books would then miss every customer not changed since."""

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
from crmkit.peer_feed import ApplyEvent, PeerFeedFollower
from crmkit.settings import ServiceSettings

FEED = "profile-customers"
CUSTOMER_TYPE = "crm.profile.v1.Customer"
HOLDING_TYPE = "crm.profile.v1.Holding"


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


def follow_profile_customers(*, db: Database, settings: ServiceSettings, target: str, max_backoff_seconds: float,
                             holdings: ApplyEvent | None = None) -> PeerFeedFollower:
    """`holdings` (renewal tracking's) also sees every event, and the Holding events, in the same transaction."""
    types: tuple[str, ...] = (CUSTOMER_TYPE,) if holdings is None else (CUSTOMER_TYPE, HOLDING_TYPE)
    return peers.follow(name=FEED, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                        request_type=profile_service_pb2.WatchChangesRequest, resource_types=types,
                        apply=peers.together(apply, holdings), db=db, settings=settings,
                        max_backoff_seconds=max_backoff_seconds)
