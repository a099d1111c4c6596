"""Holding orchestration, in the caller's unit of work (crmkit.db's rule): audit and change feed in the
same transaction as the change.

Holdings are financial data (`DATA_CLASS_FINANCIAL`): every read is audited through the group-
commit writer, every change inside its caller's transaction. Each change publishes the holding on the
change feed (`crm.profile.v1.Holding`: CREATED / UPDATED / DELETED), from which segment derives
AUM, product counts and days to maturity.

All writes to one customer's holdings lock the customer's row first, so "the customer's last open
holding has closed" is decided on a consistent picture; when it is, the customer's `closed_on`
is set (and cleared when a holding opens again), published as a customer UPDATED change.

A merged or erased customer's holdings are not named through it (FAILED_PRECONDITION,
`CUSTOMER_MERGED` with the survivor, or `CUSTOMER_ERASED`). A merge moves the merged customer's
holdings to the survivor and an unmerge moves them back (`identity.merging`), so a feed that keeps
naming the merged customer is told which customer to name instead.

The reporting balance is the balance converted at the configured reference rate of its currency
(`CRM_PROFILE_FX_RATES`), not a historical rate at `balance_time`: the service has no rate
history. A currency without a configured rate has no reporting balance.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.message import Message

from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.features.writer import FeatureWriter
from crm_profile.history.service import FieldHistory
from crm_profile.holdings import rules
from crm_profile.holdings.model import CustomerRef, Holding, HoldingFilter
from crm_profile.holdings.repository import HoldingRepository
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose

# Feed payloads are made by the API layer, so this module stays free of generated protos.
HoldingPayload = Callable[[Holding], Message]
CustomerPayload = Callable[[Customer], Message]
HOLDING_TYPE = "crm.profile.v1.Holding"


@dataclasses.dataclass(frozen=True)
class ReportingCurrency:
    """The bank's reporting currency and the reference rates to it (units of it per unit of another)."""

    currency: str = "CNY"
    rates: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        rules.check_rates(self.currency, self.rates)


