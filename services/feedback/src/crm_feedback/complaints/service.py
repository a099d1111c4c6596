"""Complaint orchestration, in the caller's unit of work (crmkit.db's rule); audit and change feed in the same
transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from google.protobuf.message import Message

from crm_feedback.complaints import rules
from crm_feedback.complaints.model import Complaint, ComplaintDraft, ComplaintFilter, ComplaintView
from crm_feedback.complaints.repository import ComplaintRepository
from crm_feedback.sla.rules import SlaPolicy
from crm_feedback.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose, check_purpose
from crmkit.validation import Violations

# Turns a stored complaint into the change-feed payload (a masked message); supplied by the
# API layer so this module stays free of generated protos.
FeedPayload = Callable[[Complaint], Message]


class Complaints:
    """The complaint use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: ComplaintRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        audit: AuditWriter, page_tokens: PageTokens, default_sla: SlaPolicy, feed_payload: FeedPayload,
        clock: Clock = utc_now,
    ) -> None:
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        # SLA policies per category and priority (CreateSlaPolicy) come with their own RPCs;
        # until then the default policy, from settings, sets every deadline.
        self._default_sla = default_sla
        self._feed_payload = feed_payload
        self._clock = clock

    async def file(self, *, uow: UnitOfWork, draft: ComplaintDraft, request_id: str, request: Message,
                   actor: Principal) -> ComplaintView:
        now = self._clock()
        violations = rules.validate_draft(draft, now=now)
        key = rules.request_key(request_id, violations)
        violations.raise_if_any()
        assert key is not None  # request_key added a violation otherwise
        number = await self._repository.next_number(uow)
        complaint = rules.new_complaint(draft, complaint_id=rules.complaint_id_for(number, now),
                                       filer=actor.subject, now=now, policy=self._default_sla)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=key, request=request, method="FileComplaint",
            resource_name=complaint.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return rules.view_for(actor, replayed, now=now)
        filed = await self._repository.insert(uow, complaint)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="complaint.file", resource_name=filed.name, purpose="COMPLAINT")])
        await self._outbox.append(uow, resource_name=filed.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._feed_payload(filed), actor=actor.subject)
        return rules.view_for(actor, filed, now=now)

    async def get(self, *, uow: UnitOfWork, name: str, purpose: Purpose, actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.COMPLAINT_NAME.check(name, "name", violations, required=True)
        check_purpose(purpose, violations, required=rules.PURPOSE_REQUIRED)
        violations.raise_if_any()
        complaint_id = rules.complaint_id_of(name) or ""
        found = await self._repository.get(uow, complaint_id)
        if found is None:
            raise NotFound(f"complaint {complaint_id} not found", reason="COMPLAINT_NOT_FOUND")
        rules.check_case(actor, found)
        await self._audit.record(AuditEntry(principal=actor.subject, action="complaint.read",
                                            resource_name=found.name, purpose=purpose.purpose,
                                            justification=purpose.justification))
        return rules.view_for(actor, found, now=self._clock())

    async def list(
        self, *, uow: UnitOfWork, query: ComplaintFilter, page_size: int, page_token: str, purpose: Purpose,
        actor: Principal,
    ) -> Page[ComplaintView]:
        violations = rules.validate_filter(query, page_size=page_size)
        check_purpose(purpose, violations, required=rules.PURPOSE_REQUIRED)
        violations.raise_if_any()
        limit = clamp_page_size(page_size)
        ordering = rules.ordering(query.order_by)
        handler = rules.case_handler(actor)
        token_query = {"filter": dataclasses.asdict(dataclasses.replace(query, order_by=ordering)),
                       "handler": handler}
        after = self._page_tokens.decode(page_token, query=token_query)
        now = self._clock()
        found = await self._repository.page(
            uow, query=query, customer_id=rules.customer_id_of(query.customer) or "", ordering=ordering,
            handler=handler, after=after, limit=limit + 1, now=now)
        page = self._page_tokens.page(found, limit=limit, key=lambda c: self._repository.page_key(c, ordering),
                                      query=token_query)
        await self._audit.record(*(AuditEntry(principal=actor.subject, action="complaint.list",
                                              resource_name=c.name, purpose=purpose.purpose,
                                              justification=purpose.justification) for c in page.items))
        return Page([rules.view_for(actor, c, now=now) for c in page.items], page.next_page_token)

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Complaint:
        """The complaint an earlier call with the same request_id filed."""
        existing = await self._repository.get(uow, name.removeprefix("complaints/"))
        if existing is None:
            raise NotFound("the complaint filed by this request no longer exists", reason="COMPLAINT_NOT_FOUND")
        return existing
