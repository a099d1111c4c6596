"""The feedback change feed: an outbox row written with each filed complaint, streamed by WatchChanges."""

from __future__ import annotations

import uuid

import grpc
import pytest

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import channel_pb2, complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.auth import Role
from crmkit.outbox import parse_cursor
from crmkit.testing import bearer, change_feed, next_events, tail_cursor

FEED = bearer(Role.SERVICE, subject="svc-risk")


def feed(feedback):  # type: ignore[no-untyped-def]
    """Opens the feedback change feed as the platform service that reads it."""
    return change_feed(feedback, pb.WatchChangesRequest, FEED)
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")


async def file(feedback, complaint):  # type: ignore[no-untyped-def]
    response = await feedback.FileComplaint(
        pb.FileComplaintRequest(complaint=complaint, request_id=str(uuid.uuid4())), metadata=APP)
    return response.complaint


async def test_a_filed_complaint_appears_on_the_feed_masked(feedback, new_complaint) -> None:
    cursor = await tail_cursor(feed(feedback))
    filed = await file(feedback, new_complaint(channel=channel_pb2.CHANNEL_WECHAT))
    (event,) = await next_events(feed(feedback), cursor, 1, resource_types=["crm.feedback.v1.Complaint"])
    assert event.resource_name == filed.name
    assert event.change_type == change_event_pb2.CHANGE_TYPE_CREATED
    assert event.resource_type == "crm.feedback.v1.Complaint"
    assert event.actor == "mobile-app"
    assert parse_cursor(event.cursor) > parse_cursor(cursor)
    payload = complaint_pb2.Complaint()
    assert event.payload.Unpack(payload)
    assert (payload.complaint_id, payload.customer) == (filed.complaint_id, filed.customer)
    assert payload.channel == channel_pb2.CHANNEL_WECHAT
    assert payload.sla.respond_by == filed.sla.respond_by
    assert payload.description == "***", "personal data on the feed is masked"
    assert list(payload.masked_fields) == ["description"]


async def test_resuming_after_a_cursor_returns_only_later_events(feedback, new_complaint) -> None:
    await file(feedback, new_complaint())
    cursor = await tail_cursor(feed(feedback))
    second = await file(feedback, new_complaint())
    assert [e.resource_name for e in await next_events(feed(feedback), cursor, 1)] == [second.name]


async def test_an_idempotent_retry_adds_no_second_event(feedback, new_complaint) -> None:
    cursor = await tail_cursor(feed(feedback))
    request = pb.FileComplaintRequest(complaint=new_complaint(), request_id=str(uuid.uuid4()))
    first = (await feedback.FileComplaint(request, metadata=APP)).complaint
    again = (await feedback.FileComplaint(request, metadata=APP)).complaint
    assert again.name == first.name
    events = await next_events(feed(feedback), cursor, 2, seconds=1.0)
    assert [e.resource_name for e in events] == [first.name]


async def test_a_malformed_cursor_is_invalid_argument(feedback) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in feedback.WatchChanges(pb.WatchChangesRequest(after_cursor="abc"), metadata=FEED):
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_feed_readers_need_the_service_role(feedback) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in feedback.WatchChanges(pb.WatchChangesRequest(), metadata=bearer(Role.ANALYST)):
            pass
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
