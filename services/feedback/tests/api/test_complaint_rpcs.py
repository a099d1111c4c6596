"""FeedbackService complaint RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import interval_pb2

from crm.common.v1 import audit_pb2
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations, row_counts
from crmkit.values import timestamp

COMPLAINT_PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="CASE-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
OTHER_RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-008")
ADMIN = bearer(Role.ADMIN, subject="admin-1")
ANALYST = bearer(Role.ANALYST)
AUDITOR = bearer(Role.AUDITOR)
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
MARKETER = bearer(Role.MARKETER)
FEED = bearer(Role.SERVICE, subject="risk")
# What a filing writes: none of it may change when a call is refused.
WRITTEN = ("complaint", "outbox_event", "idempotency_key")


async def file(feedback, complaint, metadata=RM, request_id=None):  # type: ignore[no-untyped-def]
    response = await feedback.FileComplaint(pb.FileComplaintRequest(
        complaint=complaint, request_id=str(uuid.uuid4()) if request_id is None else request_id), metadata=metadata)
    return response.complaint


async def get(feedback, name, metadata=RM):  # type: ignore[no-untyped-def]
    response = await feedback.GetComplaint(pb.GetComplaintRequest(name=name, audit=COMPLAINT_PURPOSE),
                                           metadata=metadata)
    return response.complaint


async def list_all(feedback, metadata=ADMIN, **filters):  # type: ignore[no-untyped-def]
    seen, token = [], ""
    while True:
        page = await feedback.ListComplaints(pb.ListComplaintsRequest(
            page_token=token, audit=COMPLAINT_PURPOSE, **filters), metadata=metadata)
        seen += list(page.complaints)
        token = page.next_page_token
        if not token:
            return seen


async def test_file_then_get_returns_the_complaint_with_its_sla_clocks(feedback, new_complaint) -> None:
    sent = new_complaint()
    before = datetime.now(UTC)
    filed = await file(feedback, sent)
    fetched = await get(feedback, filed.name)
    assert re.fullmatch(r"CMP-\d{8}-\d{6}", filed.complaint_id)
    assert filed.name == f"complaints/{filed.complaint_id}"
    assert fetched.customer == sent.customer
    assert fetched.description == sent.description
    assert fetched.channel == channel_pb2.CHANNEL_MOBILE_APP
    assert fetched.category == classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES
    assert fetched.subcategory == "annual_fee"
    assert fetched.priority == complaint_pb2.COMPLAINT_PRIORITY_HIGH
    assert list(fetched.related_resources) == ["campaigns/spring-card-promo"]
    assert fetched.status == complaint_pb2.COMPLAINT_STATUS_OPEN
    assert fetched.filer == "rm-007"
    assert fetched.etag == filed.etag != ""
    received = fetched.receive_time.ToDatetime(tzinfo=UTC)
    assert before - timedelta(seconds=5) <= received <= datetime.now(UTC)
    assert fetched.sla.sla_policy == "slaPolicies/default"
    assert fetched.sla.respond_by.ToDatetime(tzinfo=UTC) - received == timedelta(hours=48)
    assert fetched.sla.resolve_by.ToDatetime(tzinfo=UTC) - received == timedelta(hours=48)
    assert not fetched.sla.respond_breached and not fetched.sla.resolve_breached
    assert not fetched.sla.HasField("respond_time")
    assert list(fetched.masked_fields) == []


async def test_clocks_start_at_the_receive_time_and_breach_when_it_is_long_past(feedback, new_complaint) -> None:
    received = (datetime.now(UTC) - timedelta(hours=60)).replace(microsecond=0)
    filed = await file(feedback, new_complaint(receive_time=timestamp(received)))
    assert filed.receive_time.ToDatetime(tzinfo=UTC) == received
    assert filed.sla.respond_by.ToDatetime(tzinfo=UTC) == received + timedelta(hours=48)
    assert filed.sla.respond_breached and filed.sla.resolve_breached


async def test_unspecified_category_and_priority_get_their_defaults(feedback, new_complaint) -> None:
    filed = await file(feedback, new_complaint(
        category=classification_pb2.COMPLAINT_CATEGORY_UNSPECIFIED,
        priority=complaint_pb2.COMPLAINT_PRIORITY_UNSPECIFIED, subcategory="", related_resources=[]))
    assert filed.category == classification_pb2.COMPLAINT_CATEGORY_OTHER
    assert filed.priority == complaint_pb2.COMPLAINT_PRIORITY_MEDIUM


async def test_description_is_trimmed_and_encrypted_at_rest(feedback, feedback_service, new_complaint) -> None:
    filed = await file(feedback, new_complaint(description="  charged twice for the annual fee  "))
    assert filed.description == "charged twice for the annual fee"
    _, runtime = feedback_service
    async with runtime.db.engine.connect() as connection:
        row = (await connection.execute(sa.text(
            "SELECT description_sealed, key_id FROM complaint WHERE complaint_id = :id"),
            {"id": filed.complaint_id})).one()
    assert b"annual fee" not in row.description_sealed
    assert row.key_id == "k1"


async def test_analyst_sees_the_description_masked_auditor_in_clear(feedback, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    masked = await get(feedback, filed.name, metadata=ANALYST)
    assert masked.description == "***"
    assert list(masked.masked_fields) == ["description"]
    assert masked.customer == filed.customer
    clear = await get(feedback, filed.name, metadata=AUDITOR)
    assert clear.description == filed.description


async def test_relationship_manager_reads_only_their_own_cases(feedback, new_complaint) -> None:
    filed = await file(feedback, new_complaint(), metadata=RM)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(feedback, filed.name, metadata=OTHER_RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error.value).reason == "OUTSIDE_BOOK"
    customer = filed.customer
    assert [c.name for c in await list_all(feedback, metadata=OTHER_RM, customer=customer)] == []
    assert [c.name for c in await list_all(feedback, metadata=RM, customer=customer)] == [filed.name]


async def test_unknown_complaint_is_not_found(feedback) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(feedback, "complaints/CMP-19990101-000000")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(error.value)
    assert (info.reason, info.domain) == ("COMPLAINT_NOT_FOUND", "feedback.crm")


async def test_malformed_name_is_invalid_argument(feedback) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(feedback, "customers/C1")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(error.value)


NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customer": ""}, "complaint.customer"),
        ({"customer": "C123"}, "complaint.customer"),
        ({"customer": "customers/has space"}, "complaint.customer"),
        ({"channel": channel_pb2.CHANNEL_UNSPECIFIED}, "complaint.channel"),
        ({"channel": 42}, "complaint.channel"),
        ({"description": "   "}, "complaint.description"),
        ({"description": "x" * 4001}, "complaint.description"),
        ({"category": 99}, "complaint.category"),
        ({"subcategory": "Annual Fee"}, "complaint.subcategory"),
        ({"product": "Credit Card"}, "complaint.product"),
        ({"priority": 9}, "complaint.priority"),
        ({"branch_id": "B" * 33}, "complaint.branch_id"),
        ({"related_resources": [f"campaigns/c{i}" for i in range(11)]}, "complaint.related_resources"),
        ({"related_resources": ["not a resource name"]}, "complaint.related_resources[0]"),
        ({"related_resources": ["campaigns/" + "x" * 200]}, "complaint.related_resources[0]"),
        ({"receive_time": timestamp(NOW + timedelta(hours=1))}, "complaint.receive_time"),
        ({"receive_time": timestamp(NOW - timedelta(hours=73))}, "complaint.receive_time"),
        ({"receive_time": Timestamp(seconds=0, nanos=-1)}, "complaint.receive_time"),
    ],
)
async def test_bad_field_is_invalid_argument_naming_it_and_writes_nothing(
    feedback, feedback_service, new_complaint, overrides, field,
) -> None:
    before = await row_counts(feedback_service, *WRITTEN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await file(feedback, new_complaint(**overrides))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await row_counts(feedback_service, *WRITTEN) == before


@pytest.mark.parametrize("request_id", ["", "not-a-uuid"])
async def test_request_id_is_required_and_must_be_a_uuid(feedback, feedback_service, new_complaint,
                                                         request_id) -> None:
    before = await row_counts(feedback_service, *WRITTEN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await file(feedback, new_complaint(), request_id=request_id)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(error.value)
    assert await row_counts(feedback_service, *WRITTEN) == before


async def test_every_bad_field_is_named_at_once(feedback, new_complaint) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await file(feedback, new_complaint(customer="nobody", channel=0, description=""), request_id="nope")
    assert {"complaint.customer", "complaint.channel", "complaint.description", "request_id"} <= set(
        field_violations(error.value))


async def test_retry_with_the_same_request_id_returns_the_first_complaint(
    feedback, feedback_service, new_complaint,
) -> None:
    request_id = str(uuid.uuid4())
    sent = new_complaint()
    first = await file(feedback, sent, request_id=request_id)
    before = await row_counts(feedback_service, *WRITTEN)
    again = await file(feedback, sent, request_id=request_id)
    assert again.complaint_id == first.complaint_id
    assert await row_counts(feedback_service, *WRITTEN) == before
    # The key belongs to its caller: another caller's identical key files its own complaint.
    other = await file(feedback, sent, metadata=ADMIN, request_id=request_id)
    assert other.complaint_id != first.complaint_id


async def test_calls_without_a_valid_token_are_unauthenticated(feedback) -> None:
    for metadata in [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await feedback.GetComplaint(pb.GetComplaintRequest(name="complaints/x", audit=COMPLAINT_PURPOSE),
                                        metadata=metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_role_not_allowed_is_permission_denied_and_writes_nothing(
    feedback, feedback_service, new_complaint,
) -> None:
    before = await row_counts(feedback_service, *WRITTEN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await file(feedback, new_complaint(), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error.value).reason == "ROLE_NOT_ALLOWED"
    assert await row_counts(feedback_service, *WRITTEN) == before
    filed = await file(feedback, new_complaint(), metadata=APP)
    for metadata in (MARKETER, FEED):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await get(feedback, filed.name, metadata=metadata)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as no_list:
        await list_all(feedback, metadata=APP)
    assert no_list.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_reads_require_an_audit_purpose_and_are_audited(feedback, feedback_service, new_complaint) -> None:
    filed = await file(feedback, new_complaint())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.GetComplaint(pb.GetComplaintRequest(name=filed.name), metadata=RM)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audit.purpose" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await feedback.ListComplaints(pb.ListComplaintsRequest(), metadata=ADMIN)
    assert "audit.purpose" in field_violations(listing.value)
    await get(feedback, filed.name)
    _, runtime = feedback_service
    async with runtime.db.engine.connect() as connection:
        actions = (await connection.execute(sa.text(
            "SELECT action, principal, purpose FROM audit_record WHERE resource_name = :name ORDER BY seq"),
            {"name": filed.name})).all()
    assert [tuple(a) for a in actions] == [("complaint.file", "rm-007", "COMPLAINT"),
                                           ("complaint.read", "rm-007", "COMPLAINT")]


async def test_list_pages_newest_first_with_opaque_tokens(feedback, new_complaint) -> None:
    customer = f"customers/C{uuid.uuid4().hex[:10]}"
    names = [(await file(feedback, new_complaint(customer=customer))).name for _ in range(5)]
    seen, token, pages = [], "", 0
    while True:
        page = await feedback.ListComplaints(pb.ListComplaintsRequest(
            customer=customer, page_size=2, page_token=token, audit=COMPLAINT_PURPOSE), metadata=ADMIN)
        seen += [c.name for c in page.complaints]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    assert pages == 3
    first = await feedback.ListComplaints(pb.ListComplaintsRequest(
        customer=customer, page_size=2, audit=COMPLAINT_PURPOSE), metadata=ADMIN)
    for tampered in (dict(customer="customers/other"), dict(customer=customer, order_by="priority desc")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await feedback.ListComplaints(pb.ListComplaintsRequest(
                page_size=2, page_token=first.next_page_token, audit=COMPLAINT_PURPOSE, **tampered), metadata=ADMIN)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(error.value)


async def test_list_filters_and_orders(feedback, new_complaint) -> None:
    customer = f"customers/C{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    low = await file(feedback, new_complaint(customer=customer, priority=complaint_pb2.COMPLAINT_PRIORITY_LOW,
                                             channel=channel_pb2.CHANNEL_BRANCH))
    late = await file(feedback, new_complaint(customer=customer, priority=complaint_pb2.COMPLAINT_PRIORITY_URGENT,
                                              receive_time=timestamp(now - timedelta(hours=50))))
    medium = await file(feedback, new_complaint(customer=customer, priority=complaint_pb2.COMPLAINT_PRIORITY_MEDIUM,
                                                receive_time=timestamp(now - timedelta(hours=10))))

    async def names(**filters):  # type: ignore[no-untyped-def]
        return [c.name for c in await list_all(feedback, customer=customer, **filters)]

    assert await names(order_by="priority desc") == [late.name, medium.name, low.name]
    assert await names(order_by="sla.respond_by") == [late.name, medium.name, low.name]
    assert await names(order_by="  sla.resolve_by ") == [late.name, medium.name, low.name]
    assert await names(priorities=[complaint_pb2.COMPLAINT_PRIORITY_LOW, complaint_pb2.COMPLAINT_PRIORITY_MEDIUM],
                       order_by="priority desc") == [medium.name, low.name]
    assert await names(channel=channel_pb2.CHANNEL_BRANCH) == [low.name]
    assert await names(breached_only=True) == [late.name]
    assert await names(statuses=[complaint_pb2.COMPLAINT_STATUS_RESOLVED]) == []
    assert await names(assignee="unassigned", order_by="priority desc") == [late.name, medium.name, low.name]
    assert await names(min_escalation_level=1) == []
    soon = interval_pb2.Interval(start_time=timestamp(now), end_time=timestamp(now + timedelta(hours=40)))
    assert await names(due_interval=soon) == [medium.name]
    recent = interval_pb2.Interval(start_time=timestamp(now - timedelta(hours=20)))
    assert sorted(await names(receive_interval=recent)) == sorted([low.name, medium.name])


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"order_by": "description"}, "order_by"),
        ({"customer": "C1"}, "customer"),
        ({"statuses": [42]}, "statuses[0]"),
        ({"categories": [0]}, "categories[0]"),
        ({"priorities": [7]}, "priorities[0]"),
        ({"channel": 99}, "channel"),
        ({"min_escalation_level": 4}, "min_escalation_level"),
        ({"page_size": -1}, "page_size"),
        ({"receive_interval": interval_pb2.Interval(start_time=Timestamp(seconds=100), end_time=Timestamp(seconds=1))},
         "receive_interval"),
    ],
)
async def test_bad_list_request_is_invalid_argument_naming_the_field(feedback, request_fields, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.ListComplaints(pb.ListComplaintsRequest(audit=COMPLAINT_PURPOSE, **request_fields),
                                      metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
