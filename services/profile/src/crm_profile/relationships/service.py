"""Relationship orchestration: a link and its mirror are created and removed together, in one
unit of work, with an audit record and a `Relationship` change event for each row."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message

from crm_profile.consents.service import load_customer
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.repository import CustomerRepository
from crm_profile.relationships import rules
from crm_profile.relationships.model import SPOUSE, Relationship
from crm_profile.relationships.repository import RelationshipRepository
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose

RELATIONSHIP_TYPE = "crm.profile.v1.Relationship"
RelationshipPayload = Callable[[Relationship], Message]


class Relationships:
    """Households and related parties."""

    def __init__(
        self, *, customers: CustomerRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        audit: AuditWriter, page_tokens: PageTokens, payload: RelationshipPayload,
        repository: RelationshipRepository | None = None,
    ) -> None:
        self._customers = customers
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._payload = payload
        self._repository = repository or RelationshipRepository()

    async def create(self, *, uow: UnitOfWork, relationship: Relationship, request_id: uuid.UUID | None,
                     request: Message, purpose: Purpose, actor: Principal) -> Relationship:
        rules.validate(relationship, today=datetime.now(UTC).date()).raise_if_any()
        link, mirror = rules.with_mirror(relationship, actor=actor.subject)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateRelationship",
            resource_name=link.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        # Both rows locked in a fixed order: concurrent links of the same pair serialise here.
        locked = {}
        for customer_id in sorted({link.customer_id, link.related_customer_id}):
            locked[customer_id] = await self._customers.get(uow, customer_id, for_update=True)
        parent = locked[link.customer_id]
        if parent is None:
            raise NotFound(f"customer {link.customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.check_book(actor, parent)
        customer_rules.ensure_active(parent)
        related = locked[link.related_customer_id]
        if related is None:
            raise NotFound(f"related customer {link.related_customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.ensure_active(related)
        rules.check_types(link.type, parent_type=parent.customer_type, related_type=related.customer_type)
        if await self._repository.find(uow, customer_id=link.customer_id,
                                       related_customer_id=link.related_customer_id, relationship_type=link.type):
            raise AlreadyExists("the customers are already linked so", reason="RELATIONSHIP_EXISTS")
        if link.type == SPOUSE and await self._repository.has_spouse(
                uow, [link.customer_id, link.related_customer_id]):
            raise FailedPrecondition("a customer has at most one spouse", reason="SPOUSE_EXISTS")
        stored, stored_mirror = await self._repository.insert_pair(uow, link, mirror)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="relationship.create", resource_name=r.name,
            purpose=purpose.purpose, justification=purpose.justification) for r in (stored, stored_mirror)])
        await self._outbox.append_many(uow, [
            (r.name, ChangeType.CHANGE_TYPE_CREATED, self._payload(r)) for r in (stored, stored_mirror)],
            actor=actor.subject)
        return stored

    async def list(self, *, uow: UnitOfWork, customer_id: str, types: Sequence[int], page_size: int, page_token: str,
                   purpose: Purpose, actor: Principal) -> Page[Relationship]:
        limit = clamp_page_size(page_size)
        query = {"customer": customer_id, "types": sorted(types)}
        after = self._page_tokens.decode(page_token, query=query)
        await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor)
        found = await self._repository.page(uow, customer_id, types=types,
                                            after=tuple(after) if after else None, limit=limit + 1)
        await self._audit.record(AuditEntry(principal=actor.subject, action="relationship.list",
                                            resource_name=f"customers/{customer_id}", purpose=purpose.purpose,
                                            justification=purpose.justification))
        return self._page_tokens.page(found, limit=limit, key=lambda r: [r.type, r.related_customer_id], query=query)

    async def delete(self, *, uow: UnitOfWork, customer_id: str, relationship_id: uuid.UUID, etag: str,
                     purpose: Purpose, actor: Principal) -> None:
        await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor, for_update=True)
        link = await self._repository.get(uow, relationship_id)
        if link is None or link.customer_id != customer_id:
            raise NotFound(f"relationship {relationship_id} of customer {customer_id} not found",
                           reason="RELATIONSHIP_NOT_FOUND")
        if etag and etag != link.etag:
            raise Aborted("the relationship is not the one that was read; re-read and retry", reason="ETAG_MISMATCH")
        await self._repository.delete_pairs(uow, [link])
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="relationship.delete", resource_name=name,
            purpose=purpose.purpose, justification=purpose.justification)
            for name in (link.name, link.mirror_name)])
        await self._outbox.append_many(uow, [
            (name, ChangeType.CHANGE_TYPE_DELETED, None) for name in (link.name, link.mirror_name)],
            actor=actor.subject, resource_type=RELATIONSHIP_TYPE)

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Relationship:
        """The link an earlier CreateRelationship with the same request_id created."""
        existing = await self._repository.get(uow, uuid.UUID(name.rsplit("/", 1)[1]))
        if existing is None:
            raise NotFound("the relationship created by this request no longer exists", reason="RELATIONSHIP_NOT_FOUND")
        return existing
