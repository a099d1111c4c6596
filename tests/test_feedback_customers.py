"""Feedback refuses a complaint for a customer profile does not have, from its read model of
profile's change feed; while that model cannot be trusted (nothing received yet, profile down)
complaints are accepted unverified. Both services in process, each on its own database."""

from __future__ import annotations

import base64
import os
import uuid
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
from crm_profile.app import SPEC as PROFILE
from crmkit import app
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, bearer, error_info, eventually, migrated_database, running_service

ADMIN = bearer(Role.ADMIN, subject="admin-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-1")
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="CASE-1")


def profile_secrets() -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return {"encryption_keys": f"k1:{key}", "active_key_id": "k1",
            "blind_index_key": base64.b64encode(os.urandom(32)).decode()}


def complaint(customer: str) -> complaint_pb2.Complaint:
    return complaint_pb2.Complaint(customer=customer, channel=channel_pb2.CHANNEL_BRANCH,
                                   description="My card was blocked without notice.")


async def file(stub: Any, customer: str) -> complaint_pb2.Complaint:
    return (await stub.FileComplaint(pb.FileComplaintRequest(complaint=complaint(customer),
                                                             request_id=str(uuid.uuid4())), metadata=RM)).complaint


async def test_complaints_for_unknown_customers_are_refused_once_the_model_follows_profile(
        database_factory: Any) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    feedback_url = await migrated_database(database_factory, FEEDBACK)
    profile_server, profile_runtime = await app.start(PROFILE, PROFILE.settings_type(
        env="test", jwt_secret=TEST_JWT_SECRET, database_url=profile_url, port=0, host="127.0.0.1",
        shutdown_grace_seconds=1.0, **profile_secrets()))
    profile_port = profile_server.bound_port
    profile_stopped = False
    try:
        async with running_service(FEEDBACK, database_url=feedback_url, sla_clock_seconds=0,
                                   profile_target=f"127.0.0.1:{profile_port}",
                                   peer_feed_max_backoff_seconds=0.2) as (channel, feedback_runtime):
            stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            # Nothing received from profile yet: the model cannot say who exists, so it accepts.
            early = await file(stub, "customers/NOSUCH000")
            assert early.customer == "customers/NOSUCH000"

            customer_id = f"F{uuid.uuid4().hex[:10].upper()}"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as profile_channel:
                profile = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)
                await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
                    customer=customer_pb2.Customer(customer_id=customer_id, full_name="Wang Fang", branch_id="br-1",
                                                   customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
                                                   relationship_manager_id="rm-owner"),
                    request_id=str(uuid.uuid4())), metadata=ADMIN)

            async def known() -> int:
                async with feedback_runtime.db.engine.connect() as connection:
                    return int((await connection.execute(sa.text(
                        "SELECT count(*) FROM known_customer WHERE customer_id = :id AND state = 1"),
                        {"id": customer_id})).scalar_one())
            await eventually(known, what="the customer in feedback's read model")

            filed = await file(stub, f"customers/{customer_id}")
            assert filed.status == complaint_pb2.COMPLAINT_STATUS_OPEN
            # The customer's own manager works it (their book), another manager may not.
            owner = (await stub.GetComplaint(pb.GetComplaintRequest(name=filed.name, audit=PURPOSE),
                                             metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-owner"))).complaint
            assert owner.name == filed.name
            listed = (await stub.ListComplaints(pb.ListComplaintsRequest(audit=PURPOSE), metadata=bearer(
                Role.RELATIONSHIP_MANAGER, subject="rm-owner"))).complaints
            assert [c.name for c in listed] == [filed.name]
            with pytest.raises(grpc.aio.AioRpcError) as outside:
                await stub.GetComplaint(pb.GetComplaintRequest(name=filed.name, audit=PURPOSE),
                                        metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
            assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED

            # Profile hands the customer to another manager: the complaint moves to their book.
            async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as profile_channel:
                await profile_service_pb2_grpc.ProfileServiceStub(profile_channel).UpdateCustomer(
                    profile_service_pb2.UpdateCustomerRequest(
                        customer=customer_pb2.Customer(name=f"customers/{customer_id}",
                                                       relationship_manager_id="rm-new"),
                        update_mask=field_mask_pb2.FieldMask(paths=["relationship_manager_id"]),
                        audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT,
                                                     justification="book reassignment")), metadata=ADMIN)

            async def new_manager_sees_it() -> bool:
                try:
                    await stub.GetComplaint(pb.GetComplaintRequest(name=filed.name, audit=PURPOSE),
                                            metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-new"))
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
                    return False
                return True
            await eventually(new_manager_sees_it, what="the complaint in the new manager's book")
            before = await _complaints(feedback_runtime)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await file(stub, "customers/NOSUCH999")
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            info = error_info(refused.value, domain="feedback.crm")
            assert info.reason == "CUSTOMER_NOT_FOUND" and info.metadata["customers_as_of"]
            assert await _complaints(feedback_runtime) == before, "nothing written"

            # Profile goes down: the model is no longer current, complaints are accepted unverified.
            await app.stop(profile_server, profile_runtime)
            profile_stopped = True

            async def accepted() -> bool:
                try:
                    await file(stub, "customers/NOSUCH998")
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                    return False
                return True
            await eventually(accepted, what="an unknown customer accepted while profile is down")
    finally:
        if not profile_stopped:
            await app.stop(profile_server, profile_runtime)


async def _complaints(runtime: Any) -> int:
    async with runtime.db.engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT count(*) FROM complaint"))).scalar_one())
