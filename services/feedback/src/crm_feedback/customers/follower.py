"""Feedback follows profile's change feed (customers only) into its `known_customer` read model
(`crmkit.peer_feed`); `CustomerDirectory` answers complaint filing from it (see `rules.py` for what
happens while the model lags or profile is down).

On CURSOR_EXPIRED (profile purged events this model never applied) the model stops being trusted
(`customers_feed_expired` in health) and filing falls back to accepting unknown customers
unverified; rebuilding it from profile's List RPCs is not built yet (segment's rebuild is the
pattern to follow)."""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_feedback.complaints.tables import complaint
from crm_feedback.customers import rules
from crm_feedback.customers.tables import feed_cursor, known_customer
from crmkit.db import Database, UnitOfWork
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

FEED = "customers"
SUBJECT = "service:feedback"
CUSTOMER_TYPE = "crm.profile.v1.Customer"


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """One customer event: the row takes the customer's state (a deleted record: state 0)."""
    if event.resource_type != CUSTOMER_TYPE or not event.resource_name.startswith("customers/"):
        return False
    customer_id = event.resource_name.removeprefix("customers/")
    values: dict[str, object] = {"state": rules.DELETED, "merged_into": "", "relationship_manager_id": "",
                                 "event_at": event.occurred_at.ToDatetime(tzinfo=UTC)}
    if event.change_type != change_event_pb2.CHANGE_TYPE_DELETED:
        customer = customer_pb2.Customer()
        if not event.payload.Unpack(customer):
            return False
        values.update(state=customer.state or rules.ACTIVE, merged_into=customer.merged_into.removeprefix("customers/"),
                      relationship_manager_id=customer.relationship_manager_id)
    statement = pg.insert(known_customer).values(customer_id=customer_id, **values)
    await connection.execute(statement.on_conflict_do_update(index_elements=[known_customer.c.customer_id],
                                                             set_=values))
    manager = values["relationship_manager_id"]
    await connection.execute(sa.update(complaint).where(complaint.c.customer_id == customer_id,
                                                        complaint.c.customer_manager != manager)
                             .values(customer_manager=manager))
    return True


def follow_profile(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                   max_backoff_seconds: float) -> PeerFeedFollower:
    feed = PeerFeed(name=FEED, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                    request_type=profile_service_pb2.WatchChangesRequest, resource_types=[CUSTOMER_TYPE])
    return PeerFeedFollower(feed=feed, db=db, cursors=feed_cursor, apply=apply,
                            token_source=ServiceToken(settings, subject=SUBJECT), deadline_seconds=deadline_seconds,
                            tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds)


class CustomerDirectory:
    """The customers feedback knows, and how far to trust that (None follower: not following)."""

    def __init__(self, follower: PeerFeedFollower | None) -> None:
        self._follower = follower

    async def verify(self, uow: UnitOfWork, customer_id: str) -> tuple[bool, str]:
        """(True verified / False accepted unverified, the customer's relationship manager or "");
        raises when refused (`rules.verify`)."""
        if self._follower is None:
            return rules.verify(customer_id, None, None), ""
        row = (await uow.execute(sa.select(known_customer).where(known_customer.c.customer_id == customer_id))
               ).first()
        known = (rules.KnownCustomer(row.customer_id, row.state, row.merged_into, row.relationship_manager_id)
                 if row is not None else None)
        as_of = await uow.scalar(sa.select(feed_cursor.c.event_at).where(feed_cursor.c.feed == FEED))
        following = self._follower.consumer.connected.is_set() and not self._follower.expired
        verified = rules.verify(customer_id, known, rules.ModelState(following=following, as_of=as_of))
        return verified, known.relationship_manager_id if known is not None else ""
