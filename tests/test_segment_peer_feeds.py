"""Segment's complaint features follow feedback's real change feed (both services in process,
each on its own database): a complaint filed in feedback is counted by a segment rule and moves
the customer into a real-time segment; the follower reports the feed in health. (Applying the
events one by one is tested in segment's own suite, features/test_peer_features.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa

from crm.common.v1 import operation_pb2
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2
from crm.feedback.v1 import feedback_service_pb2_grpc as feedback_grpc
from crm.segment.v1 import segment_pb2, segment_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2 as pb
from crm_feedback.app import SPEC as FEEDBACK
from crm_segment.app import SPEC as SEGMENT
from crm_segment.features.tables import customer_feature, feature_complaint
from crm_segment.membership.tables import segment_member
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, migrated_database, running_service, serving

pytestmark = pytest.mark.slow

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")


async def test_a_complaint_filed_in_feedback_reaches_a_segment_rule_and_a_real_time_segment(
        database_factory) -> None:
    feedback_url = await migrated_database(database_factory, FEEDBACK)
    segment_url = await migrated_database(database_factory, SEGMENT)
    async with serving(FEEDBACK, database_url=feedback_url) as (feedback_server, _):
        feedback_target = f"127.0.0.1:{feedback_server.bound_port}"
        async with (running_service(SEGMENT, database_url=segment_url, feedback_target=feedback_target,
                                    profile_target="", risk_target="", campaign_target="", feed_poll_seconds=0.05,
                                    operation_poll_seconds=0.05, profile_feed_max_backoff_seconds=0.3,
                                    classification_check_seconds=3600) as (segment_channel, runtime),
                    grpc.aio.insecure_channel(feedback_target) as feedback_channel):
            segments = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
            branch, customer = f"B-feed-{uuid.uuid4().hex[:6]}", f"C{uuid.uuid4().hex[:10].upper()}"
            # The customer as profile's feed would have delivered it (profile is not running here).
            async with runtime.db.engine.begin() as connection:
                await connection.execute(sa.insert(customer_feature).values(
                    customer_id=customer, branch_id=branch, features_as_of=datetime.now(UTC), aum=1000))
            live = (await segments.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
                segment_id=f"complained-{branch.lower()}", display_name=f"Complained {branch}",
                evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME,
                rule=f'open_complaint_count >= 1 && branch_id == "{branch}"')), metadata=ANALYST)).segment
            started = await segments.MaterialiseSegment(pb.MaterialiseSegmentRequest(name=live.name),
                                                        metadata=ANALYST)
            await eventually(lambda: segments.GetOperation(pb.GetOperationRequest(name=started.operation.name),
                                                           metadata=ANALYST),
                             until=lambda r: r.operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED,
                             what="the empty segment materialised")

            filed = (await feedback_grpc.FeedbackServiceStub(feedback_channel).FileComplaint(
                feedback_service_pb2.FileComplaintRequest(complaint=complaint_pb2.Complaint(
                    customer=f"customers/{customer}", channel=channel_pb2.CHANNEL_MOBILE_APP,
                    category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES, subcategory="annual_fee",
                    priority=complaint_pb2.COMPLAINT_PRIORITY_HIGH, description="Charged twice.",
                    branch_id="BJ-001"), request_id=str(uuid.uuid4())), metadata=APP)).complaint

            async def counted() -> int:
                return (await segments.PreviewSegment(pb.PreviewSegmentRequest(
                    rule=f'branch_id == "{branch}" && open_complaint_count >= 1'), metadata=ANALYST)).count

            await eventually(counted, until=lambda n: n == 1, seconds=30, what="the complaint counted by a rule")
            async with runtime.db.unit_of_work(read_only=True) as uow:
                # The complaint moved the customer into the real-time segment in the same transaction.
                assert list((await uow.execute(sa.select(segment_member.c.customer_id).where(
                    segment_member.c.segment_id == live.segment_id))).scalars()) == [customer]
                assert await uow.scalar(sa.select(feature_complaint.c.customer_id).where(
                    feature_complaint.c.complaint_id == filed.complaint_id)) == customer
            details = await runtime.collect_health_details()
            assert details["feedback_feed_connected"] is True
