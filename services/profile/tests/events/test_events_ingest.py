"""IngestEvents: the client stream of event batches, against a real PostgreSQL through a real server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.type import money_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, event_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, field_violations, next_events, row_counter, tail_cursor

CHANNEL_APP = bearer(Role.CHANNEL_APP, subject="mobile-banking")
ADMIN = bearer(Role.ADMIN)


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(moment.timestamp()), nanos=moment.microsecond * 1000)


def visit(customer: str, *, at: datetime | None = None, **fields: object) -> event_pb2.CustomerEvent:
    event = event_pb2.CustomerEvent(
        event_id=str(uuid.uuid4()), customer=customer, event_type=event_pb2.EVENT_TYPE_CHANNEL_VISIT,
        channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING, occur_time=stamp(at or datetime.now(UTC)),
        source_system="mobile-banking", properties={"page": "home"})
    for field, value in fields.items():
        if isinstance(value, (event_pb2.TransactionDetail, event_pb2.ApplicationDetail, event_pb2.LoginDetail,
                              timestamp_pb2.Timestamp)):
            getattr(event, field).CopyFrom(value)
        elif value is None:
            event.ClearField(field)
        else:
            setattr(event, field, value)
    return event


def payroll(customer: str, **fields: object) -> event_pb2.CustomerEvent:
    detail = event_pb2.TransactionDetail(
        amount=money_pb2.Money(currency_code="CNY", units=18_000), direction=event_pb2.TRANSACTION_DIRECTION_CREDIT,
        kind=event_pb2.TRANSACTION_KIND_SALARY, holding=f"{customer}/holdings/SA-1",
        balance_after=money_pb2.Money(currency_code="CNY", units=25_000, nanos=500_000_000))
    fields.setdefault("transaction", detail)
    return visit(customer, event_type=event_pb2.EVENT_TYPE_PAYROLL_CREDIT, channel=event_pb2.EVENT_CHANNEL_BACK_OFFICE,
                 source_system="core-banking", **fields)


async def ingest(profile, *batches, metadata=CHANNEL_APP):  # type: ignore[no-untyped-def]
    return await profile.IngestEvents([event_pb2.IngestEventsRequest(events=list(b)) for b in batches],
                                      metadata=metadata)


async def stored(service, *event_ids: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    _, runtime = service
    async with runtime.db.raw() as connection:
        rows = await connection.fetch(
            "SELECT event_id, customer_id FROM customer_event WHERE event_id = ANY($1::text[]) ORDER BY event_id",
            list(event_ids))
    return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.fixture
async def customer(profile, new_customer) -> customer_pb2.Customer:  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer()), metadata=ADMIN)).customer


async def test_accepted_events_are_stored_and_counted(profile, profile_service, customer) -> None:
    events = [visit(customer.name), payroll(customer.name), visit(customer.name)]
    response = await ingest(profile, events[:2], events[2:])
    assert (response.accepted_count, response.duplicate_count, response.rejected_count) == (3, 0, 0)
    assert not response.rejections
    assert await stored(profile_service, *(e.event_id for e in events)) == sorted(
        (e.event_id, customer.customer_id) for e in events)


async def test_transactions_keep_exact_minor_units(profile, profile_service, customer) -> None:
    event = payroll(customer.name)
    await ingest(profile, [event])
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        row = await connection.fetchrow(
            "SELECT currency, amount_minor, balance_after_minor, direction, holding_id FROM customer_event "
            "WHERE event_id = $1", event.event_id)
    assert tuple(row) == ("CNY", 1_800_000, 2_500_050, 1, "SA-1")


async def test_duplicates_within_a_batch_and_across_calls_are_counted_not_stored(
        profile, profile_service, customer) -> None:
    first, second = visit(customer.name), visit(customer.name)
    response = await ingest(profile, [first, first, second])
    assert (response.accepted_count, response.duplicate_count) == (2, 1)
    # A retry of the whole stream after a lost reply: everything is a duplicate, even with other fields.
    changed = visit(customer.name, at=datetime.now(UTC) - timedelta(days=40))
    changed.event_id = first.event_id
    retry = await ingest(profile, [changed, second])
    assert (retry.accepted_count, retry.duplicate_count, retry.rejected_count) == (0, 2, 0)
    count = row_counter(profile_service)
    assert len(await stored(profile_service, first.event_id, second.event_id)) == 2
    assert await count("customer_event") == await count("customer_event_id")


async def test_bad_events_are_rejected_one_by_one_and_the_rest_kept(profile, profile_service, customer) -> None:
    good = [visit(customer.name), payroll(customer.name)]
    bad = [
        (visit(customer.name, event_id=""), "event_id", "REQUIRED"),
        (visit("customers/NOBODY-" + uuid.uuid4().hex[:8]), "customer", "CUSTOMER_NOT_FOUND"),
        (visit("people/1"), "customer", "INVALID_FORMAT"),
        (visit(customer.name, at=datetime.now(UTC) + timedelta(hours=1)), "occur_time", "OUT_OF_RANGE"),
        (visit(customer.name, at=datetime.now(UTC) - timedelta(days=3650)), "occur_time", "OUTSIDE_RETENTION"),
        (visit(customer.name, event_type=event_pb2.EVENT_TYPE_PRODUCT_VIEW), "product_code", "REQUIRED"),
        (visit(customer.name, login=event_pb2.LoginDetail(success=True)), "login", "DETAIL_MISMATCH"),
        (payroll(customer.name, transaction=event_pb2.TransactionDetail(
            amount=money_pb2.Money(currency_code="CNY", units=1), direction=event_pb2.TRANSACTION_DIRECTION_DEBIT,
            kind=event_pb2.TRANSACTION_KIND_SALARY)), "transaction.direction", "DETAIL_MISMATCH"),
        (payroll(customer.name, transaction=event_pb2.TransactionDetail(
            amount=money_pb2.Money(currency_code="CNY", units=1, nanos=1),
            direction=event_pb2.TRANSACTION_DIRECTION_CREDIT, kind=event_pb2.TRANSACTION_KIND_SALARY)),
         "transaction.amount", "INVALID_FORMAT"),
        (visit(customer.name, source_system="Mobile Banking"), "source_system", "INVALID_FORMAT"),
    ]
    batch = [good[0], *(event for event, _, _ in bad), good[1]]
    response = await ingest(profile, [visit(customer.name)], batch)
    assert (response.accepted_count, response.rejected_count, response.duplicate_count) == (3, len(bad), 0)
    assert [(r.batch_index, r.event_index, r.field, r.reason) for r in response.rejections] == [
        (1, i + 1, field, reason) for i, (_, field, reason) in enumerate(bad)]
    assert response.rejections[1].event_id == bad[1][0].event_id
    assert all(r.description for r in response.rejections)
    assert len(await stored(profile_service, *(e.event_id for e in good))) == 2
    assert not await stored(profile_service, *(event.event_id for event, _, _ in bad))
    # A rejected event's id is not spent: once fixed, it is accepted.
    fixed = bad[5][0]
    fixed.product_code = "FUND-1"
    assert (await ingest(profile, [fixed])).accepted_count == 1


async def test_more_than_a_thousand_rejections_are_cut_short_in_stream_order(profile, customer) -> None:
    batches = [[visit(customer.name, source_system="BAD") for _ in range(600)] for _ in range(2)]
    response = await ingest(profile, *batches)
    assert response.rejected_count == 1200 and response.rejections_truncated
    assert len(response.rejections) == 1000
    positions = [(r.batch_index, r.event_index) for r in response.rejections]
    assert positions == sorted(positions) and positions[-1] == (1, 399)


@pytest.mark.parametrize("size", [0, 1001])
async def test_an_empty_or_oversized_batch_fails_the_call_after_storing_the_batches_before_it(
        profile, profile_service, customer, size) -> None:
    before = [visit(customer.name) for _ in range(3)]
    oversized = [visit(customer.name) for _ in range(size)]
    after = [visit(customer.name)]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await ingest(profile, before, oversized, after)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events" in field_violations(error.value)
    assert len(await stored(profile_service, *(e.event_id for e in before))) == 3
    assert not await stored(profile_service, *(e.event_id for e in oversized + after))


async def test_only_channels_and_platform_callers_ingest(profile, customer) -> None:
    for role in (Role.RELATIONSHIP_MANAGER, Role.MARKETER, Role.ANALYST):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ingest(profile, [visit(customer.name)], metadata=bearer(role))
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await ingest(profile, [visit(customer.name)], metadata=bearer(Role.SERVICE))).accepted_count == 1


async def test_events_land_in_month_partitions_created_on_demand(profile, profile_service, customer) -> None:
    months_ago = datetime.now(UTC).replace(day=15) - timedelta(days=400)
    old = visit(customer.name, at=months_ago)
    await ingest(profile, [old, visit(customer.name)])
    partition = f"customer_event_p{months_ago.year:04d}_{months_ago.month:02d}"
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        found = await connection.fetchval(
            f"SELECT count(*) FROM {partition} WHERE event_id = $1", old.event_id)  # noqa: S608 (test-built name)
        partitions = await connection.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'customer_event'::regclass")
    assert found == 1 and partitions >= 3  # this month, next month, and the old one


async def test_each_accepted_event_is_published_on_the_change_feed(profile, customer) -> None:
    open_feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    after = await tail_cursor(open_feed)
    events = [visit(customer.name), payroll(customer.name)]
    await ingest(profile, [*events, events[0]])
    published = await next_events(open_feed, after, 2, resource_types=["crm.profile.v1.CustomerEvent"])
    assert [(e.resource_name, e.change_type, e.actor) for e in published] == [
        (f"{customer.name}/events/{e.event_id}", change_event_pb2.CHANGE_TYPE_EVENT, "mobile-banking")
        for e in events]
    payload = event_pb2.CustomerEvent()
    published[1].payload.Unpack(payload)
    assert payload.transaction.amount.units == 18_000 and payload.HasField("ingest_time")
    assert payload.customer == customer.name and payload.occur_time == events[1].occur_time


async def test_concurrent_streams_share_new_partitions_and_never_store_an_id_twice(
        profile, profile_service, customer) -> None:
    # A month no other test touches: both streams need its partition at the same moment.
    month = datetime.now(UTC).replace(day=10, hour=12) - timedelta(days=760)
    shared = [visit(customer.name, at=month) for _ in range(300)]
    own = [[visit(customer.name, at=month + timedelta(hours=i)) for i in range(50)] for _ in range(2)]
    first, second = await asyncio.gather(*(ingest(profile, shared[:150], own[i], shared[150:]) for i in range(2)))
    assert first.accepted_count + second.accepted_count == 300 + 100
    assert first.duplicate_count + second.duplicate_count == 300
    assert len(await stored(profile_service, *(e.event_id for e in shared))) == 300
