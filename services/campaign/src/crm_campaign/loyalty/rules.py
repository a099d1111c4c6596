"""Loyalty decisions, free of gRPC and SQL: what a valid adjustment, reward and redemption are,
when points expire, which level a customer has, and who may see whose account."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import date, datetime

from crm_campaign.book import rules as book_rules
from crm_campaign.loyalty.model import Level, LoyaltyTransaction, Reward, TransactionType
from crmkit.auth import Principal
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

MAX_ADJUSTMENT = 1_000_000
MAX_REASON = 200
MAX_REDEEM_QUANTITY = 100
MAX_DISPLAY_NAME = 100
MAX_DESCRIPTION = 2_000
MAX_POINTS_COST = 10_000_000
MAX_STOCK = 1_000_000_000
REWARD_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
REWARD_ID_RULE = "must be 1 to 63 lower-case letters, digits and hyphens, starting with a letter"

# Points ever earned from which each level starts (LoyaltyLevel's comments say the same).
LEVEL_THRESHOLDS: tuple[tuple[Level, int], ...] = (
    (Level.BASIC, 0), (Level.SILVER, 5_000), (Level.GOLD, 20_000), (Level.PLATINUM, 50_000))

# Voucher codes: 16 characters of an alphabet without look-alikes (0/O, 1/I/L), read out at a counter.
VOUCHER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
VOUCHER_LENGTH = 16


def validate_adjustment(*, points: int, reason: str, violations: Violations) -> None:
    violations.check(points != 0 and -MAX_ADJUSTMENT <= points <= MAX_ADJUSTMENT, "points",
                     f"must be non-zero, from -{MAX_ADJUSTMENT:,} to {MAX_ADJUSTMENT:,}")
    check_reason(reason, violations)


def check_reason(reason: str, violations: Violations, field: str = "reason") -> None:
    if violations.check(bool(reason.strip()), field, f"is required: 1 to {MAX_REASON} characters"):
        violations.max_length(reason, field, MAX_REASON)
        violations.text(reason, field)


def redeem_quantity(quantity: int, violations: Violations) -> int:
    """The units to redeem: 0 means 1."""
    quantity = quantity or 1
    violations.check(1 <= quantity <= MAX_REDEEM_QUANTITY, "quantity", f"must be from 1 to {MAX_REDEEM_QUANTITY}")
    return quantity


def validate_reward(reward: Reward, violations: Violations) -> None:
    if violations.required(reward.reward_id, "reward.reward_id"):
        violations.pattern(reward.reward_id, "reward.reward_id", REWARD_ID, REWARD_ID_RULE)
    if violations.required(reward.display_name.strip(), "reward.display_name"):
        violations.max_length(reward.display_name, "reward.display_name", MAX_DISPLAY_NAME)
        violations.text(reward.display_name, "reward.display_name")
    violations.max_length(reward.description, "reward.description", MAX_DESCRIPTION)
    violations.text(reward.description, "reward.description", multiline=True)
    violations.check(1 <= reward.points_cost <= MAX_POINTS_COST, "reward.points_cost",
                     f"must be from 1 to {MAX_POINTS_COST:,}")
    if reward.limited_quantity:
        violations.check(0 <= reward.remaining_quantity <= MAX_STOCK, "reward.remaining_quantity",
                         f"must be from 0 to {MAX_STOCK:,} for a limited reward")
    else:
        violations.check(reward.remaining_quantity == 0, "reward.remaining_quantity",
                         "must be 0 unless limited_quantity is true")
    period = reward.available_period
    if period.start_time is not None and period.end_time is not None:
        violations.check(period.end_time > period.start_time, "reward.available_period.end_time",
                         "must be after available_period.start_time")


def is_available(reward: Reward, *, now: datetime, quantity: int = 1) -> bool:
    """Inside its period and with `quantity` units in stock (start inclusive, end exclusive)."""
    period = reward.available_period
    in_period = ((period.start_time is None or period.start_time <= now)
                 and (period.end_time is None or now < period.end_time))
    return in_period and (not reward.limited_quantity or reward.remaining_quantity >= quantity)


def check_available(reward: Reward, *, now: datetime, quantity: int) -> None:
    if not is_available(reward, now=now, quantity=quantity):
        raise reward_unavailable(reward.reward_id)


def reward_unavailable(reward_id: str) -> FailedPrecondition:
    return FailedPrecondition(f"reward {reward_id} cannot be redeemed now: outside its period or out of stock",
                              reason="REWARD_UNAVAILABLE", metadata={"reward_id": reward_id})


def insufficient_points(customer_id: str, points: int) -> FailedPrecondition:
    return FailedPrecondition(f"the balance is too low to take {points} points; nothing was changed",
                              reason="INSUFFICIENT_POINTS",
                              metadata={"customer_id": customer_id, "points": str(points)})


def check_reversible(transaction: LoyaltyTransaction, *, already_reversed: bool) -> None:
    """Earned and adjusted points can be taken back, once; redemptions, expiries and reversals cannot."""
    if transaction.type not in (TransactionType.EARNED, TransactionType.ADJUSTED):
        raise FailedPrecondition(f"a {transaction.type.name.lower()} transaction cannot be reversed",
                                 reason="NOT_REVERSIBLE", metadata={"transaction": transaction.name})
    if already_reversed:
        raise FailedPrecondition("the transaction was already reversed; nothing was changed",
                                 reason="ALREADY_REVERSED", metadata={"transaction": transaction.name})


def lifetime_changes(type_: TransactionType, points: int, *, reverses: LoyaltyTransaction | None = None
                     ) -> tuple[int, int]:
    """How a movement changes (points ever earned, points ever redeemed). Added points count as
    earned and redemptions as redeemed; taking back added points un-earns them; a deduction
    (negative adjustment, expiry) and its reversal change neither."""
    if type_ == TransactionType.REDEEMED:
        return 0, -points
    if type_ == TransactionType.REVERSED:
        return (points if reverses is not None and reverses.points > 0 else 0), 0
    return max(points, 0), 0


def expire_on(earned_on: date) -> date:
    """Points earned on `earned_on` expire at the end of the following calendar year."""
    return date(earned_on.year + 1, 12, 31)


def next_expiry(lots: Sequence[tuple[date, int]], *, spent: int) -> tuple[int, date | None]:
    """The points of the balance that expire next, and when. `lots` are the points added per expiry
    date (earliest first) and `spent` every point taken since (redeemed, removed, expired), which
    consumes the earliest-expiring points first."""
    left = spent
    for expires, points in lots:
        if left >= points:
            left -= points
            continue
        return points - left, expires
    return 0, None


def expired_points(lots: Sequence[tuple[date, int]], *, spent: int, today: date) -> int:
    """Points of the balance whose date has passed by `today` (they are valid through their date),
    with spending taken from the earliest-expiring points first, as `next_expiry` takes it."""
    left, due = spent, 0
    for expires, points in lots:
        consumed = min(left, points)
        left -= consumed
        if expires < today:
            due += points - consumed
    return due


def level_for(lifetime_earned: int) -> tuple[Level, int]:
    """The level reached by points ever earned, and the points still to earn to the next one."""
    reached = Level.BASIC
    for level, threshold in LEVEL_THRESHOLDS:
        if lifetime_earned < threshold:
            return reached, threshold - lifetime_earned
        reached = level
    return reached, 0


def voucher_code() -> str:
    return "".join(secrets.choice(VOUCHER_ALPHABET) for _ in range(VOUCHER_LENGTH))


def check_book(actor: Principal, customer_id: str, manager_id: str | None) -> None:
    """A relationship manager without a broader role sees only their own book (`book.rules`, the
    one rule): a customer campaign knows no manager for is outside every book."""
    book_rules.check_in_book(actor, customer_id, manager_id, reason="CUSTOMER_OUTSIDE_BOOK")
