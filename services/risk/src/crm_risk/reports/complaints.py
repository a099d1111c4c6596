"""Risk follows feedback's change feed for complaints (`crmkit.peer_payloads`, the meaning segment
and campaign use too): each complaint's customer, when it was filed and whether the bank still
owes an answer. The credit inputs count them (`complaints_12m`); the churn report takes a
complaint in the 90 days before a churn as the bank's fault and as dissatisfaction.

Each row keeps the position in feedback's feed of the event that last wrote it, so a replayed or
older event changes nothing. Risk starts and serves while feedback is down: the complaints are
then as last applied (the follower's `feedback_feed_*` health details say how old).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import feedback_service_pb2, feedback_service_pb2_grpc
from crm_risk.customers.tables import Position, feed_cursor
from crm_risk.reports.tables import complaint
from crm_risk.triggers.model import FiledComplaint
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.outbox import feed_order
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.peer_payloads import COMPLAINT_TYPE, complaint_of, is_open
from crmkit.settings import ServiceSettings

log = get_logger("crm.risk.complaints")

FEED = "feedback"
SUBJECT = "service:risk"
DELETED = change_event_pb2.CHANGE_TYPE_DELETED
k = complaint.c
# Called, in the apply transaction, with a complaint risk had not seen before (alert triggers).
OnNewComplaint = Callable[[AsyncConnection, FiledComplaint], Awaitable[object]]


async def apply(connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> bool:
    """Record one complaint event; False when it changed nothing (a replay, an older event, an SLA
    event, a complaint of no customer)."""
    return await record(connection, event) is not None


def applier(on_new: OnNewComplaint | None) -> Callable[[AsyncConnection, change_event_pb2.ChangeEvent],
                                                       Awaitable[bool]]:
    """`apply`, then `on_new` in the same transaction when the event brought a complaint risk had
    not seen: each complaint reaches `on_new` once, however often its events are replayed."""
    async def apply_event(connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> bool:
        recorded = await record(connection, event)
        if recorded is None:
            return False
        filed, new = recorded
        if new and on_new is not None:
            await on_new(connection, filed)
        return True
    return apply_event


async def record(connection: AsyncConnection, event: change_event_pb2.ChangeEvent
                 ) -> tuple[FiledComplaint, bool] | None:
    """The complaint an event wrote and whether it was new (its first row); None when it changed
    nothing."""
    complaint_id = event.resource_name.rsplit("/", 1)[-1]
    position = feed_order(event.cursor)
    if event.resource_type == COMPLAINT_TYPE and event.change_type == DELETED:
        gone = await connection.execute(
            sa.update(complaint).where(k.complaint_id == complaint_id, k.position < sa.literal(position, Position))
            .values(open=False, position=position).returning(k.customer_id, k.filed_at))
        row = gone.first()
        return None if row is None else (FiledComplaint(complaint_id, row.customer_id, row.filed_at), False)
    filed = complaint_of(event)
    if filed is None or not filed.customer.startswith("customers/"):
        return None
    moment = filed.create_time if filed.HasField("create_time") else event.occurred_at
    insert = pg.insert(complaint).values(
        complaint_id=complaint_id, customer_id=filed.customer.removeprefix("customers/"), position=position,
        open=is_open(filed), filed_at=moment.ToDatetime(tzinfo=UTC))
    written = await connection.execute(insert.on_conflict_do_update(
        index_elements=[k.complaint_id], set_={"position": insert.excluded.position, "open": insert.excluded.open},
        where=k.position < insert.excluded.position).returning(
            k.customer_id, k.filed_at, sa.literal_column("(xmax = 0)").label("inserted")))
    row = written.first()
    return None if row is None else (FiledComplaint(complaint_id, row.customer_id, row.filed_at), bool(row.inserted))


def _expired() -> None:
    # Events purged before risk applied them: complaint counts may miss some until feedback
    # publishes them again. Health details show `feedback_feed_expired`.
    log.error("peer_feed_cursor_expired", feed=FEED, action="complaint counts may be stale")


def follow_feedback(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                    max_backoff_seconds: float, feed_name: str = FEED,
                    on_new_complaint: OnNewComplaint | None = None) -> PeerFeedFollower:
    """`feed_name` names the cursor (a test gives its own); `on_new_complaint` runs in the
    transaction that records a complaint risk had not seen (complaint-spike alert rules)."""
    return PeerFeedFollower(
        feed=PeerFeed(name=feed_name, target=target, stub=feedback_service_pb2_grpc.FeedbackServiceStub,
                      request_type=feedback_service_pb2.WatchChangesRequest, resource_types=(COMPLAINT_TYPE,)),
        db=db, cursors=feed_cursor, apply=applier(on_new_complaint),
        token_source=ServiceToken(settings, subject=SUBJECT),
        deadline_seconds=deadline_seconds, tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        on_expired=_expired)
