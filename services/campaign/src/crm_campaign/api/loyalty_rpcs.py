"""Loyalty RPCs of CampaignService: accounts, transactions, manual adjustments, reversals, the reward
catalogue and redemptions; and renewal tracking (`ListRenewals`). Proto -> arguments, one unit of
work and one service call, result -> proto."""

from __future__ import annotations

import uuid
from datetime import date

import grpc
from google.type import date_pb2

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.api import loyalty_messages as messages
from crm_campaign.api import renewal_messages
from crm_campaign.api import value_messages as values
from crm_campaign.campaigns.model import Channel
from crm_campaign.loyalty import rules
from crm_campaign.loyalty.model import TransactionType
from crm_campaign.loyalty.service import Loyalty
from crm_campaign.renewals.model import RenewalFilter, RenewalState
from crm_campaign.renewals.service import Renewals
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName, purpose_from
from crmkit.validation import Violations, to_date

CUSTOMER = ResourceName("customers/{customer_id}")
TRANSACTION = ResourceName("loyaltyAccounts/{customer_id}/transactions/{transaction_id}")
REWARD = ResourceName("rewards/{reward_id}", id_pattern=rules.REWARD_ID.pattern)


def _required_request_id(request_id: str, violations: Violations) -> uuid.UUID:
    violations.required(request_id, "request_id")
    parsed = parse_request_id(request_id, violations=violations)
    return parsed if parsed is not None else uuid.UUID(int=0)


def _date(value: date_pb2.Date, field: str, violations: Violations) -> date | None:
    try:
        return to_date(value)
    except ValueError:
        violations.add(field, "is not a calendar date")
        return None


