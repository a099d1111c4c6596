"""Features from feedback's, risk's and campaign's change feeds (`crmkit.peer_feed`), beside profile's.

- **Feedback**: each complaint (`feature_complaint`): its customer, when it was filed and whether
  the bank still owes an answer (`crmkit.peer_payloads`, the meaning campaign uses too). The
  catalogue counts them per customer (`open_complaint_count`, `complaint_count_90d`).
- **Risk**: each customer's current churn score as risk publishes it (`feature_churn_score`):
  `churn_probability`, `churn_risk_band`.
- **Campaign**: each dispatch and offer response (`feature_campaign_touch`): when it contacted the
  customer (a dispatch once the provider accepted it, an offer shown on an inbound channel), when
  the customer responded otherwise and whether with interest. The catalogue derives contact
  fatigue (`campaign_contacts_30d`, `days_since_last_contact`) and responsiveness
  (`campaign_responses_90d`, `last_response_positive`). Conversions are not followed.

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

from crm.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc, engagement_pb2
from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import feedback_service_pb2, feedback_service_pb2_grpc
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc, scoring_pb2
from crm_segment import tables
from crm_segment.features import rules
from crm_segment.features.tables import Position, feature_campaign_touch, feature_churn_score, feature_complaint
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.peer_feed import PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.peer_payloads import (
    CHURN_SCORE_TYPE,
    COMPLAINT_TYPE,
    CONTACTED_DISPATCH_STATES,
    DISPATCH_TYPE,
    OFFER_RESPONSE_TYPE,
    POSITIVE_RESPONSE_TYPES,
    complaint_of,
    dispatch_of,
    is_open,
    offer_response_of,
)
from crmkit.settings import ServiceSettings

log = get_logger("crm.segment.features")

FEEDBACK_FEED = "feedback"
RISK_FEED = "risk"
CAMPAIGN_FEED = "campaign"
SUBJECT = "service:segment"
DELETED = change_event_pb2.CHANGE_TYPE_DELETED
fc = feature_complaint.c
cs = feature_churn_score.c
ct = feature_campaign_touch.c

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


async def apply_campaign_touch(connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> str | None:
    """Record a dispatch (at each state change) or an offer response; the customer, or None for
    a replay, an older state or a resource of no customer."""
    contacted = responded = positive = None
    if (dispatch := dispatch_of(event)) is not None:
        customer = dispatch.customer
        if dispatch.state in CONTACTED_DISPATCH_STATES:
            sent = dispatch.send_time if dispatch.HasField("send_time") else event.occurred_at
            contacted = sent.ToDatetime(tzinfo=UTC)
    elif (response := offer_response_of(event)) is not None:
        customer = response.customer
        at = (response.response_time if response.HasField("response_time") else event.occurred_at
              ).ToDatetime(tzinfo=UTC)
        if response.type == engagement_pb2.RESPONSE_TYPE_SHOWN:
            contacted = at
        else:
            responded, positive = at, response.type in POSITIVE_RESPONSE_TYPES
    else:
        return None
    if not customer.startswith("customers/") or not event.resource_name:
        return None
    insert = pg.insert(feature_campaign_touch).values(
        resource_name=event.resource_name, customer_id=customer.removeprefix("customers/"),
        position=rules.position_key(event.cursor), contacted_at=contacted, responded_at=responded, positive=positive)
    written = await connection.execute(insert.on_conflict_do_update(
        index_elements=[ct.resource_name],
        set_={k: insert.excluded[k] for k in ("position", "contacted_at", "responded_at", "positive")},
        where=ct.position < insert.excluded.position).returning(ct.customer_id))
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


def follow_campaign(*, db: Database, settings: ServiceSettings, target: str, deadline_seconds: float,
                    max_backoff_seconds: float, reevaluate: Reevaluate) -> PeerFeedFollower:
    return PeerFeedFollower(
        feed=PeerFeed(name=CAMPAIGN_FEED, target=target, stub=campaign_service_pb2_grpc.CampaignServiceStub,
                      request_type=campaign_service_pb2.WatchChangesRequest,
                      resource_types=(DISPATCH_TYPE, OFFER_RESPONSE_TYPE)),
        db=db, cursors=tables.feed_cursor, apply=_applier(apply_campaign_touch, reevaluate),
        token_source=ServiceToken(settings, subject=SUBJECT), deadline_seconds=deadline_seconds,
        tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        on_expired=lambda: _expired(CAMPAIGN_FEED))
