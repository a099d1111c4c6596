"""Loyalty over CampaignService: a customer's points account and its movements, the reward
catalogue, and redeeming points for a reward at a channel.

Account reads go out with the audit purpose CUSTOMER_SERVICE and are audited by the campaign
service, which keeps a relationship manager to their own book (403 `CUSTOMER_OUTSIDE_BOOK`). A
redemption needs the `Idempotency-Key`: a retry returns the first redemption and spends nothing
again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from crm.campaign.v1 import campaign_pb2, loyalty_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    CustomerId,
    IdempotencyKey,
    PageDep,
    PeersDep,
    answer,
    enum_names,
    keyed,
    page_model,
    paged,
)
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

# The front line serving the customer (campaign's FRONT_LINE); the catalogue is not personal data.
ACCOUNT_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
CATALOGUE_ROLES = ACCOUNT_ROLES | {Role.MARKETER}
AccountReader = Annotated[Principal, Depends(require_roles(*ACCOUNT_ROLES))]
Redeemer = Annotated[Principal, Depends(require_roles(*ACCOUNT_ROLES))]
CatalogueReader = Annotated[Principal, Depends(require_roles(*CATALOGUE_ROLES))]
CUSTOMER_SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
# The campaign service's rule for `Reward.reward_id`.
REWARD_ID_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"

LoyaltyAccount: Any = proto_model(loyalty_pb2.LoyaltyAccount.DESCRIPTOR)
TransactionPage = page_model("LoyaltyTransactionPage", "transactions", loyalty_pb2.LoyaltyTransaction.DESCRIPTOR)
RewardPage = page_model("RewardPage", "rewards", loyalty_pb2.Reward.DESCRIPTOR)
Redeemed: Any = proto_model(pb.RedeemRewardResponse.DESCRIPTOR)
TransactionType = enum_names(loyalty_pb2.LoyaltyTransactionType)
Channel = enum_names(campaign_pb2.Channel)


class Redemption(BaseModel):
    """The reward to redeem points for, how many and on which channel."""

    model_config = ConfigDict(extra="forbid", title="RedemptionInput")
    reward_id: str = Field(pattern=REWARD_ID_PATTERN, description="The reward's id (`rewards` lists them).")
    quantity: int = Field(default=1, ge=1, le=100, description="Units, 1 to 100.")
    channel: Channel = Field(description="The channel the customer redeems on.")  # type: ignore[valid-type]  # a Literal from the proto enum


router = APIRouter(tags=["loyalty"])


@router.get("/v1/customers/{customer_id}/loyalty-account", name="get_loyalty_account",
            summary="A customer's loyalty account",
            description="Balance, lifetime points, the points expiring next and when, and the level. A customer "
                        "who never had points has a zero-balance account. Audited; a relationship manager only for "
                        f"their own book. Roles: {roles_text(ACCOUNT_ROLES)}.",
            response_model=LoyaltyAccount, responses=problem_responses(400))
async def get_loyalty_account(customer_id: CustomerId, principal: AccountReader, peers: PeersDep) -> JSONResponse:
    response = await peers.campaign.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(
        customer=f"customers/{customer_id}", audit=CUSTOMER_SERVICE), metadata=forwarded(principal))
    return answer(response.loyalty_account)


@router.get("/v1/customers/{customer_id}/loyalty-account/transactions", name="list_loyalty_transactions",
            summary="A customer's loyalty transactions",
            description="Points earned, adjusted, redeemed, expired and reversed, newest first, each with the "
                        f"balance after it. Audited. Roles: {roles_text(ACCOUNT_ROLES)}.",
            response_model=TransactionPage, responses=problem_responses(400))
async def list_loyalty_transactions(
    customer_id: CustomerId, principal: AccountReader, peers: PeersDep, page: PageDep,
    type: Annotated[TransactionType | None,  # type: ignore[valid-type]
                    Query(description="Only transactions of this type.")] = None,
) -> JSONResponse:
    request = page.apply(pb.ListLoyaltyTransactionsRequest(
        customer=f"customers/{customer_id}", audit=CUSTOMER_SERVICE,
        type=loyalty_pb2.LoyaltyTransactionType.Value(type) if type
        else loyalty_pb2.LOYALTY_TRANSACTION_TYPE_UNSPECIFIED))
    response = await peers.campaign.ListLoyaltyTransactions(request, metadata=forwarded(principal))
    return answer(paged(response, "transactions"))


@router.get("/v1/rewards", name="list_rewards", summary="The reward catalogue",
            description="Rewards in name order; `available_only` keeps those redeemable now (in their period and "
                        "in stock), `max_points_cost` (e.g. the customer's balance) those affordable. "
                        f"Roles: {roles_text(CATALOGUE_ROLES)}.",
            response_model=RewardPage, responses=problem_responses(400))
async def list_rewards(
    principal: CatalogueReader, peers: PeersDep, page: PageDep,
    available_only: Annotated[bool, Query(description="Only rewards redeemable now.")] = False,
    max_points_cost: Annotated[int, Query(ge=0, le=2**62, description="Only rewards costing at most this; "
                                          "0 or absent for any.")] = 0,
) -> JSONResponse:
    request = page.apply(pb.ListRewardsRequest(available_only=available_only, max_points_cost=max_points_cost))
    return answer(paged(await peers.campaign.ListRewards(request, metadata=forwarded(principal)), "rewards"))


@router.post("/v1/customers/{customer_id}/loyalty-account/redemptions", name="redeem_reward", status_code=201,
             summary="Redeem points for a reward",
             description="Spends the reward's cost times `quantity` from the customer's balance and answers the "
                         "redemption with its voucher code and the account after it. 404 `REWARD_NOT_FOUND`; 409 "
                         "`INSUFFICIENT_POINTS` or `REWARD_UNAVAILABLE` (outside its period or out of stock), "
                         "nothing spent. The `Idempotency-Key` is required: a retry returns the first redemption. "
                         "Audited; a relationship manager only for their own book. "
                         f"Roles: {roles_text(ACCOUNT_ROLES)}.",
             response_model=Redeemed, responses=problem_responses(400, 404, 409, 413))
async def redeem_reward(
    customer_id: CustomerId, redemption: Annotated[Redemption, Body()], principal: Redeemer, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    request = keyed(pb.RedeemRewardRequest(
        customer=f"customers/{customer_id}", reward=f"rewards/{redemption.reward_id}", quantity=redemption.quantity,
        channel=campaign_pb2.Channel.Value(redemption.channel), audit=CUSTOMER_SERVICE), idempotency_key)
    response = await peers.campaign.RedeemReward(request, metadata=forwarded(principal))
    return answer(response, status_code=201)
