"""The profile change feed: outbox rows written with each change, streamed by WatchChanges."""

from __future__ import annotations

import grpc
import pytest

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.outbox import parse_cursor
from crmkit.testing import bearer, change_feed, next_events, tail_cursor

SERVICE = bearer(Role.SERVICE, subject="svc-segment")


def feed(profile):  # type: ignore[no-untyped-def]
    """Opens the profile change feed as the platform service that reads it."""
    return change_feed(profile, pb.WatchChangesRequest, SERVICE)


async def test_a_created_customer_appears_on_the_feed_masked(profile, new_customer) -> None:
    cursor = await tail_cursor(feed(profile))
    sent = new_customer()
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=bearer(Role.ADMIN))
    (event,) = await next_events(feed(profile), cursor, 1)
    assert event.resource_name == f"customers/{sent.customer_id}"
    assert event.change_type == change_event_pb2.CHANGE_TYPE_CREATED
    assert event.resource_type == "crm.profile.v1.Customer"
    assert parse_cursor(event.cursor) > parse_cursor(cursor)
    customer = customer_pb2.Customer()
    event.payload.Unpack(customer)
    assert customer.customer_id == sent.customer_id
    assert customer.full_name == "L* W**", "personal data on the feed is masked"
    assert "full_name" in customer.masked_fields


async def test_resuming_after_a_cursor_returns_only_later_events(profile, new_customer) -> None:
    first, second = new_customer(), new_customer()
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=first), metadata=bearer(Role.ADMIN))
    cursor = await tail_cursor(feed(profile))
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=second), metadata=bearer(Role.ADMIN))
    after = await next_events(feed(profile), cursor, 1)
    assert [e.resource_name for e in after] == [f"customers/{second.customer_id}"]


async def test_feed_readers_need_the_service_role(profile) -> None:
    call = profile.WatchChanges(pb.WatchChangesRequest(), metadata=bearer(Role.ANALYST))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in call:
            pass
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_malformed_cursor_is_invalid_argument(profile) -> None:
    call = profile.WatchChanges(pb.WatchChangesRequest(after_cursor="abc"), metadata=SERVICE)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in call:
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_deletion_is_on_the_feed_with_its_resource_type(profile, new_customer) -> None:
    sent = new_customer()
    created = (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent),
                                            metadata=bearer(Role.ADMIN))).customer
    cursor = await tail_cursor(feed(profile))
    await profile.DeleteCustomer(pb.DeleteCustomerRequest(name=created.name, audit=audit_pb2.AuditContext(
        purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT)), metadata=bearer(Role.ADMIN))
    (event,) = await next_events(feed(profile), cursor, 1)
    assert (event.change_type, event.resource_type, event.resource_name) == (
        change_event_pb2.CHANGE_TYPE_DELETED, "crm.profile.v1.Customer", created.name)
