"""Campaign's open-complaint read model follows feedback's change feed (both services in process,
each on its own database): a complaint filed in feedback reaches campaign's model; withdrawn, it
leaves. (The funnel's OPEN_COMPLAINT reason over this model is tested in campaign's own suite.)"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2
from crm.feedback.v1 import feedback_service_pb2_grpc as feedback_grpc
from crm_campaign.app import SPEC as CAMPAIGN
from crm_campaign.audience.read_models import open_complaint
from crm_feedback.app import SPEC as FEEDBACK
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, migrated_database, running_service, serving

pytestmark = pytest.mark.slow

APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ADMIN = bearer(Role.ADMIN, subject="admin-1")


async def test_a_complaint_filed_in_feedback_reaches_campaign_and_leaves_when_withdrawn(database_factory) -> None:
    feedback_url = await migrated_database(database_factory, FEEDBACK)
    campaign_url = await migrated_database(database_factory, CAMPAIGN)
    async with serving(FEEDBACK, database_url=feedback_url) as (feedback_server, _):
        feedback_target = f"127.0.0.1:{feedback_server.bound_port}"
        async with (running_service(CAMPAIGN, database_url=campaign_url, feedback_target=feedback_target,
                                    feed_max_backoff_seconds=0.3, dispatcher_enabled=False,
                                    segment_target="", profile_target="") as (_, runtime),
                    grpc.aio.insecure_channel(feedback_target) as fb_channel):
            feedback = feedback_grpc.FeedbackServiceStub(fb_channel)
            customer = f"C{uuid.uuid4().hex[:10].upper()}"
            filed = (await feedback.FileComplaint(feedback_service_pb2.FileComplaintRequest(
                complaint=complaint_pb2.Complaint(
                    customer=f"customers/{customer}", channel=channel_pb2.CHANNEL_MOBILE_APP,
                    category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES, subcategory="annual_fee",
                    priority=complaint_pb2.COMPLAINT_PRIORITY_HIGH, description="Charged twice.", branch_id="BJ-001"),
                request_id=str(uuid.uuid4())), metadata=APP)).complaint

            async def complaints_of_customer() -> list[Any]:
                async with runtime.db.unit_of_work(read_only=True) as uow:
                    return list((await uow.execute(sa.select(open_complaint.c.complaint_id).where(
                        open_complaint.c.customer_id == customer))).scalars())

            await eventually(complaints_of_customer, until=lambda ids: ids == [filed.complaint_id],
                             seconds=30, what="the open complaint in campaign's read model")
            await feedback.CloseComplaint(feedback_service_pb2.CloseComplaintRequest(
                name=filed.name, reason=complaint_pb2.CLOSE_REASON_WITHDRAWN, note="customer withdrew"),
                metadata=ADMIN)
            await eventually(complaints_of_customer, until=lambda ids: ids == [], seconds=30,
                             what="the withdrawn complaint gone from campaign's read model")
            details = await runtime.collect_health_details()
            assert details["feedback_feed_connected"] is True