class Holdings:
    """The holding use cases. Methods are keyword-only and take the calling principal."""

    def __init__(
        self, *, repository: HoldingRepository, customers: CustomerRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, audit: AuditWriter, page_tokens: PageTokens, feed_payload: HoldingPayload,
        customer_payload: CustomerPayload, history: FieldHistory, reporting: ReportingCurrency,
        features: FeatureWriter | None = None,
    ) -> None:
        self._history = history
        self._repository = repository
        self._customers = customers
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._customer_payload = customer_payload
        self._reporting = reporting
        # Recomputes the customer's derived features in the same transaction as each change.
        self._features = features

    async def create(self, *, uow: UnitOfWork, holding: Holding, request_id: uuid.UUID | None, request: Message,
                     purpose: Purpose, actor: Principal) -> Holding:
        now = datetime.now(UTC)
        if not holding.holding_id:
            holding = dataclasses.replace(holding, holding_id=str(uuid.uuid4()))
        if holding.balance_time is None:
            holding = dataclasses.replace(holding, balance_time=now)
        rules.validate(holding, today=now.date(), now=now).raise_if_any()
        holding = self._with_reporting_balance(holding)
        customer = await self._customer(uow=uow, customer_id=holding.customer_id, actor=actor, lock=True)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateHolding",
            resource_name=holding.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._repository.insert(uow, holding)
        if created is None:
            raise AlreadyExists(f"customer {holding.customer_id} already has holding {holding.holding_id}",
                                reason="HOLDING_EXISTS", metadata={"holding": holding.name})
        await self._record_change(uow=uow, holding=created, action="holding.create", purpose=purpose,
                                  actor=actor, change_type=ChangeType.CHANGE_TYPE_CREATED)
        await self._sync_relationship_end(uow=uow, customer=customer, cause=created, purpose=purpose,
                                          actor=actor)
        await self._recompute_features(uow=uow, customer_id=created.customer_id, actor=actor)
        return created

    async def get(self, *, uow: UnitOfWork, customer_id: str, holding_id: str, purpose: Purpose,
                  actor: Principal) -> Holding:
        await self._customer(uow=uow, customer_id=customer_id, actor=actor)
        found = await self._repository.get(uow, customer_id, holding_id)
        if found is None:
            raise NotFound(f"holding {holding_id} of customer {customer_id} not found", reason="HOLDING_NOT_FOUND")
        await self._audit.record(_entry(actor, "holding.read", found.name, purpose))
        return found

    async def list(
        self, *, uow: UnitOfWork, customer_id: str | None, narrowing: HoldingFilter, page_size: int, page_token: str,
        purpose: Purpose, actor: Principal,
    ) -> Page[Holding]:
        """One customer's holdings, or (`customer_id` None) every customer's the caller may see."""
        rules.validate_filter(narrowing)
        limit = clamp_page_size(page_size)
        book = actor.subject if actor.is_relationship_manager_only and customer_id is None else None
        query = {"customer": customer_id, "book": book, "types": list(narrowing.product_types),
                 "statuses": list(narrowing.statuses), "from": narrowing.maturity_from, "to": narrowing.maturity_to}
        after = self._page_tokens.decode(page_token, query=query)
        if customer_id is not None:
            await self._customer(uow=uow, customer_id=customer_id, actor=actor)
        found = await self._repository.page(
            uow, customer_id=customer_id, relationship_manager_id=book, narrowing=narrowing,
            after=tuple(after) if after is not None else None, limit=limit + 1)
        page = self._page_tokens.page(found, limit=limit, key=lambda h: [h.customer_id, h.holding_id], query=query)
        await self._audit.record(*(_entry(actor, "holding.list", h.name, purpose) for h in page.items))
        return page

    async def update(
        self, *, uow: UnitOfWork, changes: Holding, paths: Sequence[str], etag: str, purpose: Purpose, actor: Principal,
    ) -> Holding:
        rules.check_mask(paths)
        now = datetime.now(UTC)
        customer = await self._customer(uow=uow, customer_id=changes.customer_id, actor=actor, lock=True)
        current = await self._existing(uow=uow, customer_id=changes.customer_id,
                                       holding_id=changes.holding_id, etag=etag)
        merged = rules.apply(current, changes, paths, now=now)
        rules.validate(merged, today=now.date(), now=now).raise_if_any()
        rules.check_balance_order(current, merged)
        updated = await self._repository.update(uow, self._with_reporting_balance(merged))
        await self._record_change(uow=uow, holding=updated, action="holding.update", purpose=purpose,
                                  actor=actor, change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                  detail=f"fields={','.join(sorted(paths))}")
        if rules.OPEN_STATE_PATHS.intersection(paths):
            await self._sync_relationship_end(uow=uow, customer=customer, cause=updated, purpose=purpose,
                                              actor=actor)
        await self._recompute_features(uow=uow, customer_id=updated.customer_id, actor=actor)
        return updated

    async def delete(self, *, uow: UnitOfWork, customer_id: str, holding_id: str, etag: str, purpose: Purpose,
                     actor: Principal) -> None:
        customer = await self._customer(uow=uow, customer_id=customer_id, actor=actor, lock=True)
        current = await self._existing(uow=uow, customer_id=customer_id, holding_id=holding_id, etag=etag)
        await self._repository.delete(uow, customer_id, holding_id)
        await append_audit(uow, audit_record, [_entry(actor, "holding.delete", current.name, purpose)])
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=HOLDING_TYPE)
        await self._sync_relationship_end(uow=uow, customer=customer, cause=current, purpose=purpose,
                                          actor=actor)
        await self._recompute_features(uow=uow, customer_id=customer_id, actor=actor)

    # --- steps shared by the use cases ---

    async def _recompute_features(self, *, uow: UnitOfWork, customer_id: str, actor: Principal) -> None:
        if self._features is not None:
            await self._features.recompute(uow=uow, customer_ids=[customer_id], actor=actor.subject, locked=True)

    async def _customer(self, *, uow: UnitOfWork, customer_id: str, actor: Principal,
                        lock: bool = False) -> CustomerRef:
        """The holdings' customer (locked with `lock`, for a change), in the caller's book and live."""
        customer = await self._repository.customer(uow, customer_id, lock=lock)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.check_book(actor, customer)
        customer_rules.ensure_active(customer)
        return customer

    async def _existing(self, *, uow: UnitOfWork, customer_id: str, holding_id: str, etag: str) -> Holding:
        return await load_for_update(
            self._repository.get(uow, customer_id, holding_id, for_update=True), etag=etag,
            not_found=lambda: NotFound(f"holding {holding_id} of customer {customer_id} not found",
                                       reason="HOLDING_NOT_FOUND"))

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Holding:
        """The holding an earlier CreateHolding with the same request_id created."""
        _, customer_id, _, holding_id = name.split("/")
        existing = await self._repository.get(uow, customer_id, holding_id)
        if existing is None:
            raise NotFound("the holding created by this request no longer exists", reason="HOLDING_NOT_FOUND")
        return existing

    def _with_reporting_balance(self, holding: Holding) -> Holding:
        converted = rules.reporting_balance(holding.balance, currency=self._reporting.currency,
                                            rates=self._reporting.rates)
        return dataclasses.replace(holding, reporting_balance=converted)

    async def _record_change(self, *, uow: UnitOfWork, holding: Holding, action: str, purpose: Purpose,
                             actor: Principal, change_type: int, detail: str = "") -> None:
        await append_audit(uow, audit_record, [_entry(actor, action, holding.name, purpose, detail)])
        await self._outbox.append(uow, resource_name=holding.name, change_type=change_type,
                                  payload=self._feed_payload(holding), actor=actor.subject)

    async def _sync_relationship_end(self, *, uow: UnitOfWork, customer: CustomerRef, cause: Holding,
                                     purpose: Purpose, actor: Principal) -> None:
        """Set or clear the customer's `closed_on` when its holdings say the relationship ended or
        reopened; the field's history names the holding's source system as the source."""
        changed, closed_on = rules.relationship_end(customer, await self._repository.open_state(
            uow, customer.customer_id))
        if not changed:
            return
        current = await self._customers.get(uow, customer.customer_id, for_update=True)
        assert current is not None, "the customer row is locked by this transaction"
        await self._customers.update(uow, dataclasses.replace(current, closed_on=closed_on))
        updated = await self._customers.get(uow, customer.customer_id)
        assert updated is not None
        await self._history.record(uow=uow, before=current, after=updated, actor=actor.subject,
                                   source_system=cause.source_system)
        await append_audit(uow, audit_record, [_entry(actor, "customer.update", updated.name, purpose,
                                                          "fields=closed_on (holdings)")])
        await self._outbox.append(uow, resource_name=updated.name, change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                  payload=self._customer_payload(updated), actor=actor.subject)


def _entry(actor: Principal, action: str, resource_name: str, purpose: Purpose, detail: str = "") -> AuditEntry:
    justification = f"{purpose.justification} {detail}".strip() if detail else purpose.justification
    return AuditEntry(principal=actor.subject, action=action, resource_name=resource_name, purpose=purpose.purpose,
                      justification=justification)
