"""RecomputeFeatures: the batch recomputation as a long-running operation, against what the
incremental paths computed, through the real server on real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crm.common.v1 import audit_pb2, change_event_pb2, operation_pb2
from crm.profile.v1 import event_pb2, features_pb2, holding_pb2, identity_pb2, operations_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, eventually, field_violations, row_counter

FEED_READER = bearer(Role.SERVICE, subject="segment")
FEATURES_TYPE = "crm.profile.v1.CustomerFeatures"
KIND = "profile.recompute_features"
H, E = holding_pb2, event_pb2
AUM_TYPES = [H.PRODUCT_TYPE_CURRENT_ACCOUNT, H.PRODUCT_TYPE_SAVINGS_ACCOUNT, H.PRODUCT_TYPE_TERM_DEPOSIT,
             H.PRODUCT_TYPE_FUND, H.PRODUCT_TYPE_CREDIT_CARD, H.PRODUCT_TYPE_MORTGAGE]
OPEN_STATUSES = [H.HOLDING_STATUS_ACTIVE, H.HOLDING_STATUS_DORMANT]
CHANNELS = list(E.EventChannel.values())[1:]


async def stored_features(world, customer_ids: list[str]) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    async with world.db.raw() as connection:
        rows = await connection.fetch("SELECT * FROM customer_feature WHERE customer_id = ANY($1)", customer_ids)
    return {row["customer_id"]: {k: v for k, v in row.items() if k != "computed_at"} for row in rows}


async def populate(world, count: int, rng: random.Random) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` customers with random holdings and events, made through the RPCs; their ids."""
    today, now = datetime.now(UTC).date(), datetime.now(UTC)
    names: list[str] = []
    for start in range(0, count, 25):
        onboarded = [world.day(today - timedelta(days=rng.randint(0, 4000)))
                     for _ in range(start, min(count, start + 25))]
        names += await asyncio.gather(*(world.customer(onboarded_on=day) for day in onboarded))
    holdings = []
    for name in names:
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            opened = today - timedelta(days=rng.randint(0, 800))
            closed = rng.random() < 0.2
            holdings.append(world.holding(
                name, product_type=rng.choice(AUM_TYPES),
                balance=world.money(rng.randint(0, 500_000), rng.randrange(0, 100) * 10_000_000), open_date=opened,
                status=H.HOLDING_STATUS_CLOSED if closed else rng.choice(OPEN_STATUSES),
                close_date=min(today, opened + timedelta(days=rng.randint(0, 300))) if closed else None,
                maturity_date=today + timedelta(days=rng.randint(-30, 400)) if rng.random() < 0.4 else None))
    for start in range(0, len(holdings), 25):
        await asyncio.gather(*holdings[start:start + 25])
    events = []
    for _ in range(count * 4):
        name, at = rng.choice(names), now - timedelta(days=rng.uniform(0, 420))
        pick = rng.random()
        if pick < 0.4:
            kind = rng.choice(list(E.TransactionKind.values())[1:])
            amount = world.money(rng.randint(1, 9_999), rng.randrange(0, 100) * 10_000_000)
            events.append(world.transaction(name, at, amount, kind=kind, channel=rng.choice(CHANNELS),
                                            direction=rng.choice([E.TRANSACTION_DIRECTION_DEBIT,
                                                                  E.TRANSACTION_DIRECTION_CREDIT])))
        elif pick < 0.5:
            events.append(world.transaction(name, at, world.money(rng.randint(5_000, 30_000)),
                                            kind=E.TRANSACTION_KIND_SALARY, channel=E.EVENT_CHANNEL_BACK_OFFICE,
                                            event_type=E.EVENT_TYPE_PAYROLL_CREDIT,
                                            direction=E.TRANSACTION_DIRECTION_CREDIT))
        elif pick < 0.8:
            events.append(world.login(name, at, success=rng.random() < 0.9))
        else:
            events.append(world.event(name, E.EVENT_TYPE_CHANNEL_VISIT, rng.choice(CHANNELS), at))
    await world.ingest(*events)
    return [name.split("/")[1] for name in names]


async def test_a_batch_over_a_few_hundred_customers_matches_the_incremental_results(world, profile) -> None:
    customer_ids = await populate(world, 240, random.Random(20261123))
    await world.marks_drained(customer_ids)
    incremental = await stored_features(world, customer_ids)
    assert len(incremental) == len(customer_ids)
    assert any(f["frequency"] for f in incremental.values()) and any(f["aum_minor"] for f in incremental.values())
    after = await world.feed_tail()

    started = await world.recompute(customers=[f"customers/{c}" for c in customer_ids])
    assert started.kind == KIND and started.name.startswith("operations/")
    done = await world.finished(started)
    assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert done.progress.done == done.progress.total == len(customer_ids)
    result = features_pb2.RecomputeFeaturesResult()
    assert done.response.Unpack(result)
    assert (result.customer_count, result.changed_count) == (len(customer_ids), 0)
    assert await stored_features(world, customer_ids) == incremental
    # Nothing changed, so nothing was published.
    assert not await world.published(after, {f"customers/{c}/features" for c in customer_ids}, 1, seconds=1.0)


