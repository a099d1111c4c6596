"""Campaign learns each customer's relationship manager from profile's change feed (both services
in process, each on its own database): the manager then works care tasks and reads the contact
history of that customer; another manager may not, and a reassignment in profile moves the book.
The same follower (one stream, one cursor) brings the customer's holdings to renewal tracking,
whose by-manager view follows the books too."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import date_pb2, money_pb2

from crm.campaign.v1 import campaign_service_pb2 as cpb
from crm.campaign.v1 import campaign_service_pb2_grpc, care_pb2
from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.profile.v1 import holding_pb2 as h
from crm_campaign.app import SPEC as CAMPAIGN
from crm_profile.app import SPEC as PROFILE
from crmkit import app
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, bearer, eventually, migrated_database, running_service
from crmkit.values import timestamp

pytestmark = pytest.mark.slow

ADMIN = bearer(Role.ADMIN, subject="admin-1")
SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="visit")


def rm(subject: str) -> Any:
    return bearer(Role.RELATIONSHIP_MANAGER, subject=subject)


def profile_secrets() -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return {"encryption_keys": f"k1:{key}", "active_key_id": "k1",
            "blind_index_key": base64.b64encode(os.urandom(32)).decode()}


async def test_the_book_follows_profile_and_guards_care_tasks_and_contact_history(database_factory: Any) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    campaign_url = await migrated_database(database_factory, CAMPAIGN)
    profile_server, profile_runtime = await app.start(PROFILE, PROFILE.settings_type(
        env="test", jwt_secret=TEST_JWT_SECRET, database_url=profile_url, port=0, host="127.0.0.1",
        shutdown_grace_seconds=1.0, **profile_secrets()))
    target = f"127.0.0.1:{profile_server.bound_port}"
    try:
        async with (running_service(CAMPAIGN, database_url=campaign_url, profile_target=target,
                                    feed_max_backoff_seconds=0.3, dispatcher_enabled=False, segment_target="",
                                    feedback_target="", risk_target="") as (channel, runtime),
                    grpc.aio.insecure_channel(target) as profile_channel):
            campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            profile = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)
            customer_id = f"B{uuid.uuid4().hex[:10].upper()}"
            customer = f"customers/{customer_id}"
            await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(customer_id=customer_id, full_name="Wang Fang", branch_id="br-1",
                                               customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
                                               relationship_manager_id="rm-owner"),
                request_id=str(uuid.uuid4())), metadata=ADMIN)

            def task(assignee: str) -> cpb.CreateCareTaskRequest:
                return cpb.CreateCareTaskRequest(care_task=care_pb2.CareTask(
                    customer=customer, kind=care_pb2.CARE_TASK_KIND_BIRTHDAY_GREETING, title="Birthday greeting",
                    assignee=assignee, due_time=timestamp(datetime.now(UTC) + timedelta(days=2))))

            async def try_create(assignee: str) -> Any:
                try:
                    return (await campaigns.CreateCareTask(task(assignee), metadata=rm(assignee))).care_task
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
                    return None

            opened, matures = (datetime.now(UTC).date() + timedelta(days=d) for d in (-340, 25))
            await profile.CreateHolding(h.CreateHoldingRequest(parent=customer, holding=h.Holding(
                holding_id="TD-1", product_code="TD-1Y-CNY", product_type=h.PRODUCT_TYPE_TERM_DEPOSIT, currency="CNY",
                balance=money_pb2.Money(currency_code="CNY", units=80_000), status=h.HOLDING_STATUS_ACTIVE,
                open_date=date_pb2.Date(year=opened.year, month=opened.month, day=opened.day),
                maturity_date=date_pb2.Date(year=matures.year, month=matures.month, day=matures.day),
                source_system="core-banking"), audit=audit_pb2.AuditContext(
                    purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="book test")), metadata=ADMIN)

            async def renewals_of(manager: str) -> list[str]:
                listed = await campaigns.ListRenewals(cpb.ListRenewalsRequest(customer=customer), metadata=rm(manager))
                return [r.relationship_manager_id for r in listed.renewals]

            created = await eventually(lambda: try_create("rm-owner"), seconds=30,
                                       what="the customer in rm-owner's book in campaign")
            assert await eventually(lambda: renewals_of("rm-owner"), seconds=30,
                                    what="the maturing deposit in rm-owner's renewals") == ["rm-owner"]
            assert created.assignee == "rm-owner"
            history = await campaigns.ListContactHistory(cpb.ListContactHistoryRequest(
                customer=customer, audit=SERVICE), metadata=rm("rm-owner"))
            assert list(history.entries) == [], "known, in the book, never contacted"
            assert await try_create("rm-other") is None
            with pytest.raises(grpc.aio.AioRpcError) as outside:
                await campaigns.ListContactHistory(cpb.ListContactHistoryRequest(customer=customer, audit=SERVICE),
                                                   metadata=rm("rm-other"))
            assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED

            await profile.UpdateCustomer(profile_service_pb2.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=customer, relationship_manager_id="rm-new"),
                update_mask=field_mask_pb2.FieldMask(paths=["relationship_manager_id"]),
                audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT,
                                             justification="book reassignment")), metadata=ADMIN)
            moved = await eventually(lambda: try_create("rm-new"), seconds=30, what="the customer in rm-new's book")
            assert moved.assignee == "rm-new"
            assert await try_create("rm-owner") is None
            assert (await renewals_of("rm-new"), await renewals_of("rm-owner")) == (["rm-new"], [])
            details = await runtime.collect_health_details()
            assert details["profile-customers_feed_connected"] is True
            assert not any(key.startswith("profile-renewals") for key in details), "one follower, not two"
    finally:
        await app.stop(profile_server, profile_runtime)
