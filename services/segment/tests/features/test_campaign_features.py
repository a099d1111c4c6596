"""Contact and response features from campaign's feed (features.peer_features): dispatches and
offer responses applied once in feed order, read by rules (SQL and the real-time closures alike),
and a real gRPC peer serving campaign's WatchChanges from the kit's change feed on PostgreSQL
moving a customer into and out of a real-time segment."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.campaign.v1 import audience_pb2, campaign_service_pb2, campaign_service_pb2_grpc, engagement_pb2
from crm.common.v1 import change_event_pb2 as E
from crm.common.v1 import operation_pb2
from crm.segment.v1 import segment_pb2, segment_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment import cel
from crm_segment.app import SPEC
from crm_segment.features import peer_features
from crm_segment.features.tables import customer_feature, feature_campaign_touch
from crm_segment.membership.tables import segment_member
from crm_segment.realtime import repository as realtime_repository
from crm_segment.segments import rules as segment_rules
from crmkit.auth import Role
from crmkit.db import Database, metadata
from crmkit.outbox import ChangeFeed, ChangeType, Outbox, outbox_tables
from crmkit.peer_payloads import DISPATCH_TYPE, OFFER_RESPONSE_TYPE
from crmkit.testing import DatabaseFactory, bearer, eventually, migrated_database, running_service

from .test_peer_features import event, seed_customer

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
NOW = datetime.now(UTC)
SENT, QUEUED = audience_pb2.DISPATCH_STATE_SENT, audience_pb2.DISPATCH_STATE_QUEUED
CLICKED, DECLINED, SHOWN = (engagement_pb2.RESPONSE_TYPE_CLICKED, engagement_pb2.RESPONSE_TYPE_DECLINED,
                            engagement_pb2.RESPONSE_TYPE_SHOWN)
FEATURES = ("campaign_contacts_30d", "days_since_last_contact", "campaign_responses_90d", "last_response_positive")


def ts(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def dispatch(customer: str, state: int, sent: datetime | None = None, dispatch_id: str = "d1"
             ) -> audience_pb2.Dispatch:
    message = audience_pb2.Dispatch(name=f"campaigns/c-{customer}/dispatches/{dispatch_id}", dispatch_id=dispatch_id,
                                    customer=f"customers/{customer}", offer="campaigns/c1/offers/o1", state=state)
    if sent is not None:
        message.send_time.CopyFrom(ts(sent))
    return message


def response(customer: str, type_: int, at: datetime, response_id: str = "r1") -> engagement_pb2.OfferResponse:
    return engagement_pb2.OfferResponse(name=f"campaigns/c-{customer}/responses/{response_id}",
                                        customer=f"customers/{customer}", offer="campaigns/c1/offers/o1",
                                        type=type_, response_time=ts(at))


def campaign_event(payload: Message, seq: int) -> E.ChangeEvent:
    resource_type = DISPATCH_TYPE if isinstance(payload, audience_pb2.Dispatch) else OFFER_RESPONSE_TYPE
    return event(resource_type, payload.name, E.CHANGE_TYPE_UPDATED, payload, seq)  # type: ignore[attr-defined]


async def row_of(runtime: Any, customer: str) -> dict[str, Any]:
    """Every catalogue variable of the customer, as the real-time closures read them."""
    async with runtime.db.unit_of_work(read_only=True) as uow:
        values = await realtime_repository.features_in(uow, customer)
    assert values is not None
    return dict(values)


async def features_of(runtime: Any, customer: str) -> dict[str, Any]:
    values = await row_of(runtime, customer)
    return {name: values[name] for name in FEATURES}


async def count(segments: Any, rule: str) -> int:
    return (await segments.PreviewSegment(pb.PreviewSegmentRequest(rule=rule), metadata=ANALYST)).count


async def test_dispatches_and_responses_apply_once_in_feed_order_and_sql_and_closures_agree(
        segment_service: Any, segments: Any) -> None:
    branch = f"B-camp-{uuid.uuid4().hex[:6]}"
    customer = await seed_customer(segment_service, branch)
    _, runtime = segment_service
    apply = peer_features.apply_campaign_touch
    assert await features_of(runtime, customer) == {
        "campaign_contacts_30d": 0, "days_since_last_contact": None, "campaign_responses_90d": 0,
        "last_response_positive": None}
    async with runtime.db.unit_of_work() as uow:
        # Queued: not a contact yet.
        assert await apply(uow, campaign_event(dispatch(customer, QUEUED), 10)) == customer
        assert await apply(uow, campaign_event(dispatch(customer, SENT, NOW - timedelta(days=3)), 11)) == customer
        # A replay of the queued state (older position) cannot undo the send.
        assert await apply(uow, campaign_event(dispatch(customer, QUEUED), 10)) is None
        assert await apply(uow, campaign_event(dispatch(customer, SENT, NOW - timedelta(days=3)), 11)) is None
        # Sent 40 days ago: a contact, outside the 30-day window.
        assert await apply(uow, campaign_event(
            dispatch(customer, SENT, NOW - timedelta(days=40), dispatch_id="d0"), 12)) == customer
        assert await apply(uow, campaign_event(response(customer, SHOWN, NOW - timedelta(days=1), "r0"), 13)) \
            == customer
        assert await apply(uow, campaign_event(response(customer, DECLINED, NOW - timedelta(days=5), "r1"), 14)) \
            == customer
        assert await apply(uow, campaign_event(response(customer, CLICKED, NOW - timedelta(days=2), "r2"), 15)) \
            == customer
        assert await apply(uow, campaign_event(response(customer, CLICKED, NOW - timedelta(days=2), "r2"), 15)) is None
        # A dispatch of no customer records nothing.
        assert await apply(uow, campaign_event(audience_pb2.Dispatch(name="campaigns/c1/dispatches/x", state=SENT),
                                               16)) is None

    values = await features_of(runtime, customer)
    # d1 (3 days) and the offer shown (1 day) are the contacts of the last 30 days; d0 is older.
    assert values == {"campaign_contacts_30d": 2, "days_since_last_contact": 1, "campaign_responses_90d": 2,
                      "last_response_positive": True}
    at = f'branch_id == "{branch}"'
    rules = [f"{at} && campaign_contacts_30d >= 2", f"{at} && days_since_last_contact < 2",
             f"{at} && campaign_responses_90d == 2 && last_response_positive",
             f"{at} && campaign_contacts_30d < 2", f"{at} && !has(days_since_last_contact)",
             f"{at} && campaign_contacts_30d <= 1 && last_response_positive"]
    row = await row_of(runtime, customer)
    for rule in rules:
        closure = cel.to_python(cel.check(rule, segment_rules.CEL_CATALOGUE))
        assert closure(row) == bool(await count(segments, rule)), rule
    assert [bool(await count(segments, rule)) for rule in rules] == [True, True, True, False, False, False]
    async with runtime.db.unit_of_work(read_only=True) as uow:
        assert await uow.scalar(sa.select(sa.func.count()).select_from(feature_campaign_touch).where(
            feature_campaign_touch.c.customer_id == customer)) == 5  # d0, d1, r0, r1, r2


kit = metadata()
events, state = outbox_tables(kit)


class Campaign(campaign_service_pb2_grpc.CampaignServiceServicer):
    """Campaign's WatchChanges served from the kit's change feed (the outbox campaign itself uses)."""

    def __init__(self, db: Database) -> None:
        self.feed = ChangeFeed(db, events, state, poll_seconds=0.02)

    async def WatchChanges(self, request: campaign_service_pb2.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[campaign_service_pb2.WatchChangesResponse]:
        async for batch in self.feed.stream(after_cursor=request.after_cursor,
                                            resource_types=list(request.resource_types)):
            yield campaign_service_pb2.WatchChangesResponse(events=batch)


@contextlib.asynccontextmanager
async def campaign_peer(db: Database) -> AsyncIterator[str]:
    server = grpc.aio.server()
    campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(Campaign(db), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def publish(db: Database, payload: Message) -> None:
    async with db.unit_of_work() as uow:
        await Outbox(events).append(uow, resource_name=payload.name,  # type: ignore[attr-defined]
                                    change_type=ChangeType.CHANGE_TYPE_UPDATED, payload=payload, actor="campaign")


async def test_campaign_feed_moves_a_customer_into_and_out_of_a_real_time_segment(
        database_factory: DatabaseFactory) -> None:
    peer_db = await Database.open(await database_factory.create("campaign_peer"))
    async with peer_db.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    segment_url = await migrated_database(database_factory, SPEC)
    try:
        async with (campaign_peer(peer_db) as target,
                    running_service(SPEC, database_url=segment_url, campaign_target=target, profile_target="",
                                    feedback_target="", risk_target="", feed_poll_seconds=0.05,
                                    operation_poll_seconds=0.05, profile_feed_max_backoff_seconds=0.3,
                                    classification_check_seconds=3600) as (channel, runtime)):
            segments = segment_service_pb2_grpc.SegmentServiceStub(channel)
            branch, customer = f"B-cf-{uuid.uuid4().hex[:6]}", f"C{uuid.uuid4().hex[:10].upper()}"
            async with runtime.db.engine.begin() as connection:
                await connection.execute(sa.insert(customer_feature).values(
                    customer_id=customer, branch_id=branch, features_as_of=NOW, aum=1000))
            # Responders not contacted lately: a fatigue-aware follow-up audience.
            live = (await segments.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
                segment_id=f"responders-{branch.lower()}", display_name=f"Responders {branch}",
                evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME,
                rule=f'branch_id == "{branch}" && last_response_positive && campaign_contacts_30d < 2')),
                metadata=ANALYST)).segment
            started = await segments.MaterialiseSegment(pb.MaterialiseSegmentRequest(name=live.name),
                                                        metadata=ANALYST)
            await eventually(lambda: segments.GetOperation(pb.GetOperationRequest(name=started.operation.name),
                                                           metadata=ANALYST),
                             until=lambda r: r.operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED,
                             what="the empty segment materialised")

            async def members() -> list[str]:
                async with runtime.db.unit_of_work(read_only=True) as uow:
                    return list((await uow.execute(sa.select(segment_member.c.customer_id).where(
                        segment_member.c.segment_id == live.segment_id))).scalars())

            await publish(peer_db, dispatch(customer, SENT, NOW - timedelta(days=2), "d1"))
            await publish(peer_db, response(customer, CLICKED, NOW - timedelta(days=1), "r1"))
            await eventually(members, until=lambda m: m == [customer], seconds=30,
                             what="a click after one contact moved the customer in")
            await publish(peer_db, dispatch(customer, SENT, NOW, "d2"))
            await eventually(members, until=lambda m: m == [], seconds=30,
                             what="a second contact in 30 days moved the customer out")
            assert (await features_of(runtime, customer))["campaign_contacts_30d"] == 2
            details = await runtime.collect_health_details()
            assert details["campaign_feed_connected"] is True and details["campaign_feed_as_of"]
    finally:
        await peer_db.dispose()
