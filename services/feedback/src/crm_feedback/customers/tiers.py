"""Tier deadlines: feedback follows segment's change feed into two small read models, each
customer's value tier (`crm.segment.v1.CustomerClassification`) and each tier's service standard
(`crm.segment.v1.ValueTierDefinition`: its `max_response_time`), so a complaint's respond deadline
is the stricter of its SLA policy's and its customer's tier's (`sla.rules.with_tier`).

While segment is down or behind, filing uses the tier last known (or none: the policy alone); a
tier change applies to complaints filed afterwards. The tier's response time counts elapsed
time. On CURSOR_EXPIRED (segment purged events the models never applied) they are rebuilt
(`rebuild.ModelRebuild`, `segment_snapshot`): the tier standards from segment's ListValueTiers,
and the tier of every customer feedback knows (its customer model and its tier model) from
GetCustomerClassification, one call per customer (segment has no bulk read of classifications);
a customer classified while feedback was away and never seen by it stays without a tier until
segment's feed brings one. While it runs, filing uses the tiers still stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import grpc
import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.segment.v1 import classification_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_feedback.customers.rebuild import ModelRebuild
from crm_feedback.customers.tables import customer_tier, feed_cursor, known_customer, tier_standard
from crmkit.db import Database, UnitOfWork
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

FEED = "segment"
SUBJECT = "service:feedback"
CLASSIFICATION_TYPE = "crm.segment.v1.CustomerClassification"
TIER_TYPE = "crm.segment.v1.ValueTierDefinition"
PAGE_SIZE = 100
# Classification reads made at once during a rebuild.
CONCURRENCY = 16
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT,
                               justification="feedback value-tier read model rebuild after CURSOR_EXPIRED")


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """One classification or tier definition event; False for anything else."""
    event_at = event.occurred_at.ToDatetime(tzinfo=UTC)
    if event.resource_type == CLASSIFICATION_TYPE:
        classification = classification_pb2.CustomerClassification()
        if not event.payload.Unpack(classification) or not classification.customer.startswith("customers/"):
            return False
        values = {"value_tier": int(classification.value_tier), "event_at": event_at}
        statement = pg.insert(customer_tier).values(
            customer_id=classification.customer.removeprefix("customers/"), **values)
        await connection.execute(statement.on_conflict_do_update(index_elements=[customer_tier.c.customer_id],
                                                                 set_=values))
        return True
    if event.resource_type == TIER_TYPE:
        definition = classification_pb2.ValueTierDefinition()
        if not event.payload.Unpack(definition) or not definition.tier:
            return False
        standard = definition.service_standard
        seconds = (int(standard.max_response_time.ToTimedelta().total_seconds())
                   if standard.HasField("max_response_time") else None)
        tier_values = {"max_response_seconds": seconds, "event_at": event_at}
        tier_statement = pg.insert(tier_standard).values(value_tier=int(definition.tier), **tier_values)
        await connection.execute(tier_statement.on_conflict_do_update(index_elements=[tier_standard.c.value_tier],
                                                                      set_=tier_values))
        return True
    return False


async def clear(connection: AsyncConnection) -> None:
    """Empties the tier standards before a rebuild; customers' tiers stay until re-read (the
    rebuild reads them again, customer by customer, from the ones stored here)."""
    await connection.execute(sa.delete(tier_standard))


def segment_snapshot(db: Database) -> Callable[[grpc.aio.Channel], AsyncIterator[list[ChangeEvent]]]:
    """Segment's current tier standards and the classification of every customer feedback knows,
    as the events `apply` knows, at the feed's start position (cursor "")."""

    async def snapshot(channel: grpc.aio.Channel) -> AsyncIterator[list[ChangeEvent]]:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        now = datetime.now(UTC)
        token = ""
        while True:
            page = await stub.ListValueTiers(segment_service_pb2.ListValueTiersRequest(page_size=PAGE_SIZE,
                                                                                      page_token=token))
            yield [_event(TIER_TYPE, tier.name, tier, at=now) for tier in page.value_tiers]
            token = page.next_page_token
            if not token:
                break
        async with db.unit_of_work(read_only=True) as uow:
            known = sa.union(sa.select(known_customer.c.customer_id), sa.select(customer_tier.c.customer_id))
            customer_ids = sorted((await uow.execute(known)).scalars())
        limit = asyncio.Semaphore(CONCURRENCY)

        async def classification(customer_id: str) -> classification_pb2.CustomerClassification | None:
            async with limit:
                try:
                    return (await stub.GetCustomerClassification(segment_service_pb2.GetCustomerClassificationRequest(
                        customer=f"customers/{customer_id}", audit=AUDIT))).classification
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.NOT_FOUND:
                        return None  # not classified (yet): the tier stored stays until the feed says
                    raise

        for start in range(0, len(customer_ids), PAGE_SIZE):
            found = await asyncio.gather(*(classification(c) for c in customer_ids[start:start + PAGE_SIZE]))
            yield [_event(CLASSIFICATION_TYPE, c.customer, c, at=now) for c in found if c is not None]

    return snapshot


def _event(resource_type: str, resource_name: str, payload: Message, *, at: datetime) -> ChangeEvent:
    event = change_event_pb2.ChangeEvent(cursor="", event_id=str(uuid.uuid4()), resource_type=resource_type,
                                         resource_name=resource_name,
                                         change_type=change_event_pb2.CHANGE_TYPE_UPDATED, actor=SUBJECT)
    event.occurred_at.FromDatetime(at)
    event.payload.Pack(payload)
    return event


def follow_segment(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                   max_backoff_seconds: float, rebuild: ModelRebuild | None = None) -> PeerFeedFollower:
    """The follower of segment's tiers; with `rebuild`, an expired cursor rebuilds the models."""
    feed = PeerFeed(name=FEED, target=target, stub=segment_service_pb2_grpc.SegmentServiceStub,
                    request_type=segment_service_pb2.WatchChangesRequest,
                    resource_types=[CLASSIFICATION_TYPE, TIER_TYPE])
    follower = PeerFeedFollower(
        feed=feed, db=db, cursors=feed_cursor, apply=apply, token_source=ServiceToken(settings, subject=SUBJECT),
        deadline_seconds=deadline_seconds, tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        on_expired=rebuild.start if rebuild is not None else None)
    if rebuild is not None:
        rebuild.follower = follower
    return follower


class TierStandards:
    """The respond time the customer's value tier promises, from the read models; None when the
    customer's tier or its standard is unknown or sets no time."""

    async def respond_within(self, uow: UnitOfWork, customer_id: str) -> timedelta | None:
        seconds = await uow.scalar(
            sa.select(tier_standard.c.max_response_seconds)
            .join(customer_tier, customer_tier.c.value_tier == tier_standard.c.value_tier)
            .where(customer_tier.c.customer_id == customer_id))
        return timedelta(seconds=seconds) if seconds else None
