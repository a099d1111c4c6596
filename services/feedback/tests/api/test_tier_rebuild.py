"""The value-tier read models rebuilt when segment answers CURSOR_EXPIRED: a stand-in segment (the
contract's WatchChanges, ListValueTiers and GetCustomerClassification) refuses feedback's stored
cursor; feedback reads the tier standards and the tier of each customer it knows again, so a tier
change it missed while away sets the respond deadline of the next complaint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crm.feedback.v1 import feedback_service_pb2 as pb
from crm.feedback.v1 import feedback_service_pb2_grpc
from crm.segment.v1 import classification_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_feedback.app import SPEC
from crm_feedback.customers.tables import customer_tier, feed_cursor
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.testing import DatabaseFactory, bearer, eventually, migrated_database, running_service

from ..conftest import FEEDBACK_SETTINGS, make_complaint

RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-tier")
VIP = classification_pb2.ValueTierDefinition(
    name="valueTiers/vip", tier=classification_pb2.VALUE_TIER_VIP,
    service_standard=classification_pb2.ServiceStandard(max_response_time=Duration(seconds=4 * 3600)))
MASS = classification_pb2.ValueTierDefinition(name="valueTiers/mass", tier=classification_pb2.VALUE_TIER_MASS)


class ExpiredSegment(segment_service_pb2_grpc.SegmentServiceServicer):
    """Refuses any stored cursor (its retention purged them); from the start, an idle feed."""

    def __init__(self, tiers: dict[str, int]) -> None:
        self.tiers = tiers
        self.expired_answers = 0

    async def WatchChanges(self, request: Any, context: Any) -> AsyncIterator[Any]:
        if request.after_cursor:
            self.expired_answers += 1
            info = any_pb2.Any()
            info.Pack(error_details_pb2.ErrorInfo(reason="CURSOR_EXPIRED", domain="segment.crm"))
            status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="cursor expired", details=[info])
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "cursor expired",
                                trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),))
        await asyncio.Event().wait()
        yield segment_service_pb2.WatchChangesResponse()  # never reached: makes this a stream

    async def ListValueTiers(self, request: Any, context: Any) -> Any:
        return segment_service_pb2.ListValueTiersResponse(value_tiers=[VIP, MASS])

    async def GetCustomerClassification(self, request: Any, context: Any) -> Any:
        tier = self.tiers.get(request.customer)
        if tier is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not classified")
        return segment_service_pb2.GetCustomerClassificationResponse(
            classification=classification_pb2.CustomerClassification(customer=request.customer, value_tier=tier))


async def test_an_expired_segment_cursor_rebuilds_the_tier_models(database_factory: DatabaseFactory) -> None:
    upgraded, unclassified = f"V{uuid.uuid4().hex[:8].upper()}", f"U{uuid.uuid4().hex[:8].upper()}"
    segment = ExpiredSegment({f"customers/{upgraded}": classification_pb2.VALUE_TIER_VIP})
    server = grpc.aio.server()
    segment_service_pb2_grpc.add_SegmentServiceServicer_to_server(segment, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    url = await migrated_database(database_factory, SPEC)
    # What feedback knew before it went away: both customers MASS, and a cursor segment has since purged.
    db = await Database.open(url, pool_size=1)
    try:
        long_ago = datetime.now(UTC) - timedelta(days=30)
        async with db.unit_of_work() as uow:
            await uow.execute(sa.insert(customer_tier), [
                {"customer_id": c, "value_tier": classification_pb2.VALUE_TIER_MASS, "event_at": long_ago}
                for c in (upgraded, unclassified)])
            await uow.execute(sa.insert(feed_cursor).values(feed="segment", cursor="1.7", event_at=long_ago))

        async def tiers() -> dict[str, int]:
            async with db.engine.connect() as connection:
                return {r.customer_id: r.value_tier for r in await connection.execute(sa.select(customer_tier))}

        settings = {**FEEDBACK_SETTINGS, "segment_target": f"127.0.0.1:{port}", "peer_feed_max_backoff_seconds": 0.2}
        async with running_service(SPEC, database_url=url, **settings) as (channel, runtime):
            async def health() -> dict[str, object]:
                return dict(await runtime.collect_health_details())
            details = await eventually(health, until=lambda d: d.get("segment_model_rebuilds") == 1,
                                       what="the tier models rebuilt")
            assert details["segment_feed_expired"] is False and segment.expired_answers == 1
            assert await tiers() == {upgraded: classification_pb2.VALUE_TIER_VIP,
                                     unclassified: classification_pb2.VALUE_TIER_MASS}, \
                "the missed upgrade is read again; a customer segment has no classification for keeps its tier"

            stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            filed = (await stub.FileComplaint(pb.FileComplaintRequest(
                complaint=make_complaint(customer=f"customers/{upgraded}"), request_id=str(uuid.uuid4())),
                metadata=RM)).complaint
            hours = (filed.sla.respond_by.ToDatetime(UTC) - filed.receive_time.ToDatetime(UTC)).total_seconds() / 3600
            assert hours == 4, "the VIP standard, read from ListValueTiers, sets the respond deadline"
    finally:
        await db.dispose()
        await server.stop(0)
