"""Features from feedback's and risk's change feeds (`crmkit.peer_feed`), beside profile's.

- **Feedback**: each complaint (`feature_complaint`): its customer, when it was filed and whether
  the bank still owes an answer (`crmkit.peer_payloads`, the meaning campaign uses too). The
  catalogue counts them per customer (`open_complaint_count`, `complaint_count_90d`).
- **Risk**: each customer's current churn score as risk publishes it (`feature_churn_score`):
  `churn_probability`, `churn_risk_band`.

Each row keeps the position in its own feed of the event that last wrote it, so a replayed or
older event changes nothing (positions of different feeds are never compared). The catalogue
reads these tables directly, so the order in which profile's and a peer's events arrive does
not matter. Each applied change re-evaluates the customer's real-time segments in the same
transaction. Segment starts and serves while a peer is down: its features are then as last
applied (the follower's `<feed>_feed_*` health details say how old).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import feedback_service_pb2, feedback_service_pb2_grpc
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc, scoring_pb2
from crm_segment import tables
from crm_segment.features import rules
from crm_segment.features.tables import Position, feature_churn_score, feature_complaint
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.peer_payloads import CHURN_SCORE_TYPE, COMPLAINT_TYPE, complaint_of, is_open
from crmkit.settings import ServiceSettings

log = get_logger("crm.segment.features")

FEEDBACK_FEED = "feedback"
RISK_FEED = "risk"
SUBJECT = "service:segment"
DELETED = change_event_pb2.CHANGE_TYPE_DELETED
fc = feature_complaint.c
cs = feature_churn_score.c

# Re-evaluates one customer's real-time segments in the apply transaction (app.py wires it).
Reevaluate = Callable[[AsyncConnection, str, str], Awaitable[object]]


async def apply_complaint(connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> str | None:
    """Record one complaint event; the customer whose complaints changed, or None (a replay, an
    SLA event, a complaint of no customer)."""
    complaint_id = event.resource_name.rsplit("/", 1)[-1]
    position = rules.position_key(event.cursor)
    if event.resource_type == COMPLAINT_TYPE and event.change_type == DELETED:
        gone = await connection.execute(
            sa.update(feature_complaint)
            .where(fc.complaint_id == complaint_id, fc.position < sa.literal(position, Position))
            .values(open=False, position=position).returning(fc.customer_id))
        return gone.scalar()
    complaint = complaint_of(event)
    if complaint is None or not complaint.customer.startswith("customers/"):
        return None
    filed = complaint.create_time if complaint.HasField("create_time") else event.occurred_at
    insert = pg.insert(feature_complaint).values(
        complaint_id=complaint_id, customer_id=complaint.customer.removeprefix("customers/"), position=position,
        open=is_open(complaint), filed_at=filed.ToDatetime(tzinfo=UTC))
    written = await connection.execute(insert.on_conflict_do_update(
        index_elements=[fc.complaint_id], set_={"position": insert.excluded.position, "open": insert.excluded.open},
        where=fc.position < insert.excluded.position).returning(fc.customer_id))
    return written.scalar()


async def apply_churn_score(connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> str | None:
    """Record a customer's newly published churn score; the customer, or None for a replay."""
    customer_id = rules.customer_id_of(event.resource_name)
    score = scoring_pb2.ChurnScore()
    if event.resource_type != CHURN_SCORE_TYPE or customer_id is None or not event.payload.Unpack(score):
        return None
    scored = score.score_time if score.HasField("score_time") else event.occurred_at
    insert = pg.insert(feature_churn_score).values(
        customer_id=customer_id, position=rules.position_key(event.cursor), probability=score.probability,
        risk_band=int(score.risk_band), scored_at=scored.ToDatetime(tzinfo=UTC))
    written = await connection.execute(insert.on_conflict_do_update(
        index_elements=[cs.customer_id],
        set_={k: insert.excluded[k] for k in ("position", "probability", "risk_band", "scored_at")},
        where=cs.position < insert.excluded.position).returning(cs.customer_id))
    return written.scalar()


def _applier(record: Callable[[AsyncConnection, change_event_pb2.ChangeEvent], Awaitable[str | None]],
             reevaluate: Reevaluate) -> Callable[[AsyncConnection, change_event_pb2.ChangeEvent], Awaitable[bool]]:
    async def apply(connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> bool:
        customer_id = await record(connection, event)
        if customer_id is None:
            return False
        await reevaluate(connection, customer_id, event.event_id)
        return True
    return apply


def _expired(feed: str) -> None:
    # Events purged before segment applied them: the counts may miss complaints or scores until
    # the peer publishes them again. Health details show `<feed>_feed_expired`.
    log.error("peer_feed_cursor_expired", feed=feed, action="features from this feed may be stale")


def follow_feedback(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                    max_backoff_seconds: float, reevaluate: Reevaluate) -> PeerFeedFollower:
    return PeerFeedFollower(
        feed=PeerFeed(name=FEEDBACK_FEED, target=target, stub=feedback_service_pb2_grpc.FeedbackServiceStub,
                      request_type=feedback_service_pb2.WatchChangesRequest, resource_types=(COMPLAINT_TYPE,)),
        db=db, cursors=tables.feed_cursor, apply=_applier(apply_complaint, reevaluate),
        token_source=ServiceToken(settings, subject=SUBJECT), deadline_seconds=deadline_seconds,
        tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        on_expired=lambda: _expired(FEEDBACK_FEED))


def follow_risk(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                max_backoff_seconds: float, reevaluate: Reevaluate) -> PeerFeedFollower:
    return PeerFeedFollower(
        feed=PeerFeed(name=RISK_FEED, target=target, stub=risk_service_pb2_grpc.RiskServiceStub,
                      request_type=risk_service_pb2.WatchChangesRequest, resource_types=(CHURN_SCORE_TYPE,)),
        db=db, cursors=tables.feed_cursor, apply=_applier(apply_churn_score, reevaluate),
        token_source=ServiceToken(settings, subject=SUBJECT), deadline_seconds=deadline_seconds,
        tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        on_expired=lambda: _expired(RISK_FEED))
