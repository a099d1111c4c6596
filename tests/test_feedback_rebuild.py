"""Feedback rebuilds its customer read model from profile's ListCustomers when profile's retention
purged events the model never applied (CURSOR_EXPIRED): real profile and feedback servers in this
process, on their own databases. A customer created and a manager changed while feedback was away
are in the model afterwards, complaints for unknown customers are refused again, and the model
follows profile's feed again."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from crm.common.v1 import audit_pb2
from crm.feedback.v1 import channel_pb2, complaint_pb2, feedback_service_pb2_grpc
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_feedback.app import SPEC as FEEDBACK
from crm_profile import tables as profile_tables
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.outbox import ChangeFeed
from crmkit.testing import bearer, error_info, eventually, migrated_database, running_service, serving

pytestmark = pytest.mark.slow

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="rebuild test")
ADMIN = bearer(Role.ADMIN, subject="steward-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
PROFILE_KEYS = {"encryption_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(), "active_key_id": "k1",
                "blind_index_key": base64.b64encode(os.urandom(32)).decode(), "feed_poll_seconds": 0.05}


async def test_an_expired_cursor_rebuilds_the_customer_model_from_profile(database_factory: Any) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    feedback_url = await migrated_database(database_factory, FEEDBACK)
    feedback_db = await Database.open(feedback_url, pool_size=1)
    try:
        await _scenario(profile_url, feedback_url, feedback_db, uuid.uuid4().hex[:6].upper())
    finally:
        await feedback_db.dispose()


async def _scenario(profile_url: str, feedback_url: str, feedback_db: Database, run: str) -> None:

    async def model() -> dict[str, str]:
        async with feedback_db.engine.connect() as connection:
            rows = await connection.execute(sa.text(
                "SELECT customer_id, relationship_manager_id FROM known_customer WHERE state = 1"))
            return {r.customer_id: r.relationship_manager_id for r in rows}

    async with serving(PROFILE, database_url=profile_url, **PROFILE_KEYS) as (server, profile_runtime), \
            grpc.aio.insecure_channel(target := f"127.0.0.1:{server.bound_port}") as profile_channel:
        profile = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)

        async def create(i: int) -> str:
            created = await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(customer_id=f"R{run}{i}", full_name="Wang Fang", branch_id="br-1",
                                               customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
                                               relationship_manager_id="rm-1"),
                request_id=str(uuid.uuid4())), metadata=ADMIN)
            return created.customer.customer_id

        first = [await create(i) for i in range(3)]
        overrides = {"profile_target": target, "segment_target": "", "sla_clock_seconds": 0,
                     "peer_feed_max_backoff_seconds": 0.2}
        async with running_service(FEEDBACK, database_url=feedback_url, **overrides):
            await eventually(model, until=lambda rows: set(first) <= set(rows), what="the first customers")

        # While feedback is away: a new customer, another manager for the first...
        late = await create(9)
        await profile.UpdateCustomer(profile_service_pb2.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=f"customers/{first[0]}", relationship_manager_id="rm-2"),
            update_mask=field_mask_pb2.FieldMask(paths=["relationship_manager_id"]), audit=AUDIT), metadata=ADMIN)
        # ...and profile's retention purges every event so far: feedback's cursor is now expired.
        purged = await ChangeFeed(profile_runtime.db, profile_tables.outbox_event,
                                  profile_tables.outbox_state).purge(retention=timedelta(0))
        assert purged > 0

        async with running_service(FEEDBACK, database_url=feedback_url, **overrides) as (channel, runtime):
            feedback = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            rows = await eventually(model, until=lambda rows: late in rows and rows[first[0]] == "rm-2",
                                    what="the rebuilt model")
            assert set(rows) == {*first, late}

            async def health() -> dict[str, object]:
                return dict(await runtime.collect_health_details())
            details = await eventually(health, until=lambda d: d.get("customers_model_rebuilds") == 1
                                       and d.get("customers_feed_expired") is False,
                                       what="the rebuild done and the cursor no longer expired")
            assert details["customers_model_rebuilding"] is False

            # Following resumed: a customer created now reaches the model through the feed (and with
            # it the model is current again: profile's feed delivers).
            newest = await create(10)
            await eventually(model, until=lambda rows: newest in rows, what="a customer after the rebuild")

            # Trusted again: the late customer's complaint is verified, an unknown customer's refused.
            filed = (await feedback.FileComplaint(pb.FileComplaintRequest(
                complaint=_complaint(f"customers/{late}"), request_id=str(uuid.uuid4())), metadata=APP)).complaint
            assert filed.customer == f"customers/{late}"

            async def refused() -> str:
                try:
                    await feedback.FileComplaint(pb.FileComplaintRequest(
                        complaint=_complaint("customers/NOSUCH999"), request_id=str(uuid.uuid4())), metadata=APP)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                    return error_info(error, domain="feedback.crm").reason
                return "accepted"
            assert await refused() == "CUSTOMER_NOT_FOUND"


def _complaint(customer: str) -> complaint_pb2.Complaint:
    return complaint_pb2.Complaint(customer=customer, channel=channel_pb2.CHANNEL_BRANCH,
                                   description="My card was blocked without notice.")
