"""SLA policy orchestration, in the caller's unit of work (crmkit.db's rule); each change writes its
outbox event in the same transaction.

`slaPolicies/default` is always there: the configured policy (settings) until someone updates
it, then its stored row. It cannot be created or deleted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from crm_feedback.sla import rules
from crm_feedback.sla.repository import SlaPolicyRepository
from crm_feedback.sla.rules import DEFAULT_POLICY_ID, SlaPolicy
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.feedback")

SLA_POLICY_TYPE = "crm.feedback.v1.SlaPolicy"

FeedPayload = Callable[[SlaPolicy], Message]


class SlaPolicies:
    """The SLA policy use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(self, *, repository: SlaPolicyRepository, outbox: Outbox, idempotency: IdempotencyKeys,
                 page_tokens: PageTokens, configured_default: SlaPolicy, feed_payload: FeedPayload) -> None:
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._configured_default = configured_default
        self._feed_payload = feed_payload

    async def create(self, *, uow: UnitOfWork, policy: SlaPolicy, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> SlaPolicy:
        policy = rules.normalise(policy)
        violations = Violations()
        rules.validate_new(policy, violations)
        violations.raise_if_any()
        if not policy.sla_policy_id:
            policy = dataclasses.replace(policy, sla_policy_id=f"sla-{uuid.uuid4().hex[:16]}")
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateSlaPolicy",
            resource_name=policy.name, replay=lambda name: self.get(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._repository.insert(uow, policy)
        if created is None:
            raise AlreadyExists(
                f"an SLA policy with id {policy.sla_policy_id} or for the same category and priority exists",
                reason="SLA_POLICY_EXISTS", metadata={"sla_policy_id": policy.sla_policy_id})
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("sla_policy_created", sla_policy_id=created.sla_policy_id)
        return created

    async def get(self, *, uow: UnitOfWork, name: str) -> SlaPolicy:
        sla_policy_id = rules.SLA_POLICY_NAME.parse_one(name, required=True)
        found = await self._repository.get(uow, sla_policy_id)
        if found is None and sla_policy_id == DEFAULT_POLICY_ID:
            return self._configured_default
        if found is None:
            raise _not_found(sla_policy_id)
        return found

    async def list(self, *, uow: UnitOfWork, category: int, priority: int, include_wildcards: bool,
                   page_size: int, page_token: str) -> Page[SlaPolicy]:
        violations = Violations()
        violations.enum(category, "category", rules.CATEGORIES, "ComplaintCategory")
        violations.enum(priority, "priority", rules.PRIORITIES, "ComplaintPriority")
        violations.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {"category": category, "priority": priority, "wildcards": include_wildcards}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(uow, category=category, priority=priority,
                                            include_wildcards=include_wildcards, after=after, limit=limit + 1)
        # The configured default has no row until updated: merge it into the id order.
        default = self._configured_default
        if (all(p.sla_policy_id != DEFAULT_POLICY_ID for p in found)
                and await self._repository.get(uow, DEFAULT_POLICY_ID) is None
                and (after is None or after < DEFAULT_POLICY_ID)
                and all(value == rules.ANY or include_wildcards for value in (category, priority))):
            found = sorted([*found, default], key=lambda p: p.sla_policy_id)[: limit + 1]
        return self._page_tokens.page(found, limit=limit, key=lambda p: p.sla_policy_id, query=query)

    async def update(self, *, uow: UnitOfWork, name: str, changes: SlaPolicy, paths: Sequence[str], etag: str,
                     actor: Principal) -> SlaPolicy:
        violations = Violations()
        sla_policy_id = rules.SLA_POLICY_NAME.parse_one(name, "sla_policy.name", required=True)
        rules.validate_mask(paths, violations)
        violations.raise_if_any()
        if sla_policy_id == DEFAULT_POLICY_ID:
            # The first update stores the configured default, so the row lock below covers it.
            await self._repository.insert(uow, self._configured_default)
        current = await self._locked(uow=uow, sla_policy_id=sla_policy_id, etag=etag)
        merged = rules.apply(current, changes, paths)
        rules.validate_values(merged, violations)
        violations.raise_if_any()
        updated = await self._repository.update(uow, merged)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("sla_policy_updated", sla_policy_id=sla_policy_id, fields=sorted(paths))
        return updated

    async def delete(self, *, uow: UnitOfWork, name: str, etag: str, actor: Principal) -> None:
        sla_policy_id = rules.SLA_POLICY_NAME.parse_one(name, required=True)
        if sla_policy_id == DEFAULT_POLICY_ID:
            raise FailedPrecondition("slaPolicies/default cannot be deleted; update it instead",
                                     reason="SLA_POLICY_DEFAULT_UNDELETABLE")
        current = await self._locked(uow=uow, sla_policy_id=sla_policy_id, etag=etag)
        await self._repository.delete(uow, sla_policy_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=SLA_POLICY_TYPE)
        log.info("sla_policy_deleted", sla_policy_id=sla_policy_id)

    async def select(self, *, uow: UnitOfWork) -> Callable[[int, int], SlaPolicy]:
        """The policy chooser for complaints: (category, priority) -> the most specific policy."""
        stored = await self._repository.all(uow)
        default = rules.effective_default(
            next((p for p in stored if p.sla_policy_id == DEFAULT_POLICY_ID), None), self._configured_default)
        return lambda category, priority: rules.select_policy(stored, category=category, priority=priority,
                                                              default=default)

    async def _locked(self, *, uow: UnitOfWork, sla_policy_id: str, etag: str) -> SlaPolicy:
        return await load_for_update(self._repository.get(uow, sla_policy_id, for_update=True), etag=etag,
                                     not_found=lambda: _not_found(sla_policy_id))

    async def _publish(self, uow: UnitOfWork, policy: SlaPolicy, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=policy.name, change_type=change_type,
                                  payload=self._feed_payload(policy), actor=actor.subject)


def _not_found(sla_policy_id: str) -> NotFound:
    return NotFound(f"SLA policy {sla_policy_id} not found", reason="SLA_POLICY_NOT_FOUND",
                    metadata={"sla_policy_id": sla_policy_id})
