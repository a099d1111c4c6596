"""Feedback follows profile's change feed (customers only) into its `known_customer` read model
(`crmkit.peer_feed`); `CustomerDirectory` answers complaint filing from it (see `rules.py` for what
happens while the model lags or profile is down).

On CURSOR_EXPIRED (profile purged events this model never applied) the model stops being trusted
(`customers_feed_expired` in health), filing falls back to accepting unknown customers unverified,
and the model is rebuilt from profile's ListCustomers (`rebuild.ModelRebuild`, `profile_snapshot`);
it then follows profile from the oldest event profile retains, and is trusted again once profile's
feed delivers (as after any start)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_feedback.complaints.tables import complaint
from crm_feedback.customers import rules
from crm_feedback.customers.rebuild import ModelRebuild
from crm_feedback.customers.tables import feed_cursor, known_customer
from crmkit.db import Database, UnitOfWork
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

FEED = "customers"
SUBJECT = "service:feedback"
CUSTOMER_TYPE = "crm.profile.v1.Customer"
PAGE_SIZE = 500
# Profile audits every list: feedback reads who its customers are to handle complaints.
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT,
                               justification="feedback customer read model rebuild after CURSOR_EXPIRED")


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


async def clear(connection: AsyncConnection) -> None:
    """Empties the model before a rebuild (complaints keep their manager until the customer is re-applied)."""
    await connection.execute(sa.delete(known_customer))


async def profile_snapshot(channel: grpc.aio.Channel, *, page_size: int = PAGE_SIZE
                           ) -> AsyncIterator[list[ChangeEvent]]:
    """Profile's customers, a page at a time, as the events `apply` knows, at the feed's start
    position (cursor ""), so every event profile still retains, replayed afterwards, wins."""
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    now = datetime.now(UTC)
    token = ""
    while True:
        page = await stub.ListCustomers(profile_service_pb2.ListCustomersRequest(
            page_size=page_size, page_token=token, audit=AUDIT))
        yield [_event(customer, at=now) for customer in page.customers]
        token = page.next_page_token
        if not token:
            return


def _event(customer: customer_pb2.Customer, *, at: datetime) -> ChangeEvent:
    event = change_event_pb2.ChangeEvent(cursor="", event_id=str(uuid.uuid4()), resource_type=CUSTOMER_TYPE,
                                         resource_name=customer.name,
                                         change_type=change_event_pb2.CHANGE_TYPE_UPDATED, actor=SUBJECT)
    event.occurred_at.FromDatetime(at)
    event.payload.Pack(customer)
    return event


def follow_profile(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                   max_backoff_seconds: float, rebuild: ModelRebuild | None = None) -> PeerFeedFollower:
    """The follower of profile's customers; with `rebuild`, an expired cursor rebuilds the model."""
    feed = PeerFeed(name=FEED, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                    request_type=profile_service_pb2.WatchChangesRequest, resource_types=[CUSTOMER_TYPE])
    follower = PeerFeedFollower(
        feed=feed, db=db, cursors=feed_cursor, apply=apply, token_source=ServiceToken(settings, subject=SUBJECT),
        deadline_seconds=deadline_seconds, tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        on_expired=rebuild.start if rebuild is not None else None)
    if rebuild is not None:
        rebuild.follower = follower
    return follower


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
