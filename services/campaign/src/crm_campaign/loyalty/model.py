"""Loyalty points: the account (a balance row per customer), its append-only transactions, the
reward catalogue and redemptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from crm_campaign.campaigns.model import Interval


class TransactionType(IntEnum):
    """LoyaltyTransactionType's numbers."""

    UNSPECIFIED = 0
    EARNED = 1
    ADJUSTED = 2
    REDEEMED = 3
    EXPIRED = 4
    REVERSED = 5


class Level(IntEnum):
    """LoyaltyLevel's numbers."""

    UNSPECIFIED = 0
    BASIC = 1
    SILVER = 2
    GOLD = 3
    PLATINUM = 4


@dataclass(frozen=True)
class LoyaltyTransaction:
    customer_id: str
    transaction_id: str
    type: TransactionType
    points: int
    balance_after: int
    reason: str
    source: str
    expire_on: date | None
    actor: str
    created_at: datetime
    seq: int = 0
    # For a reversal, the id of the transaction it takes back.
    reverses: str = ""

    @property
    def name(self) -> str:
        return f"loyaltyAccounts/{self.customer_id}/transactions/{self.transaction_id}"

    @property
    def reversed_name(self) -> str:
        return f"loyaltyAccounts/{self.customer_id}/transactions/{self.reverses}" if self.reverses else ""


@dataclass(frozen=True)
class Balance:
    """The account's stored row; None times for a customer who has never had points."""

    customer_id: str
    balance: int = 0
    lifetime_earned: int = 0
    lifetime_redeemed: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class LoyaltyAccount:
    """The balance with what is derived from it: the next expiry and the level."""

    balance: Balance
    expiring_points: int
    expiring_on: date | None
    level: Level
    points_to_next_level: int

    @property
    def name(self) -> str:
        return f"loyaltyAccounts/{self.balance.customer_id}"


@dataclass(frozen=True)
class Reward:
    reward_id: str
    display_name: str
    description: str
    points_cost: int
    limited_quantity: bool
    remaining_quantity: int
    available_period: Interval
    created_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"rewards/{self.reward_id}"


@dataclass(frozen=True)
class Redemption:
    customer_id: str
    redemption_id: str
    reward_id: str
    quantity: int
    points: int
    voucher_code: str
    transaction_id: str
    channel: int
    created_at: datetime

    @property
    def name(self) -> str:
        return f"loyaltyAccounts/{self.customer_id}/redemptions/{self.redemption_id}"

    @property
    def transaction_name(self) -> str:
        return f"loyaltyAccounts/{self.customer_id}/transactions/{self.transaction_id}"
