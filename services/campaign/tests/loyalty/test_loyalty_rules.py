"""Loyalty's pure rules: expiry, levels, voucher codes."""

from __future__ import annotations

from datetime import date

from crm.campaign.v1 import loyalty_pb2
from crm_campaign.loyalty import rules
from crm_campaign.loyalty.model import Level, TransactionType
from crmkit.testing import assert_enum_mirrors


def test_the_enums_mirror_the_contract() -> None:
    assert_enum_mirrors(TransactionType, loyalty_pb2.LoyaltyTransactionType, prefix="LOYALTY_TRANSACTION_TYPE_")
    assert_enum_mirrors(Level, loyalty_pb2.LoyaltyLevel, prefix="LOYALTY_LEVEL_")


def test_points_expire_at_the_end_of_the_following_year() -> None:
    assert rules.expire_on(date(2026, 1, 1)) == date(2027, 12, 31)
    assert rules.expire_on(date(2026, 12, 31)) == date(2027, 12, 31)


def test_the_earliest_expiring_points_are_spent_first() -> None:
    lots = [(date(2026, 12, 31), 100), (date(2027, 12, 31), 300)]
    assert rules.next_expiry(lots, spent=0) == (100, date(2026, 12, 31))
    assert rules.next_expiry(lots, spent=40) == (60, date(2026, 12, 31))
    assert rules.next_expiry(lots, spent=100) == (300, date(2027, 12, 31))
    assert rules.next_expiry(lots, spent=400) == (0, None)
    assert rules.next_expiry([], spent=0) == (0, None)


def test_levels_follow_points_ever_earned() -> None:
    assert rules.level_for(0) == (Level.BASIC, 5_000)
    assert rules.level_for(4_999) == (Level.BASIC, 1)
    assert rules.level_for(5_000) == (Level.SILVER, 15_000)
    assert rules.level_for(20_000) == (Level.GOLD, 30_000)
    assert rules.level_for(50_000) == (Level.PLATINUM, 0)
    assert rules.level_for(10**9) == (Level.PLATINUM, 0)


def test_voucher_codes_are_long_and_readable() -> None:
    codes = {rules.voucher_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == rules.VOUCHER_LENGTH and set(c) <= set(rules.VOUCHER_ALPHABET) for c in codes)
