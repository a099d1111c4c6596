"""Loyalty proto <-> model."""

from __future__ import annotations

from crm.campaign.v1 import loyalty_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.campaigns.model import Interval
from crm_campaign.loyalty.model import LoyaltyAccount, LoyaltyTransaction, Redemption, Reward
from crm_campaign.loyalty.rules import is_available
from crmkit.clock import utc_now
from crmkit.validation import set_date
from crmkit.values import set_timestamps


def account_to_proto(account: LoyaltyAccount) -> loyalty_pb2.LoyaltyAccount:
    balance = account.balance
    message = loyalty_pb2.LoyaltyAccount(
        name=account.name, customer=f"customers/{balance.customer_id}", balance=balance.balance,
        lifetime_earned=balance.lifetime_earned, lifetime_redeemed=balance.lifetime_redeemed,
        expiring_points=account.expiring_points, level=int(account.level),  # type: ignore[arg-type]
        points_to_next_level=account.points_to_next_level)
    if account.expiring_on is not None:
        set_date(message.expiring_on, account.expiring_on)
    set_timestamps(message, create_time=balance.created_at, update_time=balance.updated_at)
    return message


def transaction_to_proto(transaction: LoyaltyTransaction) -> loyalty_pb2.LoyaltyTransaction:
    message = loyalty_pb2.LoyaltyTransaction(
        name=transaction.name, type=int(transaction.type),  # type: ignore[arg-type]
        points=transaction.points, balance_after=transaction.balance_after, reason=transaction.reason,
        source=transaction.source, actor=transaction.actor, reversed_transaction=transaction.reversed_name)
    if transaction.expire_on is not None:
        set_date(message.expire_on, transaction.expire_on)
    set_timestamps(message, create_time=transaction.created_at)
    return message


def reward_to_domain(message: loyalty_pb2.Reward) -> Reward:
    return Reward(reward_id=message.reward_id, display_name=message.display_name, description=message.description,
                  points_cost=message.points_cost, limited_quantity=message.limited_quantity,
                  remaining_quantity=message.remaining_quantity,
                  available_period=(values.read_interval(message.available_period)
                                    if message.HasField("available_period") else Interval()))


def reward_to_proto(reward: Reward) -> loyalty_pb2.Reward:
    message = loyalty_pb2.Reward(
        name=reward.name, reward_id=reward.reward_id, display_name=reward.display_name,
        description=reward.description, points_cost=reward.points_cost,
        remaining_quantity=reward.remaining_quantity if reward.limited_quantity else 0,
        limited_quantity=reward.limited_quantity, available=is_available(reward, now=utc_now()))
    if reward.available_period != Interval():
        message.available_period.CopyFrom(values.interval_to_proto(reward.available_period))
    return message


def redemption_to_proto(redemption: Redemption) -> loyalty_pb2.Redemption:
    message = loyalty_pb2.Redemption(
        name=redemption.name, reward=f"rewards/{redemption.reward_id}", quantity=redemption.quantity,
        points=redemption.points, voucher_code=redemption.voucher_code, transaction=redemption.transaction_name)
    set_timestamps(message, create_time=redemption.created_at)
    return message
