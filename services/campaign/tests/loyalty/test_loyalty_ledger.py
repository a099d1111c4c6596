"""The loyalty ledger through the real server on a real PostgreSQL: adjustments, the account, its
history, and the reconciliation of every movement against the balances, under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import loyalty_pb2
from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import customer_pb2
from crm_campaign.book import follower as book_follower
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations, row_counts

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ADMIN = bearer(Role.ADMIN, subject="admin-1")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
CHANNEL = bearer(Role.CHANNEL_APP, subject="mobile-app")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-1")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="CASE-1")
L = loyalty_pb2
LEDGER_TABLES = ("loyalty_account", "loyalty_transaction", "idempotency_key")


def new_customer() -> str:
    return f"customers/c-{uuid.uuid4().hex[:12]}"


async def adjust(campaigns: Any, customer: str, points: int, *, request_id: str = "", reason: str = "Goodwill",
                 metadata: Any = MARKETER) -> pb.AdjustLoyaltyPointsResponse:
    return await campaigns.AdjustLoyaltyPoints(pb.AdjustLoyaltyPointsRequest(
        customer=customer, points=points, reason=reason, request_id=request_id or str(uuid.uuid4()), audit=AUDIT),
        metadata=metadata)


async def account(campaigns: Any, customer: str, metadata: Any = ANALYST) -> L.LoyaltyAccount:
    return (await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(customer=customer, audit=AUDIT),
                                              metadata=metadata)).loyalty_account


async def test_an_unknown_customer_has_a_zero_basic_account(campaigns) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    found = await account(campaigns, customer)
    assert found.name == f"loyaltyAccounts/{customer.split('/')[1]}" and found.customer == customer
    assert (found.balance, found.lifetime_earned, found.level, found.points_to_next_level) == (
        0, 0, L.LOYALTY_LEVEL_BASIC, 5_000)
    assert not found.HasField("expiring_on") and not found.HasField("create_time")


async def test_adjustments_move_the_balance_the_level_and_the_history(campaigns) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    added = await adjust(campaigns, customer, 6_000, reason="Welcome bonus")
    assert added.transaction.type == L.LOYALTY_TRANSACTION_TYPE_ADJUSTED
    assert (added.transaction.points, added.transaction.balance_after) == (6_000, 6_000)
    assert added.transaction.actor == "marketer-a" and added.transaction.reason == "Welcome bonus"
    assert added.transaction.HasField("expire_on") and added.transaction.expire_on.month == 12
    assert added.loyalty_account.level == L.LOYALTY_LEVEL_SILVER
    assert added.loyalty_account.points_to_next_level == 14_000

    taken = await adjust(campaigns, customer, -1_500, metadata=ADMIN)
    assert taken.transaction.balance_after == 4_500 and not taken.transaction.HasField("expire_on")
    found = await account(campaigns, customer, metadata=CHANNEL)
    assert (found.balance, found.lifetime_earned, found.lifetime_redeemed) == (4_500, 6_000, 0)
    # Spending points never lowers the level; the first-earned points are the first spent.
    assert found.level == L.LOYALTY_LEVEL_SILVER
    assert (found.expiring_points, found.expiring_on) == (4_500, added.transaction.expire_on)

    listed = (await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
        customer=customer, audit=AUDIT), metadata=ANALYST)).transactions
    assert [t.name for t in listed] == [taken.transaction.name, added.transaction.name]


async def test_transactions_page_newest_first_and_filter_by_type(campaigns) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    made = [(await adjust(campaigns, customer, points)).transaction for points in (100, 200, -50, 300, 400)]
    pages: list[str] = []
    token = ""
    while True:
        page = await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
            customer=customer, page_size=2, page_token=token, audit=AUDIT), metadata=ANALYST)
        pages.extend(t.name for t in page.transactions)
        token = page.next_page_token
        if not token:
            break
    assert pages == [t.name for t in reversed(made)]
    redeemed_only = await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
        customer=customer, type=L.LOYALTY_TRANSACTION_TYPE_REDEEMED, audit=AUDIT), metadata=ANALYST)
    assert list(redeemed_only.transactions) == []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
            customer=customer, page_size=2, page_token=page.next_page_token or "forged", audit=AUDIT),
            metadata=ANALYST)
    assert "page_token" in field_violations(refused.value)


async def test_a_repeated_request_id_adjusts_once(campaigns) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    request_id = str(uuid.uuid4())
    first = await adjust(campaigns, customer, 250, request_id=request_id)
    again = await adjust(campaigns, customer, 250, request_id=request_id)
    assert again.transaction == first.transaction
    assert (await account(campaigns, customer)).balance == 250
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await adjust(campaigns, customer, 999, request_id=request_id)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(reused.value) == "REQUEST_ID_REUSED"


async def test_taking_more_than_the_balance_is_refused_and_changes_nothing(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    customer = new_customer()
    await adjust(campaigns, customer, 300)
    before = await row_counts(campaign_service, *LEDGER_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await adjust(campaigns, customer, -301)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "INSUFFICIENT_POINTS"
    assert await row_counts(campaign_service, *LEDGER_TABLES) == before
    assert (await account(campaigns, customer)).balance == 300
    # A customer with no account yet gets none from a refused deduction.
    with pytest.raises(grpc.aio.AioRpcError):
        await adjust(campaigns, new_customer(), -1)
    assert await row_counts(campaign_service, *LEDGER_TABLES) == before


async def test_bad_adjustments_name_every_field_and_change_nothing(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    before = await row_counts(campaign_service, *LEDGER_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await campaigns.AdjustLoyaltyPoints(pb.AdjustLoyaltyPointsRequest(
            customer="clients/1", points=0, reason="", request_id="not-a-uuid"), metadata=MARKETER)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"customer", "points", "reason", "request_id", "audit.purpose"}
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await adjust(campaigns, new_customer(), 1_000_001, reason="x" * 201, request_id="")
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # An empty request_id is filled in by the helper; the bounds are what is refused here.
    assert {"points", "reason"} <= set(field_violations(too_many.value))
    with pytest.raises(grpc.aio.AioRpcError) as no_key:
        await campaigns.AdjustLoyaltyPoints(pb.AdjustLoyaltyPointsRequest(
            customer=new_customer(), points=5, reason="Goodwill", audit=AUDIT), metadata=MARKETER)
    assert set(field_violations(no_key.value)) == {"request_id"}
    assert await row_counts(campaign_service, *LEDGER_TABLES) == before


@pytest.mark.parametrize("metadata", [ANALYST, CHANNEL, RM])
async def test_only_marketers_and_admins_adjust(campaigns, metadata) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await adjust(campaigns, new_customer(), 10, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_relationship_manager_reads_only_their_own_book(campaigns, campaign_service) -> None:  # type: ignore[no-untyped-def]
    customer, theirs, unknown = new_customer(), new_customer(), new_customer()
    _, runtime = campaign_service
    async with runtime.db.unit_of_work() as uow:  # profile's customer events name the managers
        for name, manager in ((customer, "rm-1"), (theirs, "rm-2")):
            event = change_event_pb2.ChangeEvent(resource_type=book_follower.CUSTOMER_TYPE, resource_name=name,
                                                 change_type=change_event_pb2.CHANGE_TYPE_UPDATED,
                                                 cursor=f"{uuid.uuid4().int % 10**9}.1")
            event.payload.Pack(customer_pb2.Customer(name=name, relationship_manager_id=manager))
            assert await book_follower.apply(uow, event)
    await adjust(campaigns, customer, 40)
    assert (await account(campaigns, customer, metadata=RM)).balance == 40
    listed = await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
        customer=customer, audit=AUDIT), metadata=RM)
    assert len(listed.transactions) == 1
    for outside in (theirs, unknown):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await account(campaigns, outside, metadata=RM)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(refused.value) == "CUSTOMER_OUTSIDE_BOOK"
    customer = unknown
    async with runtime.db.engine.connect() as connection:
        outcomes = (await connection.execute(sa.text(
            "SELECT action, outcome FROM audit_record WHERE resource_name = :name"), {"name": customer})).all()
    assert [tuple(row) for row in outcomes] == [("loyalty.read", "DENIED")]


async def test_reads_need_a_purpose(campaigns) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(customer=new_customer()), metadata=ANALYST)
    assert set(field_violations(refused.value)) == {"audit.purpose"}


async def test_the_ledger_reconciles_with_the_balances_under_concurrent_movements(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    """Concurrent deductions race for the same points: exactly as many succeed as the balance
    covers, none overdraws, and every balance equals the sum of its account's movements."""
    customers = [new_customer() for _ in range(3)]
    for customer in customers:
        await adjust(campaigns, customer, 1_000)

    async def attempt(customer: str, points: int) -> bool:
        try:
            await adjust(campaigns, customer, points)
        except grpc.aio.AioRpcError as error:
            assert error_reason(error) == "INSUFFICIENT_POINTS"
            return False
        return True

    moves = [(customer, -100) for customer in customers for _ in range(15)]
    moves += [(customers[2], 50) for _ in range(4)]
    # Reversals race with the rest: a 300-point grant to customers[1], reversed once whatever happens.
    granted = await adjust(campaigns, customers[1], 300)
    await adjust(campaigns, customers[1], -300)  # keeps the race for customers[1] at 1,000 points

    async def take_back() -> None:
        try:
            await campaigns.ReverseLoyaltyTransaction(pb.ReverseLoyaltyTransactionRequest(
                name=granted.transaction.name, reason="Granted twice", request_id=str(uuid.uuid4()), audit=AUDIT),
                metadata=MARKETER)
        except grpc.aio.AioRpcError as error:
            assert error_reason(error) in {"ALREADY_REVERSED", "INSUFFICIENT_POINTS"}

    outcomes, _ = await asyncio.gather(
        asyncio.gather(*(attempt(customer, points) for customer, points in moves)),
        asyncio.gather(*(take_back() for _ in range(3))))
    succeeded = [move for move, ok in zip(moves, outcomes, strict=True) if ok]
    assert sum(1 for customer, points in succeeded if customer == customers[0] and points < 0) == 10
    assert sum(1 for customer, points in succeeded if customer == customers[1] and points < 0) in (7, 10)
    assert sum(1 for customer, points in succeeded if points > 0) == 4

    ids = [c.split("/")[1] for c in customers]
    _, runtime = campaign_service
    async with runtime.db.engine.connect() as connection:
        rows = (await connection.execute(sa.text("""
            SELECT a.customer_id, a.balance, a.lifetime_earned, a.lifetime_redeemed,
                   coalesce(sum(t.points), 0) AS total,
                   coalesce(sum(t.points) FILTER (WHERE t.points > 0 AND t.type IN (1, 2)), 0)
                   + coalesce(sum(t.points) FILTER (WHERE t.type = 5 AND t.points < 0), 0) AS added,
                   count(*) FILTER (WHERE t.type = 5) AS reversals,
                   coalesce(-sum(t.points) FILTER (WHERE t.type = 3), 0) AS redeemed,
                   (SELECT balance_after FROM loyalty_transaction l WHERE l.customer_id = a.customer_id
                     ORDER BY seq DESC LIMIT 1) AS last_balance,
                   bool_and(t.balance_after >= 0) AS never_negative
            FROM loyalty_account a JOIN loyalty_transaction t USING (customer_id)
            WHERE a.customer_id = ANY(:ids) GROUP BY a.customer_id"""), {"ids": ids})).all()
        # Each transaction's balance_after is the running sum of the account's movements in order.
        drift = (await connection.execute(sa.text("""
            SELECT count(*) FROM (
              SELECT balance_after, sum(points) OVER (PARTITION BY customer_id ORDER BY seq) AS running
              FROM loyalty_transaction WHERE customer_id = ANY(:ids)) s
            WHERE balance_after <> running"""), {"ids": ids})).scalar_one()
    assert len(rows) == 3 and drift == 0
    for row in rows:
        assert row.balance == row.total == row.last_balance and row.never_negative
        assert (row.lifetime_earned, row.lifetime_redeemed) == (row.added, row.redeemed)
    balances = {row.customer_id: row.balance for row in rows}
    assert {row.customer_id: row.reversals for row in rows}[ids[1]] <= 1
    assert balances[ids[0]] == balances[ids[1]] == 0
    assert balances[ids[2]] == 1_000 + 4 * 50 - 100 * sum(
        1 for customer, points in succeeded if customer == customers[2] and points < 0)