class LoyaltyRpcs:
    _db: Database
    _loyalty: Loyalty
    _renewals: Renewals
    _currency: str

    async def GetLoyaltyAccount(self, request: pb.GetLoyaltyAccountRequest, context: grpc.aio.ServicerContext
                                ) -> pb.GetLoyaltyAccountResponse:
        violations = Violations()
        CUSTOMER.check(request.customer, "customer", violations, required=True)
        purpose = purpose_from(request.audit, violations=violations)
        violations.raise_if_any()
        async with self._db.unit_of_work(read_only=True) as uow:
            account = await self._loyalty.get_account(uow=uow, customer_id=CUSTOMER.parse_one(request.customer),
                                                      purpose=purpose, actor=current_principal())
        return pb.GetLoyaltyAccountResponse(loyalty_account=messages.account_to_proto(account))

    async def ListLoyaltyTransactions(self, request: pb.ListLoyaltyTransactionsRequest,
                                      context: grpc.aio.ServicerContext) -> pb.ListLoyaltyTransactionsResponse:
        violations = Violations()
        CUSTOMER.check(request.customer, "customer", violations, required=True)
        violations.enum(request.type, "type", {int(t) for t in TransactionType}, "LoyaltyTransactionType")
        purpose = purpose_from(request.audit, violations=violations)
        interval = values.read_interval(request.create_interval) if request.HasField("create_interval") else None
        if interval is not None and interval.start_time is not None and interval.end_time is not None:
            violations.check(interval.end_time > interval.start_time, "create_interval.end_time",
                             "must be after create_interval.start_time")
        violations.raise_if_any()
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._loyalty.list_transactions(
                uow=uow, customer_id=CUSTOMER.parse_one(request.customer), page_size=request.page_size,
                page_token=request.page_token, type_=request.type,
                created_from=interval.start_time if interval else None,
                created_before=interval.end_time if interval else None, purpose=purpose, actor=current_principal())
        return pb.ListLoyaltyTransactionsResponse(
            transactions=[messages.transaction_to_proto(t) for t in page.items], next_page_token=page.next_page_token)

    async def AdjustLoyaltyPoints(self, request: pb.AdjustLoyaltyPointsRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.AdjustLoyaltyPointsResponse:
        violations = Violations()
        CUSTOMER.check(request.customer, "customer", violations, required=True)
        rules.validate_adjustment(points=request.points, reason=request.reason, violations=violations)
        request_id = _required_request_id(request.request_id, violations)
        purpose = purpose_from(request.audit, violations=violations)
        violations.raise_if_any()
        async with self._db.unit_of_work() as uow:
            moved = await self._loyalty.adjust(
                uow=uow, customer_id=CUSTOMER.parse_one(request.customer), points=request.points,
                reason=request.reason, request_id=request_id, request=request, purpose=purpose,
                actor=current_principal())
        return pb.AdjustLoyaltyPointsResponse(transaction=messages.transaction_to_proto(moved.transaction),
                                              loyalty_account=messages.account_to_proto(moved.account))

    async def ReverseLoyaltyTransaction(self, request: pb.ReverseLoyaltyTransactionRequest,
                                        context: grpc.aio.ServicerContext) -> pb.ReverseLoyaltyTransactionResponse:
        violations = Violations()
        TRANSACTION.check(request.name, "name", violations, required=True)
        rules.check_reason(request.reason, violations)
        request_id = _required_request_id(request.request_id, violations)
        purpose = purpose_from(request.audit, violations=violations)
        violations.raise_if_any()
        customer_id, transaction_id = TRANSACTION.parse(request.name)
        async with self._db.unit_of_work() as uow:
            moved = await self._loyalty.reverse(
                uow=uow, customer_id=customer_id, transaction_id=transaction_id, reason=request.reason,
                request_id=request_id, request=request, purpose=purpose, actor=current_principal())
        return pb.ReverseLoyaltyTransactionResponse(transaction=messages.transaction_to_proto(moved.transaction),
                                                    loyalty_account=messages.account_to_proto(moved.account))

    async def CreateReward(self, request: pb.CreateRewardRequest, context: grpc.aio.ServicerContext
                           ) -> pb.CreateRewardResponse:
        violations = Violations()
        reward = messages.reward_to_domain(request.reward)
        rules.validate_reward(reward, violations)
        request_id = parse_request_id(request.request_id, violations=violations)
        violations.raise_if_any()
        async with self._db.unit_of_work() as uow:
            created = await self._loyalty.create_reward(uow=uow, reward=reward, request_id=request_id,
                                                        request=request, actor=current_principal())
        return pb.CreateRewardResponse(reward=messages.reward_to_proto(created))

    async def ListRewards(self, request: pb.ListRewardsRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListRewardsResponse:
        violations = Violations()
        violations.check(request.max_points_cost >= 0, "max_points_cost", "must not be negative")
        violations.raise_if_any()
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._loyalty.list_rewards(
                uow=uow, page_size=request.page_size, page_token=request.page_token,
                available_only=request.available_only, max_points_cost=request.max_points_cost)
        return pb.ListRewardsResponse(rewards=[messages.reward_to_proto(r) for r in page.items],
                                      next_page_token=page.next_page_token)

    async def RedeemReward(self, request: pb.RedeemRewardRequest, context: grpc.aio.ServicerContext
                           ) -> pb.RedeemRewardResponse:
        violations = Violations()
        CUSTOMER.check(request.customer, "customer", violations, required=True)
        REWARD.check(request.reward, "reward", violations, required=True)
        quantity = rules.redeem_quantity(request.quantity, violations)
        violations.enum(request.channel, "channel", {int(c) for c in Channel if c}, "Channel", required=True)
        request_id = _required_request_id(request.request_id, violations)
        purpose = purpose_from(request.audit, violations=violations)
        violations.raise_if_any()
        async with self._db.unit_of_work() as uow:
            redeemed = await self._loyalty.redeem(
                uow=uow, customer_id=CUSTOMER.parse_one(request.customer), reward_id=REWARD.parse_one(request.reward),
                quantity=quantity, channel=request.channel, request_id=request_id, request=request,
                purpose=purpose, actor=current_principal())
        return pb.RedeemRewardResponse(redemption=messages.redemption_to_proto(redeemed.redemption),
                                       loyalty_account=messages.account_to_proto(redeemed.account))

    async def ListRenewals(self, request: pb.ListRenewalsRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ListRenewalsResponse:
        violations = Violations()
        if request.customer:
            CUSTOMER.check(request.customer, "customer", violations)
        for index, state in enumerate(request.states):
            violations.enum(state, f"states[{index}]", {int(s) for s in RenewalState if s}, "RenewalState",
                            required=True)
        maturity_from = _date(request.maturity_from, "maturity_from", violations)
        maturity_to = _date(request.maturity_to, "maturity_to", violations)
        if maturity_from is not None and maturity_to is not None:
            violations.check(maturity_to >= maturity_from, "maturity_to", "must not be before maturity_from")
        violations.raise_if_any()
        where = RenewalFilter(
            customer_id=CUSTOMER.parse_one(request.customer, "customer") if request.customer else "",
            relationship_manager_id=request.relationship_manager_id,
            states=tuple(RenewalState(s) for s in request.states), product_code=request.product_code,
            maturity_from=maturity_from, maturity_to=maturity_to)
        async with self._db.unit_of_work(read_only=True) as uow:
            page, summary = await self._renewals.list(uow=uow, where=where, page_size=request.page_size,
                                                      page_token=request.page_token, actor=current_principal())
        return pb.ListRenewalsResponse(
            renewals=[renewal_messages.renewal_to_proto(r) for r in page.items], next_page_token=page.next_page_token,
            summary=renewal_messages.summary_to_proto(summary, currency=self._currency))
