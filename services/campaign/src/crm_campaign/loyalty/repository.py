"""All SQL about loyalty points and rewards. Never commits: the caller's unit of work does."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.campaigns.model import Interval
from crm_campaign.loyalty.model import Balance, LoyaltyTransaction, Redemption, Reward, TransactionType
from crm_campaign.loyalty.tables import loyalty_account as a
from crm_campaign.loyalty.tables import loyalty_transaction as tx
from crm_campaign.loyalty.tables import redemption as rd
from crm_campaign.loyalty.tables import reward as rw
from crmkit.db import UnitOfWork


def _balance(row: Any) -> Balance:
    return Balance(customer_id=row.customer_id, balance=row.balance, lifetime_earned=row.lifetime_earned,
                   lifetime_redeemed=row.lifetime_redeemed, created_at=row.created_at, updated_at=row.updated_at)


def _transaction(row: Any) -> LoyaltyTransaction:
    return LoyaltyTransaction(
        customer_id=row.customer_id, transaction_id=row.transaction_id, type=TransactionType(row.type),
        points=row.points, balance_after=row.balance_after, reason=row.reason, source=row.source,
        expire_on=row.expire_on, actor=row.actor, created_at=row.created_at, seq=row.seq,
        reverses=row.reverses_transaction_id or "")


def _reward(row: Any) -> Reward:
    return Reward(reward_id=row.reward_id, display_name=row.display_name, description=row.description,
                  points_cost=row.points_cost, limited_quantity=row.limited_quantity,
                  remaining_quantity=row.remaining_quantity,
                  available_period=Interval(row.available_start_at, row.available_end_at),
                  created_at=row.created_at)


def _redemption(row: Any) -> Redemption:
    return Redemption(customer_id=row.customer_id, redemption_id=row.redemption_id, reward_id=row.reward_id,
                      quantity=row.quantity, points=row.points, voucher_code=row.voucher_code,
                      transaction_id=row.transaction_id, channel=row.channel, created_at=row.created_at)


class LoyaltyRepository:
    # --- accounts and their movements -------------------------------------------------------------

    async def lock_account(self, uow: UnitOfWork, customer_id: str) -> bool:
        """Lock the account's balance row for the rest of the unit of work; False when there is none."""
        found = await uow.scalar(sa.select(a.c.customer_id).where(a.c.customer_id == customer_id).with_for_update())
        return found is not None

    async def accounts_with_expired_lots(self, uow: UnitOfWork, *, today: date, after: str, limit: int) -> list[str]:
        """Accounts with points left and points added that expired before `today`, by customer id after `after`."""
        query = (sa.select(a.c.customer_id).where(a.c.balance > 0, a.c.customer_id > after, sa.exists().where(
            tx.c.customer_id == a.c.customer_id, tx.c.points > 0, tx.c.expire_on < today))
            .order_by(a.c.customer_id).limit(limit))
        return list((await uow.execute(query)).scalars())

    async def balance(self, uow: UnitOfWork, customer_id: str) -> Balance | None:
        row = (await uow.execute(sa.select(a).where(a.c.customer_id == customer_id))).first()
        return _balance(row) if row is not None else None

    async def move(self, uow: UnitOfWork, *, customer_id: str, points: int, earned: int, redeemed: int
                   ) -> Balance | None:
        """Add `points` (negative to take) to the balance, opening the account if need be; None,
        changing nothing, when the balance would go below zero. The update's row lock serialises
        concurrent movements of one account, and each re-checks the condition on the balance the
        one before it committed, so no interleaving can overdraw."""
        await uow.execute(pg.insert(a).values(customer_id=customer_id).on_conflict_do_nothing())
        row = (await uow.execute(
            sa.update(a).where(a.c.customer_id == customer_id, a.c.balance + points >= 0)
            .values(balance=a.c.balance + points, lifetime_earned=a.c.lifetime_earned + earned,
                    lifetime_redeemed=a.c.lifetime_redeemed + redeemed, updated_at=sa.func.now())
            .returning(a))).first()
        return _balance(row) if row is not None else None

    async def insert_transaction(self, uow: UnitOfWork, transaction: LoyaltyTransaction) -> LoyaltyTransaction:
        row = (await uow.execute(pg.insert(tx).values(
            transaction_id=transaction.transaction_id, customer_id=transaction.customer_id,
            type=int(transaction.type), points=transaction.points, balance_after=transaction.balance_after,
            reason=transaction.reason, source=transaction.source, expire_on=transaction.expire_on,
            actor=transaction.actor, reverses_transaction_id=transaction.reverses or None).returning(tx))).one()
        return _transaction(row)

    async def transaction(self, uow: UnitOfWork, customer_id: str, transaction_id: str, *,
                          for_update: bool = False) -> LoyaltyTransaction | None:
        query = sa.select(tx).where(tx.c.customer_id == customer_id, tx.c.transaction_id == transaction_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return _transaction(row) if row is not None else None

    async def is_reversed(self, uow: UnitOfWork, transaction_id: str) -> bool:
        return (await uow.scalar(sa.select(sa.exists().where(tx.c.reverses_transaction_id == transaction_id)))
                is True)

    async def expiry_lots(self, uow: UnitOfWork, customer_id: str) -> tuple[list[tuple[date, int]], int]:
        """The points added per expiry date (earliest first), and every point taken since. A reversal
        and the transaction it reverses cancel out exactly, so both are left out."""
        reversal = tx.alias("reversal")
        standing = sa.and_(tx.c.customer_id == customer_id, tx.c.reverses_transaction_id.is_(None),
                           ~sa.exists().where(reversal.c.reverses_transaction_id == tx.c.transaction_id))
        lots = (await uow.execute(
            sa.select(tx.c.expire_on, sa.func.sum(tx.c.points))
            .where(standing, tx.c.points > 0, tx.c.expire_on.is_not(None))
            .group_by(tx.c.expire_on).order_by(tx.c.expire_on))).all()
        taken = await uow.scalar(sa.select(sa.func.coalesce(-sa.func.sum(tx.c.points), 0))
                                 .where(standing, tx.c.points < 0))
        return [(row[0], int(row[1])) for row in lots], int(taken or 0)

    async def page_transactions(
        self, uow: UnitOfWork, customer_id: str, *, type_: int, created_from: datetime | None,
        created_before: datetime | None, after_seq: int | None, limit: int,
    ) -> list[LoyaltyTransaction]:
        """The account's transactions newest first, older than `after_seq`."""
        query = sa.select(tx).where(tx.c.customer_id == customer_id).order_by(tx.c.seq.desc()).limit(limit)
        if type_:
            query = query.where(tx.c.type == type_)
        if created_from is not None:
            query = query.where(tx.c.created_at >= created_from)
        if created_before is not None:
            query = query.where(tx.c.created_at < created_before)
        if after_seq is not None:
            query = query.where(tx.c.seq < after_seq)
        return [_transaction(row) for row in (await uow.execute(query)).all()]

    # --- the reward catalogue and redemptions -------------------------------------------------------

    async def insert_reward(self, uow: UnitOfWork, reward: Reward) -> Reward | None:
        """Insert; None when the reward id is taken."""
        period = reward.available_period
        row = (await uow.execute(
            pg.insert(rw).values(
                reward_id=reward.reward_id, display_name=reward.display_name, description=reward.description,
                points_cost=reward.points_cost, limited_quantity=reward.limited_quantity,
                remaining_quantity=reward.remaining_quantity, available_start_at=period.start_time,
                available_end_at=period.end_time)
            .on_conflict_do_nothing(index_elements=[rw.c.reward_id]).returning(rw))).first()
        return _reward(row) if row is not None else None

    async def reward(self, uow: UnitOfWork, reward_id: str) -> Reward | None:
        row = (await uow.execute(sa.select(rw).where(rw.c.reward_id == reward_id))).first()
        return _reward(row) if row is not None else None

    async def take_stock(self, uow: UnitOfWork, reward_id: str, quantity: int) -> bool:
        """Take `quantity` units of a limited reward (an unlimited one has no stock to take); False,
        changing nothing, when fewer are left. Concurrent takers serialise on the row lock."""
        row = (await uow.execute(
            sa.update(rw).where(rw.c.reward_id == reward_id,
                                sa.or_(sa.not_(rw.c.limited_quantity), rw.c.remaining_quantity >= quantity))
            .values(remaining_quantity=sa.case((rw.c.limited_quantity, rw.c.remaining_quantity - quantity),
                                               else_=rw.c.remaining_quantity))
            .returning(rw.c.reward_id))).first()
        return row is not None

    async def page_rewards(self, uow: UnitOfWork, *, available_at: datetime | None, max_points_cost: int,
                           after: tuple[str, str] | None, limit: int) -> list[Reward]:
        """The catalogue in (display_name, reward_id) order, after `after`; with `available_at`, only
        rewards redeemable then."""
        query = sa.select(rw).order_by(rw.c.display_name, rw.c.reward_id).limit(limit)
        if available_at is not None:
            query = query.where(
                sa.or_(rw.c.available_start_at.is_(None), rw.c.available_start_at <= available_at),
                sa.or_(rw.c.available_end_at.is_(None), rw.c.available_end_at > available_at),
                sa.or_(sa.not_(rw.c.limited_quantity), rw.c.remaining_quantity > 0))
        if max_points_cost:
            query = query.where(rw.c.points_cost <= max_points_cost)
        if after is not None:
            query = query.where(sa.tuple_(rw.c.display_name, rw.c.reward_id) > sa.tuple_(*after))
        return [_reward(row) for row in (await uow.execute(query)).all()]

    async def insert_redemption(self, uow: UnitOfWork, redemption: Redemption) -> Redemption:
        row = (await uow.execute(pg.insert(rd).values(
            redemption_id=redemption.redemption_id, customer_id=redemption.customer_id,
            reward_id=redemption.reward_id, quantity=redemption.quantity, points=redemption.points,
            voucher_code=redemption.voucher_code, transaction_id=redemption.transaction_id,
            channel=redemption.channel).returning(rd))).one()
        return _redemption(row)

    async def redemption(self, uow: UnitOfWork, customer_id: str, redemption_id: str) -> Redemption | None:
        row = (await uow.execute(sa.select(rd).where(
            rd.c.customer_id == customer_id, rd.c.redemption_id == redemption_id))).first()
        return _redemption(row) if row is not None else None
