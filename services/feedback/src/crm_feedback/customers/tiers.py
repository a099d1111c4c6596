"""Tier deadlines: feedback follows segment's change feed into two small read models, each
customer's value tier (`crm.segment.v1.CustomerClassification`) and each tier's service standard
(`crm.segment.v1.ValueTierDefinition`: its `max_response_time`), so a complaint's respond deadline
is the stricter of its SLA policy's and its customer's tier's (`sla.rules.with_tier`).

While segment is down or behind, filing uses the tier last known (or none: the policy alone); a
tier change applies to complaints filed afterwards. The tier's response time counts elapsed
time. On CURSOR_EXPIRED the models keep what they had (health: `segment_feed_expired`); a rebuild
from segment's List RPCs is not built yet.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.segment.v1 import classification_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_feedback.customers.tables import customer_tier, feed_cursor, tier_standard
from crmkit.db import Database, UnitOfWork
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

FEED = "segment"
SUBJECT = "service:feedback"
CLASSIFICATION_TYPE = "crm.segment.v1.CustomerClassification"
TIER_TYPE = "crm.segment.v1.ValueTierDefinition"


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


def follow_segment(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                   max_backoff_seconds: float) -> PeerFeedFollower:
    feed = PeerFeed(name=FEED, target=target, stub=segment_service_pb2_grpc.SegmentServiceStub,
                    request_type=segment_service_pb2.WatchChangesRequest,
                    resource_types=[CLASSIFICATION_TYPE, TIER_TYPE])
    return PeerFeedFollower(feed=feed, db=db, cursors=feed_cursor, apply=apply,
                            token_source=ServiceToken(settings, subject=SUBJECT), deadline_seconds=deadline_seconds,
                            tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds)


class TierStandards:
    """The respond time the customer's value tier promises, from the read models; None when the
    customer's tier or its standard is unknown or sets no time."""

    async def respond_within(self, uow: UnitOfWork, customer_id: str) -> timedelta | None:
        seconds = await uow.scalar(
            sa.select(tier_standard.c.max_response_seconds)
            .join(customer_tier, customer_tier.c.value_tier == tier_standard.c.value_tier)
            .where(customer_tier.c.customer_id == customer_id))
        return timedelta(seconds=seconds) if seconds else None