async def reverse(campaigns: Any, name: str, *, request_id: str = "", metadata: Any = MARKETER
                  ) -> pb.ReverseLoyaltyTransactionResponse:
    return await campaigns.ReverseLoyaltyTransaction(pb.ReverseLoyaltyTransactionRequest(
        name=name, reason="Deposit withdrawn in cooling-off period", request_id=request_id or str(uuid.uuid4()),
        audit=AUDIT), metadata=metadata)


async def test_a_reversal_takes_a_movement_back_exactly_once(campaigns, campaign_service) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    kept = await adjust(campaigns, customer, 200)
    wrong = await adjust(campaigns, customer, 6_000)
    assert wrong.loyalty_account.level == L.LOYALTY_LEVEL_SILVER
    request_id = str(uuid.uuid4())
    reversed_ = await reverse(campaigns, wrong.transaction.name, request_id=request_id)
    reversal = reversed_.transaction
    assert (reversal.type, reversal.points, reversal.balance_after) == (L.LOYALTY_TRANSACTION_TYPE_REVERSED, -6_000,
                                                                        200)
    assert reversal.reversed_transaction == wrong.transaction.name and not reversal.HasField("expire_on")
    after = reversed_.loyalty_account
    assert (after.balance, after.lifetime_earned, after.level) == (200, 200, L.LOYALTY_LEVEL_BASIC)
    assert (after.expiring_points, after.expiring_on) == (200, kept.transaction.expire_on)
    # A retry with the same key replays the reversal; another key is a second reversal, refused.
    assert (await reverse(campaigns, wrong.transaction.name, request_id=request_id)).transaction == reversal
    before = await row_counts(campaign_service, *LEDGER_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await reverse(campaigns, wrong.transaction.name)
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(twice.value) == "ALREADY_REVERSED"
    with pytest.raises(grpc.aio.AioRpcError) as of_reversal:
        await reverse(campaigns, reversal.name)
    assert error_reason(of_reversal.value) == "NOT_REVERSIBLE"
    assert await row_counts(campaign_service, *LEDGER_TABLES) == before
    assert (await account(campaigns, customer)).balance == 200


async def test_spent_points_cannot_be_reversed_and_bad_reversals_change_nothing(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    customer = new_customer()
    added = await adjust(campaigns, customer, 500)
    await adjust(campaigns, customer, -400)
    before = await row_counts(campaign_service, *LEDGER_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as spent:
        await reverse(campaigns, added.transaction.name)
    assert spent.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(spent.value) == "INSUFFICIENT_POINTS"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await reverse(campaigns, f"loyaltyAccounts/{customer.split('/')[1]}/transactions/{uuid.uuid4()}")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(missing.value) == "LOYALTY_TRANSACTION_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await campaigns.ReverseLoyaltyTransaction(pb.ReverseLoyaltyTransactionRequest(name=added.transaction.name
                                                                                      + "/x"), metadata=MARKETER)
    assert set(field_violations(bad.value)) == {"name", "reason", "request_id", "audit.purpose"}
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await reverse(campaigns, added.transaction.name, metadata=CHANNEL)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await row_counts(campaign_service, *LEDGER_TABLES) == before


async def test_concurrent_reversals_of_one_movement_take_it_back_once(campaigns) -> None:  # type: ignore[no-untyped-def]
    customer = new_customer()
    added = await adjust(campaigns, customer, 700)
    await adjust(campaigns, customer, 100)

    async def attempt() -> str:
        try:
            await reverse(campaigns, added.transaction.name)
        except grpc.aio.AioRpcError as error:
            return error_reason(error)
        return "OK"

    outcomes = await asyncio.gather(*(attempt() for _ in range(8)))
    assert sorted(outcomes) == ["ALREADY_REVERSED"] * 7 + ["OK"]
    found = await account(campaigns, customer)
    assert (found.balance, found.lifetime_earned) == (100, 100)
