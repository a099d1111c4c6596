"""Tier deadlines: feedback follows segment's change feed (a stand-in segment serving the contract's
WatchChanges, since segment does not publish classifications yet) into its value-tier read models,
and a complaint's respond deadline is the stricter of its policy's and its customer's tier's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm.feedback.v1 import feedback_service_pb2_grpc
from crm.segment.v1 import classification_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_feedback.app import SPEC
from crm_feedback.sla import rules as sla_rules
from crmkit.auth import Role
from crmkit.testing import DatabaseFactory, bearer, eventually, migrated_database, running_service

from ..conftest import FEEDBACK_SETTINGS, make_complaint

RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-tier")
CLASSIFICATION = "crm.segment.v1.CustomerClassification"


def event(n: int, resource_type: str, name: str, payload: Any) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(payload)
    message = change_event_pb2.ChangeEvent(cursor=f"1.{n}", resource_type=resource_type, resource_name=name,
                                           change_type=change_event_pb2.CHANGE_TYPE_UPDATED, payload=packed)
    message.occurred_at.FromDatetime(datetime.now(UTC))
    return message


class StandInSegment(segment_service_pb2_grpc.SegmentServiceServicer):
    """Serves the given events once, then stays open as an idle feed does."""

    def __init__(self, events: list[change_event_pb2.ChangeEvent]) -> None:
        self.events = events

    async def WatchChanges(self, request: Any, context: Any) -> AsyncIterator[Any]:
        after = int(request.after_cursor.split(".")[1]) if request.after_cursor else 0
        pending = [e for e in self.events if int(e.cursor.split(".")[1]) > after
                   and (not request.resource_types or e.resource_type in request.resource_types)]
        if pending:
            yield segment_service_pb2.WatchChangesResponse(events=pending)
        await asyncio.Event().wait()


@pytest.fixture
async def segment_feed() -> AsyncIterator[tuple[int, list[str]]]:
    vip, mass = f"V{uuid.uuid4().hex[:8].upper()}", f"M{uuid.uuid4().hex[:8].upper()}"
    vip_tier = classification_pb2.ValueTierDefinition(
        name="valueTiers/vip", tier=classification_pb2.VALUE_TIER_VIP,
        service_standard=classification_pb2.ServiceStandard(max_response_time=Duration(seconds=4 * 3600)))
    mass_tier = classification_pb2.ValueTierDefinition(name="valueTiers/mass", tier=classification_pb2.VALUE_TIER_MASS)
    events = [
        event(1, "crm.segment.v1.ValueTierDefinition", "valueTiers/vip", vip_tier),
        event(2, "crm.segment.v1.ValueTierDefinition", "valueTiers/mass", mass_tier),
        event(3, CLASSIFICATION, f"customers/{vip}", classification_pb2.CustomerClassification(
            customer=f"customers/{vip}", value_tier=classification_pb2.VALUE_TIER_VIP)),
        event(4, CLASSIFICATION, f"customers/{mass}", classification_pb2.CustomerClassification(
            customer=f"customers/{mass}", value_tier=classification_pb2.VALUE_TIER_MASS)),
    ]
    server = grpc.aio.server()
    segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(StandInSegment(events), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, [vip, mass]
    finally:
        await server.stop(0)


async def test_the_stricter_of_policy_and_tier_respond_deadlines_wins(database_factory: DatabaseFactory,
                                                                      segment_feed: tuple[int, list[str]]) -> None:
    port, (vip, mass) = segment_feed
    url = await migrated_database(database_factory, SPEC)
    settings = {**FEEDBACK_SETTINGS, "segment_target": f"127.0.0.1:{port}", "peer_feed_max_backoff_seconds": 0.2}
    async with running_service(SPEC, database_url=url, **settings) as (channel, runtime):
        stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)

        async def tiers_known() -> bool:
            details = await runtime.collect_health_details()
            return bool(details.get("segment_feed_as_of"))
        await eventually(tiers_known, what="segment's tier events applied")

        async def file(customer_id: str) -> Any:
            return (await stub.FileComplaint(pb.FileComplaintRequest(
                complaint=make_complaint(customer=f"customers/{customer_id}"), request_id=str(uuid.uuid4())),
                metadata=RM)).complaint

        def respond_hours(complaint: Any) -> float:
            return (complaint.sla.respond_by.ToDatetime(UTC) - complaint.receive_time.ToDatetime(UTC)
                    ).total_seconds() / 3600

        vip_complaint, mass_complaint, unknown = await file(vip), await file(mass), await file("NOTIER1")
        assert respond_hours(vip_complaint) == 4, "the VIP tier promises 4 hours: stricter than 48"
        assert respond_hours(mass_complaint) == 48, "a tier without a response time leaves the policy's"
        assert respond_hours(unknown) == 48, "a customer without a known tier: the policy alone"
        assert respond_hours(vip_complaint) < (vip_complaint.sla.resolve_by.ToDatetime(UTC)
                                               - vip_complaint.receive_time.ToDatetime(UTC)).total_seconds() / 3600


def test_a_tier_deadline_only_ever_tightens_and_brings_its_escalation_point() -> None:
    received = datetime(2026, 12, 7, 9, tzinfo=UTC)
    policy = sla_rules.SlaPolicy("p", timedelta(hours=8), timedelta(hours=48), pre_breach_escalation_share=0.5)
    base = sla_rules.deadlines(policy, received_at=received)
    tight = sla_rules.with_tier(base, policy, received_at=received, tier_respond=timedelta(hours=2))
    assert (tight.respond_by, tight.respond_escalate_at) == (received + timedelta(hours=2),
                                                             received + timedelta(hours=1))
    assert tight.resolve_by == base.resolve_by
    assert sla_rules.with_tier(base, policy, received_at=received, tier_respond=timedelta(hours=24)) == base
    assert sla_rules.with_tier(base, policy, received_at=received, tier_respond=None) == base
