"""ProfileService holding RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.type import date_pb2, money_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import customer_pb2, holding_pb2, identity_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import (
    bearer,
    change_feed,
    error_reason,
    field_violations,
    next_events,
    row_counter,
    rows_about,
    tail_cursor,
)

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
CORE_BANKING = bearer(Role.SERVICE, subject="core-banking")
ADMIN = bearer(Role.ADMIN)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
OTHER_RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-other")
MARKETER = bearer(Role.MARKETER)
TODAY = datetime.now(UTC).date()


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def cny(units: int, nanos: int = 0, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)


def term_deposit(**overrides: object) -> holding_pb2.Holding:
    holding = holding_pb2.Holding(
        holding_id=f"TD{uuid.uuid4().hex[:10].upper()}", product_code="TD-3Y-CNY",
        product_type=holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT, currency="CNY", balance=cny(50_000, 500_000_000),
        open_date=day(TODAY - timedelta(days=400)), maturity_date=day(TODAY + timedelta(days=30)),
        status=holding_pb2.HOLDING_STATUS_ACTIVE, source_system="core-banking",
    )
    for field, value in overrides.items():
        if isinstance(value, (date_pb2.Date, money_pb2.Money, timestamp_pb2.Timestamp)):
            getattr(holding, field).CopyFrom(value)
        elif value is None:
            holding.ClearField(field)
        else:
            setattr(holding, field, value)
    return holding


@pytest.fixture
async def customer(profile, new_customer) -> customer_pb2.Customer:  # type: ignore[no-untyped-def]
    onboarded = new_customer(onboarded_on=day(TODAY - timedelta(days=1000)))
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=onboarded), metadata=ADMIN)).customer


async def create(profile, parent, holding, *, metadata=CORE_BANKING, request_id=""):  # type: ignore[no-untyped-def]
    response = await profile.CreateHolding(holding_pb2.CreateHoldingRequest(
        parent=parent, holding=holding, request_id=request_id, audit=AUDIT), metadata=metadata)
    return response.holding


async def update(profile, holding, paths, *, metadata=CORE_BANKING):  # type: ignore[no-untyped-def]
    response = await profile.UpdateHolding(holding_pb2.UpdateHoldingRequest(
        holding=holding, update_mask=field_mask_pb2.FieldMask(paths=paths), audit=AUDIT), metadata=metadata)
    return response.holding


async def get(profile, name, *, metadata=RM):  # type: ignore[no-untyped-def]
    return (await profile.GetHolding(holding_pb2.GetHoldingRequest(name=name, audit=AUDIT), metadata=metadata)).holding


async def get_customer(profile, name):  # type: ignore[no-untyped-def]
    return (await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=AUDIT), metadata=ADMIN)).customer


async def test_create_then_get_returns_the_holding_in_minor_units(profile, customer, profile_service) -> None:
    created = await create(profile, customer.name, term_deposit())
    assert created.name == f"{customer.name}/holdings/{created.holding_id}"
    assert created.etag == "1"
    assert (created.balance.units, created.balance.nanos) == (50_000, 500_000_000)
    assert created.reporting_balance == created.balance  # CNY is the reporting currency
    assert created.HasField("balance_time") and created.HasField("create_time")
    fetched = await get(profile, created.name)
    assert fetched == created
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        minor = await connection.fetchval("SELECT balance_minor FROM holding WHERE holding_id = $1", created.holding_id)
    assert minor == 5_000_050  # fen: integer minor units, never a float


async def test_holding_id_is_generated_when_empty(profile, customer) -> None:
    created = await create(profile, customer.name, term_deposit(holding_id=""))
    assert uuid.UUID(created.holding_id)


async def test_foreign_currency_has_no_reporting_balance_without_a_rate(profile, customer) -> None:
    created = await create(profile, customer.name, term_deposit(currency="USD", balance=cny(1200, currency="USD")))
    assert created.balance.currency_code == "USD" and not created.HasField("reporting_balance")


async def test_create_is_idempotent_for_a_repeated_request_id(profile, customer) -> None:
    request_id = str(uuid.uuid4())
    first = await create(profile, customer.name, term_deposit(holding_id=""), request_id=request_id)
    again = await create(profile, customer.name, term_deposit(holding_id=""), request_id=request_id)
    assert again.name == first.name


async def test_create_of_a_taken_holding_id_is_already_exists(profile, customer) -> None:
    holding = term_deposit()
    await create(profile, customer.name, holding)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, customer.name, holding)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value) == "HOLDING_EXISTS"


async def test_create_for_an_unknown_customer_is_not_found(profile, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("holding")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, "customers/NO-SUCH-CUSTOMER", term_deposit())
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "CUSTOMER_NOT_FOUND"
    assert await count("holding") == before


@pytest.mark.parametrize(("overrides", "field"), [
    ({"currency": "RMB"}, "holding.currency"),
    ({"currency": "cny"}, "holding.currency"),
    ({"balance": cny(10, currency="USD")}, "holding.balance.currency_code"),
    ({"balance": cny(10, 1)}, "holding.balance"),  # a billionth of a yuan: finer than a fen
    ({"balance": cny(-10)}, "holding.balance"),
    ({"balance": cny(10, -5)}, "holding.balance"),  # units and nanos of different signs
    ({"balance": None}, "holding.balance"),
    ({"product_code": ""}, "holding.product_code"),
    ({"product_code": "TD 3Y"}, "holding.product_code"),
    ({"product_type": holding_pb2.PRODUCT_TYPE_UNSPECIFIED}, "holding.product_type"),
    ({"status": holding_pb2.HOLDING_STATUS_UNSPECIFIED}, "holding.status"),
    ({"holding_id": "no/slashes"}, "holding.holding_id"),
    ({"source_system": "Core Banking"}, "holding.source_system"),
    ({"open_date": None}, "holding.open_date"),
    ({"open_date": day(TODAY + timedelta(days=2))}, "holding.open_date"),
    ({"maturity_date": day(TODAY - timedelta(days=500))}, "holding.maturity_date"),
    ({"open_date": date_pb2.Date(year=2024, month=2, day=30)}, "holding.open_date"),
    ({"close_date": day(TODAY)}, "holding.close_date"),  # a close date without CLOSED status
    ({"status": holding_pb2.HOLDING_STATUS_CLOSED}, "holding.close_date"),  # CLOSED without a close date
])
async def test_bad_holding_is_invalid_argument_naming_the_field_and_changes_nothing(
        profile, customer, profile_service, overrides, field) -> None:
    count = row_counter(profile_service)
    before = (await count("holding"), await rows_about(profile_service, "outbox_event", customer.name))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, customer.name, term_deposit(**overrides))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert (await count("holding"), await rows_about(profile_service, "outbox_event", customer.name)) == before


async def test_every_bad_field_is_named_at_once(profile, customer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, customer.name, term_deposit(currency="XXX", product_code="", source_system=""))
    assert {"holding.currency", "holding.product_code", "holding.source_system"} <= set(field_violations(error.value))


async def test_bad_parent_request_id_and_missing_audit_are_invalid_argument(profile, customer) -> None:
    for request, field in [
        (holding_pb2.CreateHoldingRequest(parent="clients/1", holding=term_deposit(), audit=AUDIT), "parent"),
        (holding_pb2.CreateHoldingRequest(parent=customer.name, holding=term_deposit(), audit=AUDIT, request_id="x"),
         "request_id"),
        (holding_pb2.CreateHoldingRequest(parent=customer.name, holding=term_deposit()), "audit.purpose"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await profile.CreateHolding(request, metadata=CORE_BANKING)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(error.value)


async def test_only_platform_callers_write_holdings(profile, customer) -> None:
    for metadata in (RM, MARKETER, bearer(Role.CHANNEL_APP)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create(profile, customer.name, term_deposit(), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_relationship_manager_reads_holdings_of_their_book_only(profile, customer) -> None:
    created = await create(profile, customer.name, term_deposit())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetHolding(holding_pb2.GetHoldingRequest(name=created.name, audit=AUDIT), metadata=OTHER_RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error.value) == "OUTSIDE_BOOK"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListHoldings(holding_pb2.ListHoldingsRequest(parent=customer.name, audit=AUDIT),
                                   metadata=OTHER_RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_get_of_a_missing_holding_is_not_found_and_reads_are_audited(profile, customer, profile_service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetHolding(holding_pb2.GetHoldingRequest(name=f"{customer.name}/holdings/NOPE", audit=AUDIT),
                                 metadata=RM)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "HOLDING_NOT_FOUND"
    created = await create(profile, customer.name, term_deposit())
    await profile.GetHolding(holding_pb2.GetHoldingRequest(name=created.name, audit=AUDIT), metadata=RM)
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        actions = await connection.fetch(
            "SELECT action, principal, purpose FROM audit_record WHERE resource_name = $1 ORDER BY seq", created.name)
    assert [tuple(a) for a in actions] == [("holding.create", "core-banking", "CUSTOMER_SERVICE"),
                                           ("holding.read", "rm-007", "CUSTOMER_SERVICE")]


async def test_list_pages_through_one_customers_holdings_with_filters(profile, customer) -> None:
    ids = sorted([f"H{i:02d}" for i in range(5)])
    for i, holding_id in enumerate(ids):
        await create(profile, customer.name, term_deposit(
            holding_id=holding_id,
            product_type=holding_pb2.PRODUCT_TYPE_FUND if i % 2 else holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT))
    seen, token = [], ""
    while True:
        page = await profile.ListHoldings(holding_pb2.ListHoldingsRequest(
            parent=customer.name, page_size=2, page_token=token, audit=AUDIT), metadata=RM)
        seen += [h.holding_id for h in page.holdings]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    funds = await profile.ListHoldings(holding_pb2.ListHoldingsRequest(
        parent=customer.name, product_types=[holding_pb2.PRODUCT_TYPE_FUND], audit=AUDIT), metadata=RM)
    assert [h.holding_id for h in funds.holdings] == ["H01", "H03"]
    with pytest.raises(grpc.aio.AioRpcError) as error:  # a token is bound to its filter
        first = await profile.ListHoldings(
            holding_pb2.ListHoldingsRequest(parent=customer.name, page_size=1, audit=AUDIT), metadata=RM)
        await profile.ListHoldings(holding_pb2.ListHoldingsRequest(
            parent=customer.name, page_size=1, page_token=first.next_page_token,
            statuses=[holding_pb2.HOLDING_STATUS_ACTIVE], audit=AUDIT), metadata=RM)
    assert "page_token" in field_violations(error.value)


async def test_list_across_customers_by_maturity_keeps_a_relationship_manager_to_their_book(
        profile, new_customer) -> None:
    mine = (await profile.CreateCustomer(pb.CreateCustomerRequest(
        customer=new_customer(relationship_manager_id="rm-maturity")), metadata=ADMIN)).customer
    theirs = (await profile.CreateCustomer(pb.CreateCustomerRequest(
        customer=new_customer(relationship_manager_id="rm-elsewhere")), metadata=ADMIN)).customer
    maturity = TODAY + timedelta(days=3650)  # far out: no other test's holdings mature then
    for owner in (mine, theirs):
        await create(profile, owner.name, term_deposit(maturity_date=day(maturity)))
    request = holding_pb2.ListHoldingsRequest(parent="customers/-", maturity_date_from=day(maturity),
                                     maturity_date_to=day(maturity), audit=AUDIT)
    everyone = await profile.ListHoldings(request, metadata=ADMIN)
    assert {h.name.rsplit("/", 2)[0] for h in everyone.holdings} == {mine.name, theirs.name}
    book = await profile.ListHoldings(request, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-maturity"))
    assert [h.name.rsplit("/", 2)[0] for h in book.holdings] == [mine.name]


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"page_size": -1}, "page_size"),
    ({"maturity_date_from": day(TODAY), "maturity_date_to": day(TODAY - timedelta(days=1))}, "maturity_date_to"),
    ({"statuses": [42]}, "statuses[0]"),
    ({"parent": "customers"}, "parent"),
])
async def test_bad_list_request_is_invalid_argument(profile, customer, request_fields, field) -> None:
    request = holding_pb2.ListHoldingsRequest(parent=customer.name, audit=AUDIT)
    for name, value in request_fields.items():
        if isinstance(value, list):
            getattr(request, name).extend(value)
        elif isinstance(value, date_pb2.Date):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListHoldings(request, metadata=RM)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_update_changes_the_masked_fields_and_publishes_the_holding(profile, customer) -> None:
    open_feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    after = await tail_cursor(open_feed)
    created = await create(profile, customer.name, term_deposit())
    changed = term_deposit(name=created.name, etag=created.etag, balance=cny(60_000),
                           product_code="IGNORED-NOT-IN-MASK")
    updated = await update(profile, changed, ["balance"])
    assert (updated.balance.units, updated.etag, updated.product_code) == (60_000, "2", "TD-3Y-CNY")
    assert updated.balance_time.ToDatetime() >= created.balance_time.ToDatetime()
    events = await next_events(open_feed, after, 2, resource_types=["crm.profile.v1.Holding"])
    assert [(e.resource_name, e.change_type) for e in events] == [
        (created.name, change_event_pb2.CHANGE_TYPE_CREATED), (created.name, change_event_pb2.CHANGE_TYPE_UPDATED)]
    payload = holding_pb2.Holding()
    events[1].payload.Unpack(payload)
    assert payload.balance.units == 60_000 and payload.maturity_date == created.maturity_date


async def test_update_with_a_stale_etag_is_aborted_and_changes_nothing(profile, customer) -> None:
    created = await create(profile, customer.name, term_deposit())
    await update(profile, term_deposit(name=created.name, etag=created.etag, product_code="TD-5Y-CNY"),
                 ["product_code"])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, term_deposit(name=created.name, etag=created.etag, balance=cny(1)), ["balance"])
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert error_reason(error.value) == "ETAG_MISMATCH"
    current = await get(profile, created.name)
    assert (current.balance.units, current.product_code, current.etag) == (50_000, "TD-5Y-CNY", "2")


async def test_an_older_balance_time_is_stale_balance(profile, customer) -> None:
    now = datetime.now(UTC)
    created = await create(profile, customer.name, term_deposit(
        balance_time=timestamp_pb2.Timestamp(seconds=int(now.timestamp()))))
    older = timestamp_pb2.Timestamp(seconds=int((now - timedelta(hours=1)).timestamp()))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, term_deposit(name=created.name, balance=cny(1), balance_time=older),
                     ["balance", "balance_time"])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "STALE_BALANCE"
    current = await get(profile, created.name)
    assert current.balance.units == 50_000


@pytest.mark.parametrize(("paths", "changes", "field"), [
    (["currency"], {"currency": "USD"}, "update_mask"),  # immutable
    (["open_date"], {}, "update_mask"),
    ([], {}, "update_mask"),
    (["maturity_date"], {"maturity_date": day(TODAY - timedelta(days=1000))}, "holding.maturity_date"),
    (["balance"], {"balance": cny(5, currency="EUR")}, "holding.balance.currency_code"),
    (["status"], {"status": holding_pb2.HOLDING_STATUS_CLOSED}, "holding.close_date"),
])
async def test_bad_update_is_invalid_argument_and_changes_nothing(profile, customer, paths, changes, field) -> None:
    created = await create(profile, customer.name, term_deposit())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, term_deposit(name=created.name, **changes), paths)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    current = await get(profile, created.name)
    assert current == created


async def test_closing_the_last_open_holding_closes_the_relationship_and_reopening_clears_it(
        profile, customer) -> None:
    first = await create(profile, customer.name, term_deposit())
    second = await create(profile, customer.name, term_deposit())
    closed_on = [day(TODAY - timedelta(days=3)), day(TODAY - timedelta(days=1))]
    await update(profile, term_deposit(name=first.name, status=holding_pb2.HOLDING_STATUS_CLOSED,
                                       close_date=closed_on[1]), ["status", "close_date"])
    assert not (await get_customer(profile, customer.name)).HasField("closed_on")
    await update(profile, term_deposit(name=second.name, status=holding_pb2.HOLDING_STATUS_CLOSED,
                                       close_date=closed_on[0]), ["status", "close_date"])
    # The relationship ended when the last holding closed: the latest close date of them all.
    assert (await get_customer(profile, customer.name)).closed_on == closed_on[1]
    await update(profile, term_deposit(name=second.name, close_date=None), ["status", "close_date"])
    assert not (await get_customer(profile, customer.name)).HasField("closed_on")


async def test_delete_removes_the_holding_and_publishes_a_deletion(profile, customer) -> None:
    open_feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    created = await create(profile, customer.name, term_deposit())
    after = await tail_cursor(open_feed)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DeleteHolding(holding_pb2.DeleteHoldingRequest(name=created.name, etag="7", audit=AUDIT),
                                    metadata=CORE_BANKING)
    assert error.value.code() == grpc.StatusCode.ABORTED
    await profile.DeleteHolding(holding_pb2.DeleteHoldingRequest(name=created.name, etag=created.etag, audit=AUDIT),
                                metadata=CORE_BANKING)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetHolding(holding_pb2.GetHoldingRequest(name=created.name, audit=AUDIT), metadata=RM)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    events = await next_events(open_feed, after, 1, resource_types=["crm.profile.v1.Holding"])
    assert [(e.resource_name, e.change_type) for e in events] == [
        (created.name, change_event_pb2.CHANGE_TYPE_DELETED)]
    with pytest.raises(grpc.aio.AioRpcError) as error:  # a retry finds nothing left to delete
        await profile.DeleteHolding(holding_pb2.DeleteHoldingRequest(name=created.name, audit=AUDIT),
                                    metadata=CORE_BANKING)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_holdings_of_a_merged_or_erased_customer_are_not_named_through_it(
        profile, profile_service, new_customer, customer) -> None:
    survivor = (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer()),
                                             metadata=ADMIN)).customer
    kept = await create(profile, customer.name, term_deposit())
    await profile.MergeCustomers(identity_pb2.MergeCustomersRequest(
        name=survivor.name, source_customer=customer.name, audit=AUDIT), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, customer.name, term_deposit())
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "CUSTOMER_MERGED"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(profile, kept.name, metadata=ADMIN)
    assert error_reason(error.value) == "CUSTOMER_MERGED"
    _, runtime = profile_service
    async with runtime.db.raw() as connection:  # the state EraseCustomer leaves behind
        await connection.execute("UPDATE customer SET state = 3, merged_into = '' WHERE customer_id = $1",
                                 customer.customer_id)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, term_deposit(name=kept.name, balance=cny(1)), ["balance"])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "CUSTOMER_ERASED"


@pytest.mark.parametrize("name", ["customers/C1", "customers/C1/holdings/", "customers/C1/holdings/a/b", "holdings/H1"])
async def test_malformed_holding_names_are_invalid_argument(profile, name) -> None:
    calls = [
        (profile.GetHolding(holding_pb2.GetHoldingRequest(name=name, audit=AUDIT), metadata=RM), "name"),
        (profile.DeleteHolding(holding_pb2.DeleteHoldingRequest(name=name, audit=AUDIT), metadata=CORE_BANKING),
         "name"),
        (update(profile, term_deposit(name=name, balance=cny(1)), ["balance"]), "holding.name"),
    ]
    for call, field in calls:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(error.value)
