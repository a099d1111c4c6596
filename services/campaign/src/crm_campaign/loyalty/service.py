"""Loyalty use cases, in the caller's unit of work (crmkit.db's rule). Every movement of points
writes the account's balance row and one transaction row in the same database transaction, so the
balance is always the sum of the account's transactions; a refused movement raises and the unit
of work rolls back, so it changes nothing."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, datetime

from google.protobuf.message import Message

from crm_campaign.book.repository import BookRepository
from crm_campaign.loyalty import rules
from crm_campaign.loyalty.model import (
    Balance,
    LoyaltyAccount,
    LoyaltyTransaction,
    Redemption,
    Reward,
    TransactionType,
)
from crm_campaign.loyalty.repository import LoyaltyRepository
from crm_campaign.tables import audit_record
from crmkit.audit import DENIED, AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, NotFound, PermissionDenied
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose

log = get_logger("crm.campaign")

EXPIRY_ACTOR = Principal(subject="system:loyalty-expiry", roles=frozenset())


@dataclasses.dataclass(frozen=True)
class Movement:
    """A transaction and the account after it."""

    transaction: LoyaltyTransaction
    account: LoyaltyAccount


@dataclasses.dataclass(frozen=True)
class Redeemed:
    redemption: Redemption
    account: LoyaltyAccount


class Loyalty:
    """The loyalty use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(self, *, repository: LoyaltyRepository, book: BookRepository, idempotency: IdempotencyKeys,
                 page_tokens: PageTokens, audit: AuditWriter) -> None:
        self._repository = repository
        self._book = book
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._audit = audit

    # --- accounts -----------------------------------------------------------------------------------

    async def get_account(self, *, uow: UnitOfWork, customer_id: str, purpose: Purpose,
                          actor: Principal) -> LoyaltyAccount:
        await self._check_read(uow=uow, customer_id=customer_id, purpose=purpose, actor=actor,
                               action="loyalty.read")
        return await self._account(uow=uow, customer_id=customer_id)

    async def list_transactions(
        self, *, uow: UnitOfWork, customer_id: str, page_size: int, page_token: str, type_: int,
        created_from: datetime | None, created_before: datetime | None, purpose: Purpose, actor: Principal,
    ) -> Page[LoyaltyTransaction]:
        limit = clamp_page_size(page_size)
        query = {"customer": customer_id, "type": type_, "from": created_from, "before": created_before}
        after = self._page_tokens.decode(page_token, query=query)
        await self._check_read(uow=uow, customer_id=customer_id, purpose=purpose, actor=actor,
                               action="loyalty.list_transactions")
        found = await self._repository.page_transactions(
            uow, customer_id, type_=type_, created_from=created_from, created_before=created_before,
            after_seq=after, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda t: t.seq, query=query)

    async def adjust(self, *, uow: UnitOfWork, customer_id: str, points: int, reason: str,
                     request_id: uuid.UUID, request: Message, purpose: Purpose, actor: Principal) -> Movement:
        transaction_id = str(uuid.uuid4())
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="AdjustLoyaltyPoints",
            resource_name=f"loyaltyAccounts/{customer_id}/transactions/{transaction_id}",
            replay=lambda name: self._replay_movement(uow=uow, name=name))
        if replayed is not None:
            return replayed
        today = utc_now().date()
        transaction = await self._move(
            uow=uow, customer_id=customer_id, transaction_id=transaction_id, type_=TransactionType.ADJUSTED,
            points=points, reason=reason, source="", expire_on=rules.expire_on(today) if points > 0 else None,
            actor=actor)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="loyalty.adjust", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)])
        log.info("loyalty_points_adjusted", transaction_id=transaction_id, points=points)
        return Movement(transaction, await self._account(uow=uow, customer_id=customer_id))

    async def earn(self, *, uow: UnitOfWork, customer_id: str, points: int, reason: str, source: str,
                   actor: Principal) -> LoyaltyTransaction:
        """Credit points earned by `source` (a conversion), inside the unit of work that records it: the
        source is recorded once, so its points are too."""
        transaction = await self._move(
            uow=uow, customer_id=customer_id, transaction_id=str(uuid.uuid4()), type_=TransactionType.EARNED,
            points=points, reason=reason[:rules.MAX_REASON], source=source,
            expire_on=rules.expire_on(utc_now().date()), actor=actor)
        log.info("loyalty_points_earned", transaction_id=transaction.transaction_id, points=points)
        return transaction

    async def accounts_due(self, *, uow: UnitOfWork, today: date, after: str, limit: int) -> list[str]:
        """Accounts that may hold points past their date, by customer id after `after`."""
        return await self._repository.accounts_with_expired_lots(uow, today=today, after=after, limit=limit)

    async def expire(self, *, uow: UnitOfWork, customer_id: str, today: date) -> LoyaltyTransaction | None:
        """Take the points whose date has passed by `today` out of the balance (one EXPIRED movement);
        None when none are due. Under the account's row lock, so racing sweeps expire points once."""
        if not await self._repository.lock_account(uow, customer_id):
            return None
        lots, taken = await self._repository.expiry_lots(uow, customer_id)
        due = rules.expired_points(lots, spent=taken, today=today)
        if due <= 0:
            return None
        transaction = await self._move(
            uow=uow, customer_id=customer_id, transaction_id=str(uuid.uuid4()), type_=TransactionType.EXPIRED,
            points=-due, reason=f"Points valid until before {today.isoformat()} expired", source="", expire_on=None,
            actor=EXPIRY_ACTOR)
        log.info("loyalty_points_expired", transaction_id=transaction.transaction_id, points=due)
        return transaction

    async def reverse(self, *, uow: UnitOfWork, customer_id: str, transaction_id: str, reason: str,
                      request_id: uuid.UUID, request: Message, purpose: Purpose, actor: Principal) -> Movement:
        reversal_id = str(uuid.uuid4())
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request,
            method="ReverseLoyaltyTransaction",
            resource_name=f"loyaltyAccounts/{customer_id}/transactions/{reversal_id}",
            replay=lambda name: self._replay_movement(uow=uow, name=name))
        if replayed is not None:
            return replayed
        # The original's row lock serialises concurrent reversals of it: the second sees the first's.
        original = await self._repository.transaction(uow, customer_id, transaction_id, for_update=True)
        if original is None:
            raise transaction_not_found(customer_id, transaction_id)
        rules.check_reversible(original, already_reversed=await self._repository.is_reversed(uow, transaction_id))
        transaction = await self._move(
            uow=uow, customer_id=customer_id, transaction_id=reversal_id, type_=TransactionType.REVERSED,
            points=-original.points, reason=reason, source=original.source, expire_on=None, actor=actor,
            reverses=original)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="loyalty.reverse", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)])
        log.info("loyalty_transaction_reversed", transaction_id=reversal_id, reversed_transaction_id=transaction_id)
        return Movement(transaction, await self._account(uow=uow, customer_id=customer_id))

    # --- rewards ------------------------------------------------------------------------------------

    async def create_reward(self, *, uow: UnitOfWork, reward: Reward, request_id: uuid.UUID | None,
                            request: Message, actor: Principal) -> Reward:
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateReward",
            resource_name=reward.name, replay=lambda name: self.get_reward(uow=uow, reward_id=name.split("/")[1]))
        if replayed is not None:
            return replayed
        created = await self._repository.insert_reward(uow, reward)
        if created is None:
            raise AlreadyExists(f"reward {reward.reward_id} already exists", reason="REWARD_EXISTS",
                                metadata={"reward_id": reward.reward_id})
        log.info("reward_created", reward_id=created.reward_id)
        return created

    async def get_reward(self, *, uow: UnitOfWork, reward_id: str) -> Reward:
        found = await self._repository.reward(uow, reward_id)
        if found is None:
            raise reward_not_found(reward_id)
        return found

    async def list_rewards(self, *, uow: UnitOfWork, page_size: int, page_token: str, available_only: bool,
                           max_points_cost: int) -> Page[Reward]:
        limit = clamp_page_size(page_size)
        query = {"available_only": available_only, "max_points_cost": max_points_cost}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page_rewards(
            uow, available_at=utc_now() if available_only else None, max_points_cost=max_points_cost,
            after=tuple(after) if after is not None else None, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda r: [r.display_name, r.reward_id], query=query)

    async def redeem(self, *, uow: UnitOfWork, customer_id: str, reward_id: str, quantity: int, channel: int,
                     request_id: uuid.UUID, request: Message, purpose: Purpose, actor: Principal) -> Redeemed:
        rules.check_book(actor, customer_id, await self._book.manager_of(uow, customer_id))
        redemption_id = str(uuid.uuid4())
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="RedeemReward",
            resource_name=f"loyaltyAccounts/{customer_id}/redemptions/{redemption_id}",
            replay=lambda name: self._replay_redemption(uow=uow, name=name))
        if replayed is not None:
            return replayed
        reward = await self.get_reward(uow=uow, reward_id=reward_id)
        rules.check_available(reward, now=utc_now(), quantity=quantity)
        if not await self._repository.take_stock(uow, reward_id, quantity):
            raise rules.reward_unavailable(reward_id)  # another redemption took the last units meanwhile
        points = reward.points_cost * quantity
        transaction = await self._move(
            uow=uow, customer_id=customer_id, transaction_id=str(uuid.uuid4()), type_=TransactionType.REDEEMED,
            points=-points, reason=f"Redeemed {quantity} x {reward.display_name}"[:rules.MAX_REASON],
            source=reward.name, expire_on=None, actor=actor)
        redemption = await self._repository.insert_redemption(uow, Redemption(
            customer_id=customer_id, redemption_id=redemption_id, reward_id=reward_id, quantity=quantity,
            points=points, voucher_code=rules.voucher_code(), transaction_id=transaction.transaction_id,
            channel=channel, created_at=transaction.created_at))
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="loyalty.redeem", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)])
        log.info("loyalty_reward_redeemed", redemption_id=redemption_id, reward_id=reward_id, points=points)
        return Redeemed(redemption, await self._account(uow=uow, customer_id=customer_id))

    # --- helpers ------------------------------------------------------------------------------------

    async def _move(self, *, uow: UnitOfWork, customer_id: str, transaction_id: str, type_: TransactionType,
                    points: int, reason: str, source: str, expire_on: date | None, actor: Principal,
                    reverses: LoyaltyTransaction | None = None) -> LoyaltyTransaction:
        """Move the balance and append the transaction that explains it, or refuse (INSUFFICIENT_POINTS)."""
        earned, redeemed = rules.lifetime_changes(type_, points, reverses=reverses)
        balance = await self._repository.move(uow, customer_id=customer_id, points=points, earned=earned,
                                              redeemed=redeemed)
        if balance is None:
            raise rules.insufficient_points(customer_id, -points)
        return await self._repository.insert_transaction(uow, LoyaltyTransaction(
            customer_id=customer_id, transaction_id=transaction_id, type=type_, points=points,
            balance_after=balance.balance, reason=reason, source=source,
            expire_on=expire_on, actor=actor.subject, created_at=utc_now(),
            reverses=reverses.transaction_id if reverses is not None else ""))

    async def _account(self, *, uow: UnitOfWork, customer_id: str) -> LoyaltyAccount:
        balance = await self._repository.balance(uow, customer_id) or Balance(customer_id=customer_id)
        lots, taken = await self._repository.expiry_lots(uow, customer_id)
        expiring_points, expiring_on = rules.next_expiry(lots, spent=taken)
        level, to_next = rules.level_for(balance.lifetime_earned)
        return LoyaltyAccount(balance=balance, expiring_points=expiring_points, expiring_on=expiring_on,
                              level=level, points_to_next_level=to_next)

    async def _check_read(self, *, uow: UnitOfWork, customer_id: str, purpose: Purpose, actor: Principal,
                          action: str) -> None:
        read = AuditEntry(principal=actor.subject, action=action, resource_name=f"customers/{customer_id}",
                          purpose=purpose.purpose, justification=purpose.justification)
        manager = await self._book.manager_of(uow, customer_id) if actor.is_relationship_manager_only else ""
        try:
            rules.check_book(actor, customer_id, manager)
        except PermissionDenied:
            await self._audit.record(dataclasses.replace(read, outcome=DENIED))
            raise
        await self._audit.record(read)

    async def _replay_movement(self, *, uow: UnitOfWork, name: str) -> Movement:
        _, customer_id, _, transaction_id = name.split("/")
        transaction = await self._repository.transaction(uow, customer_id, transaction_id)
        if transaction is None:
            raise transaction_not_found(customer_id, transaction_id)
        return Movement(transaction, await self._account(uow=uow, customer_id=customer_id))

    async def _replay_redemption(self, *, uow: UnitOfWork, name: str) -> Redeemed:
        _, customer_id, _, redemption_id = name.split("/")
        redemption = await self._repository.redemption(uow, customer_id, redemption_id)
        if redemption is None:
            raise NotFound(f"redemption {redemption_id} not found", reason="REDEMPTION_NOT_FOUND")
        return Redeemed(redemption, await self._account(uow=uow, customer_id=customer_id))


def transaction_not_found(customer_id: str, transaction_id: str) -> NotFound:
    return NotFound(f"loyalty transaction {transaction_id} not found", reason="LOYALTY_TRANSACTION_NOT_FOUND",
                    metadata={"customer_id": customer_id, "transaction_id": transaction_id})


def reward_not_found(reward_id: str) -> NotFound:
    return NotFound(f"reward {reward_id} not found", reason="REWARD_NOT_FOUND", metadata={"reward_id": reward_id})
