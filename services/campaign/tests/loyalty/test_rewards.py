"""The reward catalogue and redemptions through the real server on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.type import interval_pb2

from crm.campaign.v1 import campaign_pb2, loyalty_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations, row_counts

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
CHANNEL = bearer(Role.CHANNEL_APP, subject="mobile-app")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-1")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
L = loyalty_pb2
TABLES = ("loyalty_account", "loyalty_transaction", "redemption", "idempotency_key")


def new_customer() -> str:
    return f"customers/c-{uuid.uuid4().hex[:12]}"


def within(start: timedelta | None, end: timedelta | None) -> interval_pb2.Interval:
    now = datetime.now(UTC)
    interval = interval_pb2.Interval()
    if start is not None:
        interval.start_time.FromDatetime(now + start)
    if end is not None:
        interval.end_time.FromDatetime(now + end)
    return interval


def make_reward(**fields: Any) -> L.Reward:
    values: dict[str, Any] = {"reward_id": f"lounge-{uuid.uuid4().hex[:10]}", "display_name": "Airport lounge pass",
                              "description": "One visit.", "points_cost": 300}
    values.update(fields)
    return L.Reward(**values)


async def create(campaigns: Any, reward: L.Reward, request_id: str = "") -> L.Reward:
    return (await campaigns.CreateReward(pb.CreateRewardRequest(reward=reward, request_id=request_id),
                                         metadata=MARKETER)).reward


async def fund(campaigns: Any, customer: str, points: int) -> None:
    await campaigns.AdjustLoyaltyPoints(pb.AdjustLoyaltyPointsRequest(
        customer=customer, points=points, reason="Opening", request_id=str(uuid.uuid4()), audit=AUDIT),
        metadata=MARKETER)


def redeem_request(customer: str, reward: str, quantity: int = 1, request_id: str = "") -> pb.RedeemRewardRequest:
    return pb.RedeemRewardRequest(customer=customer, reward=reward, quantity=quantity,
                                  channel=campaign_pb2.CHANNEL_MOBILE_APP,
                                  request_id=request_id or str(uuid.uuid4()), audit=AUDIT)


async def everything(campaigns: Any, **filters: Any) -> list[L.Reward]:
    found: list[L.Reward] = []
    token = ""
    while True:
        page = await campaigns.ListRewards(pb.ListRewardsRequest(page_size=3, page_token=token, **filters),
                                           metadata=CHANNEL)
        found.extend(page.rewards)
        token = page.next_page_token
        if not token:
            return found


async def test_the_catalogue_lists_in_display_name_order_with_availability(campaigns) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:6]
    made = [
        await create(campaigns, make_reward(display_name=f"{tag} C cinema tickets", points_cost=900)),
        await create(campaigns, make_reward(display_name=f"{tag} A airport lounge", points_cost=300,
                                            limited_quantity=True, remaining_quantity=0)),
        await create(campaigns, make_reward(display_name=f"{tag} B bookshop voucher", points_cost=200,
                                            available_period=within(timedelta(days=1), None))),
        await create(campaigns, make_reward(display_name=f"{tag} D dinner for two", points_cost=5_000,
                                            limited_quantity=True, remaining_quantity=5,
                                            available_period=within(-timedelta(days=1), timedelta(days=9)))),
    ]
    assert made[0].name == f"rewards/{made[0].reward_id}" and made[0].available
    assert not made[1].available and not made[2].available and made[3].available
    listed = [r for r in await everything(campaigns) if r.display_name.startswith(tag)]
    assert [r.display_name[len(tag) + 1] for r in listed] == ["A", "B", "C", "D"]
    assert listed[3] == made[3]
    available = [r.display_name[len(tag) + 1] for r in await everything(campaigns, available_only=True)
                 if r.display_name.startswith(tag)]
    assert available == ["C", "D"]
    cheap = [r.display_name[len(tag) + 1] for r in await everything(campaigns, max_points_cost=900)
             if r.display_name.startswith(tag)]
    assert cheap == ["A", "B", "C"]


async def test_creating_a_reward_is_idempotent_and_checked(campaigns) -> None:  # type: ignore[no-untyped-def]
    reward = make_reward()
    request_id = str(uuid.uuid4())
    first = await create(campaigns, reward, request_id)
    assert await create(campaigns, reward, request_id) == first
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await create(campaigns, reward)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(taken.value) == "REWARD_EXISTS"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await create(campaigns, L.Reward(reward_id="9 Bad", display_name="", points_cost=0, remaining_quantity=3,
                                         available_period=within(timedelta(days=2), timedelta(days=1))))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {
        "reward.reward_id", "reward.display_name", "reward.points_cost", "reward.remaining_quantity",
        "reward.available_period.end_time"}
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await campaigns.CreateReward(pb.CreateRewardRequest(reward=make_reward()), metadata=ANALYST)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_redeeming_spends_points_takes_stock_and_issues_a_voucher(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    reward = await create(campaigns, make_reward(points_cost=300, limited_quantity=True, remaining_quantity=5))
    customer = new_customer()
    await fund(campaigns, customer, 1_000)
    request = redeem_request(customer, reward.name, quantity=2)
    redeemed = await campaigns.RedeemReward(request, metadata=CHANNEL)
    redemption = redeemed.redemption
    assert redemption.name.startswith(f"loyaltyAccounts/{customer.split('/')[1]}/redemptions/")
    assert (redemption.reward, redemption.quantity, redemption.points) == (reward.name, 2, 600)
    assert 8 <= len(redemption.voucher_code) <= 32
    assert (redeemed.loyalty_account.balance, redeemed.loyalty_account.lifetime_redeemed) == (400, 600)
    history = (await campaigns.ListLoyaltyTransactions(pb.ListLoyaltyTransactionsRequest(
        customer=customer, type=L.LOYALTY_TRANSACTION_TYPE_REDEEMED, audit=AUDIT), metadata=ANALYST)).transactions
    assert [(t.name, t.points, t.balance_after, t.source) for t in history] == [
        (redemption.transaction, -600, 400, reward.name)]
    # A retry with the same request id returns the first redemption without spending again.
    assert (await campaigns.RedeemReward(request, metadata=CHANNEL)).redemption == redemption
    listed = [r for r in await everything(campaigns) if r.reward_id == reward.reward_id]
    assert listed[0].remaining_quantity == 3
    _, runtime = campaign_service
    async with runtime.db.engine.connect() as connection:
        audited = (await connection.execute(sa.text(
            "SELECT count(*) FROM audit_record WHERE resource_name = :name AND action = 'loyalty.redeem'"),
            {"name": customer})).scalar_one()
    assert audited == 1


async def test_redeeming_more_than_the_balance_is_refused_and_changes_nothing(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    reward = await create(campaigns, make_reward(points_cost=300, limited_quantity=True, remaining_quantity=5))
    customer = new_customer()
    await fund(campaigns, customer, 500)
    before = await row_counts(campaign_service, *TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await campaigns.RedeemReward(redeem_request(customer, reward.name, quantity=2), metadata=CHANNEL)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "INSUFFICIENT_POINTS"
    assert await row_counts(campaign_service, *TABLES) == before
    listed = [r for r in await everything(campaigns) if r.reward_id == reward.reward_id]
    assert listed[0].remaining_quantity == 5
    balance = (await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(customer=customer, audit=AUDIT),
                                                 metadata=CHANNEL)).loyalty_account.balance
    assert balance == 500


@pytest.mark.parametrize("fields", [
    {"limited_quantity": True, "remaining_quantity": 1},  # asks for 2
    {"available_period": within(timedelta(days=1), None)},
    {"available_period": within(-timedelta(days=3), -timedelta(days=1))},
])
async def test_an_unavailable_reward_is_refused(campaigns, campaign_service, fields) -> None:  # type: ignore[no-untyped-def]
    reward = await create(campaigns, make_reward(points_cost=10, **fields))
    customer = new_customer()
    await fund(campaigns, customer, 1_000)
    before = await row_counts(campaign_service, *TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await campaigns.RedeemReward(redeem_request(customer, reward.name, quantity=2), metadata=CHANNEL)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "REWARD_UNAVAILABLE"
    assert await row_counts(campaign_service, *TABLES) == before


async def test_bad_redemptions_name_every_field(campaigns, campaign_service) -> None:  # type: ignore[no-untyped-def]
    before = await row_counts(campaign_service, *TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await campaigns.RedeemReward(pb.RedeemRewardRequest(customer="", reward="prizes/x", quantity=101),
                                     metadata=CHANNEL)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {"customer", "reward", "quantity", "channel", "request_id",
                                                "audit.purpose"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await campaigns.RedeemReward(redeem_request(new_customer(), "rewards/no-such-reward"), metadata=CHANNEL)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and error_reason(missing.value) == "REWARD_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await campaigns.RedeemReward(redeem_request(new_customer(), "rewards/any"), metadata=RM)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as not_allowed:
        await campaigns.RedeemReward(redeem_request(new_customer(), "rewards/any"), metadata=ANALYST)
    assert not_allowed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await row_counts(campaign_service, *TABLES) == before


async def test_concurrent_redemptions_never_overdraw_points_or_stock(  # type: ignore[no-untyped-def]
        campaigns, campaign_service) -> None:
    """Two customers race for a reward with 6 units; each can afford 4. Exactly 6 redemptions
    succeed, no balance or stock goes negative, and the ledger still sums to the balances."""
    reward = await create(campaigns, make_reward(points_cost=100, limited_quantity=True, remaining_quantity=6))
    customers = [new_customer(), new_customer()]
    for customer in customers:
        await fund(campaigns, customer, 400)

    async def attempt(customer: str) -> str:
        try:
            await campaigns.RedeemReward(redeem_request(customer, reward.name), metadata=CHANNEL)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            return error_reason(error)
        return "OK"

    outcomes = await asyncio.gather(*(attempt(customer) for customer in customers for _ in range(6)))
    assert outcomes.count("OK") == 6
    ids = [c.split("/")[1] for c in customers]
    _, runtime = campaign_service
    async with runtime.db.engine.connect() as connection:
        remaining = (await connection.execute(sa.text("SELECT remaining_quantity FROM reward WHERE reward_id = :r"),
                                              {"r": reward.reward_id})).scalar_one()
        rows = (await connection.execute(sa.text("""
            SELECT a.customer_id, a.balance, a.lifetime_redeemed, sum(t.points) AS total,
                   -sum(t.points) FILTER (WHERE t.type = 3) AS redeemed,
                   (SELECT coalesce(sum(points), 0) FROM redemption r WHERE r.customer_id = a.customer_id) AS spent
            FROM loyalty_account a JOIN loyalty_transaction t USING (customer_id)
            WHERE a.customer_id = ANY(:ids) GROUP BY a.customer_id"""), {"ids": ids})).all()
    assert remaining == 0
    assert sum(row.redeemed for row in rows) == 600
    for row in rows:
        assert row.balance == row.total >= 0 and row.lifetime_redeemed == row.redeemed == row.spent
