"""ListCustomerEvents: one customer's events newest first, filtered and paged, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.type import interval_pb2, money_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2, event_pb2, identity_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
ADMIN = bearer(Role.ADMIN)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(moment.timestamp()))


def event(customer: str, hours: int, event_type: int = event_pb2.EVENT_TYPE_CHANNEL_VISIT,
          channel: int = event_pb2.EVENT_CHANNEL_WEB_BANKING, event_id: str = "") -> event_pb2.CustomerEvent:
    message = event_pb2.CustomerEvent(
        event_id=event_id or str(uuid.uuid4()), customer=customer, event_type=event_type, channel=channel,
        occur_time=stamp(BASE + timedelta(hours=hours)), source_system="web-banking")
    if event_type == event_pb2.EVENT_TYPE_TRANSACTION:
        message.transaction.CopyFrom(event_pb2.TransactionDetail(
            amount=money_pb2.Money(currency_code="USD", units=12, nanos=340_000_000),
            direction=event_pb2.TRANSACTION_DIRECTION_DEBIT, kind=event_pb2.TRANSACTION_KIND_CARD_PAYMENT,
            merchant_category_code="5411"))
    if event_type == event_pb2.EVENT_TYPE_LOGIN:
        message.login.CopyFrom(event_pb2.LoginDetail(success=False, method="sms-otp"))
    return message


@pytest.fixture
async def customer(profile, new_customer) -> customer_pb2.Customer:  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer()), metadata=ADMIN)).customer


async def listed(profile, parent, *, metadata=RM, **fields):  # type: ignore[no-untyped-def]
    return await profile.ListCustomerEvents(
        event_pb2.ListCustomerEventsRequest(parent=parent, audit=AUDIT, **fields), metadata=metadata)


async def test_events_come_back_newest_first_as_they_were_sent(profile, customer) -> None:
    sent = [event(customer.name, 1, event_pb2.EVENT_TYPE_TRANSACTION), event(customer.name, 3),
            event(customer.name, 2, event_pb2.EVENT_TYPE_LOGIN)]
    await profile.IngestEvents([event_pb2.IngestEventsRequest(events=sent)], metadata=ADMIN)
    page = await listed(profile, customer.name)
    assert [e.event_id for e in page.events] == [sent[1].event_id, sent[2].event_id, sent[0].event_id]
    transaction = page.events[2]
    assert transaction.name == f"{customer.name}/events/{sent[0].event_id}"
    assert transaction.transaction == sent[0].transaction
    assert transaction.occur_time == sent[0].occur_time and transaction.HasField("ingest_time")
    assert page.events[1].login == sent[2].login
    assert not page.next_page_token


async def test_pages_follow_time_then_id_and_filters_narrow(profile, customer) -> None:
    tied = [event(customer.name, 5, event_id=f"tie-{uuid.uuid4().hex[:6]}-{i}") for i in range(3)]
    others = [event(customer.name, h, channel=event_pb2.EVENT_CHANNEL_BRANCH) for h in (1, 9)]
    await profile.IngestEvents([event_pb2.IngestEventsRequest(events=tied + others)], metadata=ADMIN)
    seen, token = [], ""
    while True:
        page = await listed(profile, customer.name, page_size=2, page_token=token)
        seen += [e.event_id for e in page.events]
        token = page.next_page_token
        if not token:
            break
    assert seen == [others[1].event_id, *sorted(e.event_id for e in tied), others[0].event_id]
    branch = await listed(profile, customer.name, channels=[event_pb2.EVENT_CHANNEL_BRANCH])
    assert [e.event_id for e in branch.events] == [others[1].event_id, others[0].event_id]
    window = interval_pb2.Interval(start_time=stamp(BASE + timedelta(hours=5)),
                                   end_time=stamp(BASE + timedelta(hours=9)))
    in_window = await listed(profile, customer.name, occur_interval=window)
    assert sorted(e.event_id for e in in_window.events) == sorted(e.event_id for e in tied)
    logins = await listed(profile, customer.name, event_types=[event_pb2.EVENT_TYPE_LOGIN])
    assert not logins.events


@pytest.mark.parametrize(("fields", "field"), [
    ({"occur_interval": interval_pb2.Interval(start_time=stamp(BASE), end_time=stamp(BASE + timedelta(days=401)))},
     "occur_interval"),
    ({"occur_interval": interval_pb2.Interval(start_time=stamp(BASE), end_time=stamp(BASE - timedelta(days=1)))},
     "occur_interval.end_time"),
    ({"occur_interval": interval_pb2.Interval(start_time=stamp(BASE))}, "occur_interval"),
    ({"page_size": -5}, "page_size"),
    ({"page_token": "not-a-token"}, "page_token"),
    ({"event_types": [99]}, "event_types[0]"),
    ({"parent": "customers/a/b"}, "parent"),
])
async def test_bad_list_request_is_invalid_argument(profile, customer, fields, field) -> None:
    parent = fields.pop("parent", customer.name)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await listed(profile, parent, **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_missing_audit_purpose_is_invalid_argument(profile, customer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListCustomerEvents(event_pb2.ListCustomerEventsRequest(parent=customer.name), metadata=RM)
    assert "audit.purpose" in field_violations(error.value)


async def test_unknown_customer_is_not_found_and_other_books_are_denied(profile, customer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await listed(profile, "customers/NOBODY")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await listed(profile, customer.name, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error.value) == "OUTSIDE_BOOK"
    with pytest.raises(grpc.aio.AioRpcError) as error:  # services consume the feed, not the list
        await listed(profile, customer.name, metadata=bearer(Role.SERVICE))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_reading_events_is_audited(profile, profile_service, customer) -> None:
    await listed(profile, customer.name, metadata=bearer(Role.RISK_OFFICER, subject="risk-1"))
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        rows = await connection.fetch(
            "SELECT principal, action, purpose FROM audit_record WHERE resource_name = $1 AND action = 'event.list'",
            customer.name)
    assert [tuple(r) for r in rows] == [("risk-1", "event.list", "CUSTOMER_SERVICE")]


async def merge(profile, survivor, source) -> None:  # type: ignore[no-untyped-def]
    await profile.MergeCustomers(identity_pb2.MergeCustomersRequest(
        name=survivor.name, source_customer=source.name, audit=AUDIT), metadata=ADMIN)


async def test_events_follow_a_merge_to_the_survivor(profile, new_customer) -> None:
    survivor, source = [(await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer()),
                                                      metadata=ADMIN)).customer for _ in range(2)]
    before = event(source.name, 1)
    await profile.IngestEvents([event_pb2.IngestEventsRequest(events=[before])], metadata=ADMIN)
    await merge(profile, survivor, source)
    after = event(source.name, 2)
    response = await profile.IngestEvents([event_pb2.IngestEventsRequest(events=[after])], metadata=ADMIN)
    assert response.accepted_count == 1
    shown = {e.event_id: e for e in (await listed(profile, survivor.name, metadata=ADMIN)).events}
    assert set(shown) == {before.event_id, after.event_id}
    # Filed under the survivor, remembering the name the source used; older events stay where they were.
    assert (shown[after.event_id].customer, shown[after.event_id].original_customer) == (survivor.name, source.name)
    assert shown[after.event_id].name == f"{survivor.name}/events/{after.event_id}"
    assert shown[before.event_id].customer == source.name
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await listed(profile, source.name, metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "CUSTOMER_MERGED"


async def test_events_of_an_erased_customer_are_rejected(profile, profile_service, customer) -> None:
    _, runtime = profile_service
    async with runtime.db.raw() as connection:  # the state EraseCustomer leaves behind
        await connection.execute("UPDATE customer SET state = 3 WHERE customer_id = $1", customer.customer_id)
    response = await profile.IngestEvents([event_pb2.IngestEventsRequest(events=[event(customer.name, 1)])],
                                          metadata=ADMIN)
    assert (response.accepted_count, response.rejected_count) == (0, 1)
    assert (response.rejections[0].field, response.rejections[0].reason) == ("customer", "CUSTOMER_ERASED")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await listed(profile, customer.name, metadata=ADMIN)
    assert error_reason(error.value) == "CUSTOMER_ERASED"
