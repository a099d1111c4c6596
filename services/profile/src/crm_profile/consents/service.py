"""Consent and contact-preference orchestration: one unit of work per call, audit and change feed
in the same transaction as the change.

Campaign suppression reads consents and preferences from the change feed: every appended
record goes out as a `ConsentRecord` event, every preference change as a `ContactPreferences`
event (and a language change also as a `Customer` event, the language being the customer's).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.message import Message

from crm_profile.consents import rules
from crm_profile.consents.model import ConsentRecord, ConsentState, ContactPreferences
from crm_profile.consents.repository import ConsentRepository, PreferenceRepository
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.history.service import FieldHistory
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Aborted, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose


class ConsentPayloads(Protocol):
    """Change-feed payloads (proto messages), supplied by the API layer."""

    def record(self, record: ConsentRecord) -> Message: ...
    def preferences(self, preferences: ContactPreferences) -> Message: ...
    def customer(self, customer: Customer) -> Message: ...


@dataclasses.dataclass(frozen=True)
class Recorded:
    records: Sequence[ConsentRecord]
    states: Sequence[ConsentState]


async def load_customer(customers: CustomerRepository, *, uow: UnitOfWork, customer_id: str,
                        actor: Principal, for_update: bool = False) -> Customer:
    """The named customer, live and in the caller's book: NOT_FOUND, PERMISSION_DENIED or
    FAILED_PRECONDITION (merged, erased) otherwise. Shared by the sub-domains that hang off a customer."""
    def check(customer: Customer) -> None:
        customer_rules.check_book(actor, customer)
        customer_rules.ensure_active(customer)

    return await load_for_update(
        customers.get(uow, customer_id, for_update=for_update), etag="", check=check,
        not_found=lambda: NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND"))


def _now() -> datetime:
    return datetime.now(UTC)


class Consents:
    """The consent ledger and contact preferences of customers."""

    def __init__(
        self, *, customers: CustomerRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        audit: AuditWriter, page_tokens: PageTokens, payloads: ConsentPayloads,
        ledger: ConsentRepository | None = None, preferences: PreferenceRepository | None = None,
        history: FieldHistory | None = None,
    ) -> None:
        self._customers = customers
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._payloads = payloads
        self._ledger = ledger or ConsentRepository()
        self._preferences = preferences or PreferenceRepository()
        self._history = history

    async def record(
        self, *, uow: UnitOfWork, customer_id: str, records: Sequence[ConsentRecord], request_id: uuid.UUID | None,
        request: Message, purpose: Purpose, actor: Principal,
    ) -> Recorded:
        now = _now()
        rules.validate_records(records, now=now)
        batch_id = request_id or uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="RecordConsent",
            resource_name=f"customers/{customer_id}/consentBatches/{batch_id}",
            replay=lambda _: self._replay(uow=uow, batch_id=batch_id, now=now))
        if replayed is not None:
            return replayed
        # The row lock serialises writers of one customer's ledger (and waits out a merge).
        await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor, for_update=True)
        own = [dataclasses.replace(r, customer_id=customer_id, origin_customer_id=customer_id) for r in records]
        stored = await self._ledger.append(uow, own, batch_id=batch_id, recorder=actor.subject)
        states = await self._states_of(uow=uow, records=stored, now=now)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="consent.record", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)])
        await self._outbox.append_many(
            uow, [(r.name, ChangeType.CHANGE_TYPE_CREATED, self._payloads.record(r)) for r in stored],
            actor=actor.subject)
        return Recorded(stored, states)

    async def _replay(self, *, uow: UnitOfWork, batch_id: uuid.UUID, now: datetime) -> Recorded:
        """What an earlier RecordConsent with the same request_id recorded (its batch), as it stands now."""
        replayed = await self._ledger.batch(uow, batch_id)
        return Recorded(replayed, await self._states_of(uow=uow, records=replayed, now=now))

    async def _states_of(self, *, uow: UnitOfWork, records: Sequence[ConsentRecord],
                         now: datetime) -> list[ConsentState]:
        if not records:
            return []
        customer_id = records[0].customer_id
        pairs = [r.pair for r in records]
        ledger = await self._ledger.counting(uow, customer_id, purposes={p for p, _ in pairs},
                                             channels={c for _, c in pairs})
        states = rules.derive(ledger, now=now)
        return [states[pair] for pair in pairs if pair in states]

    async def list_states(
        self, *, uow: UnitOfWork, customer_id: str, purposes: Sequence[int], channels: Sequence[int], page_size: int,
        page_token: str, purpose: Purpose, actor: Principal,
    ) -> Page[ConsentState]:
        limit = clamp_page_size(page_size)
        query = {"customer": customer_id, "purposes": sorted(purposes), "channels": sorted(channels)}
        after = self._page_tokens.decode(page_token, query=query)
        await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor)
        ledger = await self._ledger.counting(uow, customer_id, purposes=purposes, channels=channels)
        states = sorted(rules.derive(ledger, now=_now()).values(), key=lambda s: (s.purpose, s.channel))
        if after is not None:
            states = [s for s in states if [s.purpose, s.channel] > list(after)]
        await self._audit_read(actor, "consent.list", customer_id, purpose)
        return self._page_tokens.page(states, limit=limit, key=lambda s: [s.purpose, s.channel], query=query)

    async def history(
        self, *, uow: UnitOfWork, customer_id: str, purposes: Sequence[int], channels: Sequence[int], page_size: int,
        page_token: str, purpose: Purpose, actor: Principal,
    ) -> Page[ConsentRecord]:
        limit = clamp_page_size(page_size)
        query = {"customer": customer_id, "purposes": sorted(purposes), "channels": sorted(channels)}
        before = self._page_tokens.decode(page_token, query=query)
        await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor)
        found = await self._ledger.history(uow, customer_id, purposes=purposes, channels=channels,
                                           before_seq=before, limit=limit + 1)
        await self._audit_read(actor, "consent.history", customer_id, purpose)
        return self._page_tokens.page(found, limit=limit, key=lambda r: r.seq, query=query)

    async def get_preferences(self, *, uow: UnitOfWork, customer_id: str, purpose: Purpose,
                              actor: Principal) -> ContactPreferences:
        customer = await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor)
        stored = await self._preferences.get(uow, customer_id, language=customer.preferred_language)
        await self._audit_read(actor, "contact_preferences.read", customer_id, purpose)
        return rules.in_force(stored, today=_now().date())

    async def update_preferences(
        self, *, uow: UnitOfWork,
        changes: ContactPreferences, paths: Sequence[str], etag: str, purpose: Purpose, actor: Principal,
    ) -> ContactPreferences:
        rules.check_preference_mask(paths)
        now = _now()
        customer_id = changes.customer_id
        customer = await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor, for_update=True)
        stored = await self._preferences.get(uow, customer_id, language=customer.preferred_language,
                                             for_update=True)
        current = rules.in_force(stored, today=now.date())
        if etag and etag != current.etag:
            raise Aborted("contact preferences changed since they were read; re-read and retry",
                          reason="ETAG_MISMATCH")
        updated = rules.apply_preferences(current, changes, paths, now=now)
        rules.validate_preferences(updated, today=now.date()).raise_if_any()
        saved = await self._preferences.save(uow, updated)
        changed_customer = None
        if updated.language != customer.preferred_language:
            wanted = dataclasses.replace(customer, preferred_language=updated.language)
            changed_customer = dataclasses.replace(
                await self._customers.update(uow, wanted),
                attributes=customer.attributes, external_ids=customer.external_ids)
            if self._history is not None:
                await self._history.record(uow=uow, before=customer, after=changed_customer,
                                           actor=actor.subject)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="contact_preferences.update", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=f"{purpose.justification} fields={','.join(sorted(paths))}")])
        events = [(saved.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.preferences(saved))]
        if changed_customer is not None:
            events.append((changed_customer.name, ChangeType.CHANGE_TYPE_UPDATED,
                           self._payloads.customer(changed_customer)))
        await self._outbox.append_many(uow, events, actor=actor.subject)
        return saved

    async def _audit_read(self, actor: Principal, action: str, customer_id: str, purpose: Purpose) -> None:
        await self._audit.record(AuditEntry(principal=actor.subject, action=action,
                                            resource_name=f"customers/{customer_id}", purpose=purpose.purpose,
                                            justification=purpose.justification))