async def test_a_batch_over_everyone_restores_and_publishes_missing_features(world, profile) -> None:
    names = [await world.customer() for _ in range(3)]
    ids = [n.split("/")[1] for n in names]
    async with world.db.raw() as connection:
        await connection.execute("DELETE FROM customer_feature WHERE customer_id = ANY($1)", ids)
    after = await world.feed_tail()

    done = await world.finished(await world.recompute())
    assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    result = features_pb2.RecomputeFeaturesResult()
    assert done.response.Unpack(result) and result.changed_count >= 3
    assert result.customer_count == done.progress.total >= 3
    assert set(await stored_features(world, ids)) == set(ids)
    events = await world.published(after, {f"{n}/features" for n in names}, 3)
    assert sorted(e.resource_name for e in events if e.change_type == change_event_pb2.CHANGE_TYPE_CREATED) == sorted(
        f"{n}/features" for n in names)


async def test_changed_since_covers_customers_whose_holdings_or_events_changed(world) -> None:
    quiet, holder, active = [await world.customer() for _ in range(3)]
    since = datetime.now(UTC)

    async def database_clock() -> datetime:
        async with world.db.raw() as connection:
            return await connection.fetchval("SELECT clock_timestamp()")

    # The changes below are stamped by the database's clock: strictly after `since`.
    await eventually(database_clock, until=lambda now: now > since, what="the database clock past `since`")
    today = since.date()
    await world.holding(holder, product_type=H.PRODUCT_TYPE_SAVINGS_ACCOUNT, balance=world.money(10), open_date=today)
    await world.ingest(world.login(active, datetime.now(UTC)))
    ids = [n.split("/")[1] for n in (quiet, holder, active)]
    await world.marks_drained(ids)
    async with world.db.raw() as connection:
        await connection.execute("DELETE FROM customer_feature WHERE customer_id = ANY($1)", ids)

    done = await world.finished(await world.recompute(customers=[quiet, holder, active], changed_since=since))
    result = features_pb2.RecomputeFeaturesResult()
    assert done.response.Unpack(result) and (result.customer_count, result.changed_count) == (2, 2)
    assert set(await stored_features(world, ids)) == {ids[1], ids[2]}


async def test_a_merged_customer_s_holdings_count_for_the_survivor(world, profile) -> None:
    survivor, source = await world.customer(), await world.customer()
    today = datetime.now(UTC).date()
    await world.holding(survivor, product_type=H.PRODUCT_TYPE_SAVINGS_ACCOUNT, balance=world.money(100),
                        open_date=today)
    await world.holding(source, product_type=H.PRODUCT_TYPE_TERM_DEPOSIT, balance=world.money(250), open_date=today)
    await profile.MergeCustomers(identity_pb2.MergeCustomersRequest(
        name=survivor, source_customer=source,
        audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT)), metadata=bearer(Role.ADMIN))
    after = await world.feed_tail()

    done = await world.finished(await world.recompute(customers=[survivor]))
    assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    features = await world.features(survivor)
    assert (features.aum.units, features.product_count, features.product_type_count) == (350, 2, 2)
    events = await world.published(after, {f"{survivor}/features", f"{source}/features"}, 2)
    assert {(e.resource_name, e.change_type) for e in events} == {
        (f"{survivor}/features", change_event_pb2.CHANGE_TYPE_UPDATED),
        (f"{source}/features", change_event_pb2.CHANGE_TYPE_DELETED)}
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.features(source)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "CUSTOMER_MERGED"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.recompute(customers=[source])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_repeated_request_id_returns_the_first_operation(world) -> None:
    customer = await world.customer()
    request_id = str(uuid.uuid4())
    first = await world.recompute(customers=[customer], request_id=request_id)
    again = await world.recompute(customers=[customer], request_id=request_id)
    assert again.name == first.name
    assert (await world.finished(first)).state == operation_pb2.OPERATION_STATE_SUCCEEDED


async def test_every_bad_field_is_named_at_once_and_nothing_starts(world, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("operation")
    names = [f"customers/C{n}" for n in range(1001)]
    names[1] = "customer/C1"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.recompute(customers=names, request_id="not-a-uuid",
                              changed_since=datetime.now(UTC) + timedelta(days=1))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"customers", "customers[1]", "request_id", "changed_since"} <= set(field_violations(error.value))
    assert await count("operation") == before


async def test_an_unknown_customer_is_not_found_and_nothing_starts(world, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("operation")
    known = await world.customer()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.recompute(customers=[known, "customers/NO-SUCH-CUSTOMER"])
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "CUSTOMER_NOT_FOUND" and "customers[1]" in error.value.details()
    assert await count("operation") == before


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.RELATIONSHIP_MANAGER, Role.CHANNEL_APP])
async def test_only_the_platform_may_start_a_recomputation(world, role) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.recompute(metadata=bearer(role))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_cancelled_run_ends_cancelled(world, profile) -> None:
    started = await world.recompute()
    await profile.CancelOperation(operations_pb2.CancelOperationRequest(name=started.name), metadata=bearer(Role.ADMIN))
    done = await world.finished(started)
    assert done.state == operation_pb2.OPERATION_STATE_CANCELLED
