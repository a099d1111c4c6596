"""Campaign follows feedback's change feed into the `open_complaint` read model (crmkit.peer_feed).

A customer with a complaint that is not resolved or closed is not marketed to (the audience
funnel's OPEN_COMPLAINT reason). Campaign starts and serves while feedback is down: builds then
use the model as last applied (its age is in the health details, `feedback_feed_*`).
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import feedback_service_pb2, feedback_service_pb2_grpc
from crm_campaign.audience import peers
from crm_campaign.audience.read_models import open_complaint
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeedFollower
from crmkit.peer_payloads import COMPLAINT_TYPE, complaint_of, is_open
from crmkit.settings import ServiceSettings

FEED = "feedback"
DELETED = change_event_pb2.CHANGE_TYPE_DELETED


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """One complaint event: an open complaint is recorded, a resolved, closed or deleted one removed.
    An SLA breach (an event whose payload is no complaint) changes nothing."""
    if event.resource_type != COMPLAINT_TYPE:
        return False
    complaint_id = event.resource_name.rsplit("/", 1)[-1]
    if event.change_type == DELETED:
        return (await connection.execute(sa.delete(open_complaint).where(
            open_complaint.c.complaint_id == complaint_id))).rowcount > 0
    complaint = complaint_of(event)
    if complaint is None:
        return False
    if is_open(complaint) and complaint.customer:
        await connection.execute(pg.insert(open_complaint).values(
            complaint_id=complaint_id, customer_id=complaint.customer.removeprefix("customers/"),
            opened_at=event.occurred_at.ToDatetime(tzinfo=UTC)).on_conflict_do_nothing())
        return True
    return (await connection.execute(sa.delete(open_complaint).where(
        open_complaint.c.complaint_id == complaint_id))).rowcount > 0


def follow_feedback(*, db: Database, settings: ServiceSettings, target: str, max_backoff_seconds: float
                    ) -> PeerFeedFollower:
    return peers.follow(name=FEED, target=target, stub=feedback_service_pb2_grpc.FeedbackServiceStub,
                        request_type=feedback_service_pb2.WatchChangesRequest, resource_types=(COMPLAINT_TYPE,),
                        apply=apply, db=db, settings=settings, max_backoff_seconds=max_backoff_seconds)
