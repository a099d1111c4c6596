"""Complaint orchestration, in the caller's unit of work (crmkit.db's rule); audit and change feed in the same
transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from google.protobuf.message import Message

from crm_feedback.classification.model import PredictedCategory
from crm_feedback.complaints import rules
from crm_feedback.complaints.model import (
    Action,
    CloseReason,
    Complaint,
    ComplaintDraft,
    ComplaintFilter,
    ComplaintView,
    Note,
    Status,
    Step,
)
from crm_feedback.complaints.repository import ComplaintRepository
from crm_feedback.complaints.workflow import Change, ComplaintPatch, NoteDraft, ResolutionDraft
from crm_feedback.customers.follower import CustomerDirectory
from crm_feedback.customers.tiers import TierStandards
from crm_feedback.sla import rules as sla_rules
from crm_feedback.sla.clock_repository import SlaClockRepository
from crm_feedback.sla.clocks import Breach
from crm_feedback.sla.rules import SlaPolicy
from crm_feedback.sla.service import SlaPolicies
from crm_feedback.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose, check_purpose
from crmkit.validation import Violations

log = get_logger("crm.feedback.complaints")

# Turn a stored complaint (and a workflow step) into change-feed payloads (masked messages);
# supplied by the API layer so this module stays free of generated protos.
FeedPayload = Callable[[Complaint], Message]
StepPayload = Callable[[Complaint, Step], Message]
BreachPayload = Callable[[Breach], Message]
# Decides one step on the locked complaint: (complaint, now, next note id) -> the change.
Decide = Callable[[Complaint, datetime, int], Change]
# The active category classifier's category for a description (None without one), read in the
# caller's unit of work; supplied by the wiring (classification.service.TextClassifiers).
PredictCategory = Callable[[UnitOfWork, str], Awaitable[PredictedCategory | None]]


async def no_prediction(uow: UnitOfWork, description: str) -> PredictedCategory | None:
    return None


class Complaints:
    """The complaint use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: ComplaintRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        audit: AuditWriter, page_tokens: PageTokens, sla_policies: SlaPolicies, feed_payload: FeedPayload,
        step_payload: StepPayload, breach_payload: BreachPayload, clocks: SlaClockRepository,
        customers: CustomerDirectory | None = None, tiers: TierStandards | None = None, clock: Clock = utc_now,
        predict_category: PredictCategory = no_prediction,
    ) -> None:
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._sla_policies = sla_policies
        self._feed_payload = feed_payload
        self._step_payload = step_payload
        self._breach_payload = breach_payload
        self._clocks = clocks
        self._customers = customers or CustomerDirectory(None)
        self._tiers = tiers
        self._clock = clock
        self._predict_category = predict_category

    async def file(self, *, uow: UnitOfWork, draft: ComplaintDraft, request_id: str, request: Message,
                   actor: Principal) -> ComplaintView:
        now = self._clock()
        violations = rules.validate_draft(draft, now=now)
        key = rules.request_key(request_id, violations)
        violations.raise_if_any()
        assert key is not None  # request_key added a violation otherwise
        number = await self._repository.next_number(uow)
        choose = await self._sla_policies.select(uow=uow)
        tier_respond = (await self._tiers.respond_within(uow, rules.customer_id_of(draft.customer) or "")
                        if self._tiers is not None else None)
        predicted = None if draft.category else await self._predict_category(uow, draft.description)
        triaged = dataclasses.replace(draft, category=predicted.category) if predicted else draft
        complaint = rules.new_complaint(draft, complaint_id=rules.complaint_id_for(number, now),
                                       filer=actor.subject, now=now, policy=choose(*rules.triage_of(triaged)),
                                       tier_respond=tier_respond, predicted=predicted)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=key, request=request, method="FileComplaint",
            resource_name=complaint.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return rules.view_for(actor, replayed, now=now)
        verified, manager = await self._customers.verify(uow, complaint.customer_id)
        if not verified:
            log.info("complaint_customer_unverified", complaint_id=complaint.complaint_id)
        filed = await self._repository.insert(uow, dataclasses.replace(complaint, customer_manager=manager))
        await self._repository.insert_step(uow, filed.complaint_id, Step(
            action=Action.FILED, from_status=Status.OPEN, to_status=Status.OPEN, actor=actor.subject, occurred_at=now))
        await self._outbox.append(uow, resource_name=filed.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._feed_payload(filed), actor=actor.subject)
        await self._sync_clocks(uow, filed, now=now, actor=actor.subject)
        # Last before the commit: the audit chain's lock is held from here to the commit.
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="complaint.file", resource_name=filed.name, purpose="COMPLAINT")])
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
        (full,) = await self._with_timelines(uow, [found])
        return rules.view_for(actor, full, now=self._clock())

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
        items = await self._with_timelines(uow, page.items)
        return Page([rules.view_for(actor, c, now=now) for c in items], page.next_page_token)

    # --- the workflow: one step per call, each on the locked complaint ------------------------

    async def update(self, *, uow: UnitOfWork, name: str, patch: ComplaintPatch, etag: str, request: Message,
                     actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_patch(patch, violations)
        choose = await self._sla_policies.select(uow=uow)
        return await self._work(
            uow=uow, action=Action.UPDATED, name=name, etag=etag, request_id="", request=request, actor=actor,
            violations=violations, name_field="complaint.name",
            decide=lambda c, now, _: rules.update(c, patch=patch, actor=actor.subject, now=now,
                                                  policy=_policy_for(choose, c, patch)))

    async def assign(self, *, uow: UnitOfWork, name: str, assignee: str, note: str, etag: str, request_id: str,
                     request: Message, actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_assign(assignee=assignee, note=note, v=violations)
        return await self._work(
            uow=uow, action=Action.ASSIGNED, name=name, etag=etag, request_id=request_id, request=request,
            actor=actor, violations=violations,
            decide=lambda c, now, note_id: rules.assign(c, assignee=assignee, note=note, actor=actor.subject,
                                                        now=now, note_id=note_id))

    async def acknowledge(self, *, uow: UnitOfWork, name: str, response_channel: int, note: str, etag: str,
                          request_id: str, request: Message, actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_acknowledge(response_channel=response_channel, note=note, v=violations)
        return await self._work(
            uow=uow, action=Action.ACKNOWLEDGED, name=name, etag=etag, request_id=request_id, request=request,
            actor=actor, violations=violations,
            decide=lambda c, now, note_id: rules.acknowledge(c, response_channel=response_channel, note=note,
                                                             actor=actor.subject, now=now, note_id=note_id))

    async def add_note(self, *, uow: UnitOfWork, parent: str, note: NoteDraft, request_id: str, request: Message,
                       actor: Principal) -> tuple[Complaint, Note]:
        """The note added (or, for a repeated request_id, the note the first call added)."""
        violations = Violations()
        rules.validate_note(note, violations)
        view = await self._work(
            uow=uow, action=Action.NOTE_ADDED, name=parent, etag="", request_id=request_id, request=request,
            actor=actor, violations=violations, name_field="parent", answer_note=True,
            decide=lambda c, now, note_id: rules.add_note(c, note=note, actor=actor.subject, now=now,
                                                          note_id=note_id))
        return view.complaint, view.complaint.notes[-1] if view.complaint.notes else _missing_note()

    async def escalate(self, *, uow: UnitOfWork, name: str, reason: str, assignee: str, etag: str,
                       request_id: str, request: Message, actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_escalate(reason=reason, assignee=assignee, v=violations)
        return await self._work(
            uow=uow, action=Action.ESCALATED, name=name, etag=etag, request_id=request_id, request=request,
            actor=actor, violations=violations,
            decide=lambda c, now, note_id: rules.escalate(c, reason=reason, assignee=assignee, actor=actor.subject,
                                                          now=now, note_id=note_id))

    async def resolve(self, *, uow: UnitOfWork, name: str, resolution: ResolutionDraft, etag: str, request_id: str,
                      request: Message, actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_resolve(resolution, violations)
        return await self._work(
            uow=uow, action=Action.RESOLVED, name=name, etag=etag, request_id=request_id, request=request,
            actor=actor, violations=violations,
            decide=lambda c, now, _: rules.resolve(c, resolution=resolution, actor=actor.subject, now=now))

    async def close(self, *, uow: UnitOfWork, name: str, reason: int, duplicate_of: str, note: str, etag: str,
                    request_id: str, request: Message, actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_close(reason=reason, duplicate_of=duplicate_of, note=note,
                             complaint_id=rules.complaint_id_of(name) or "", v=violations)
        original = None
        if duplicate_of and not violations:
            original = await self._repository.get(uow, rules.complaint_id_of(duplicate_of) or "")

        def decide(c: Complaint, now: datetime, note_id: int) -> Change:
            if reason == CloseReason.DUPLICATE:
                rules.check_duplicate(c, original)
            return rules.close(c, reason=reason, duplicate_of=duplicate_of, note=note, actor=actor.subject, now=now,
                               note_id=note_id)

        return await self._work(
            uow=uow, action=Action.CLOSED, name=name, etag=etag, request_id=request_id, request=request,
            actor=actor, violations=violations, close_reason=reason, decide=decide)

    async def reopen(self, *, uow: UnitOfWork, name: str, reason: str, etag: str, request_id: str, request: Message,
                     actor: Principal) -> ComplaintView:
        violations = Violations()
        rules.validate_reopen(reason=reason, v=violations)
        choose = await self._sla_policies.select(uow=uow)
        return await self._work(
            uow=uow, action=Action.REOPENED, name=name, etag=etag, request_id=request_id, request=request,
            actor=actor, violations=violations,
            decide=lambda c, now, note_id: rules.reopen(c, reason=reason, actor=actor.subject, now=now,
                                                        note_id=note_id, policy=_policy_for(choose, c)))

    async def _work(
        self, *, uow: UnitOfWork, action: Action, name: str, etag: str, request_id: str, request: Message,
        actor: Principal, violations: Violations, decide: Decide, name_field: str = "name", close_reason: int = 0,
        answer_note: bool = False,
    ) -> ComplaintView:
        """One workflow step: validate, replay a repeated request_id, lock and check the complaint (book,
        transition, then etag), apply the step, and record it: timeline, audit record and feed event,
        all in the caller's unit of work."""
        complaint_id, key = rules.target_key(name, request_id, violations, field=name_field)
        violations.raise_if_any()
        not_found = lambda: NotFound(f"complaint {complaint_id} not found", reason="COMPLAINT_NOT_FOUND")  # noqa: E731
        # Locked before the key is claimed: a note's name (the answer a retry replays) takes the
        # next note number, which only the lock makes safe to count.
        locked = await load_for_update(self._repository.get(uow, complaint_id, for_update=True), etag="",
                                       not_found=not_found)
        note_id = await self._repository.next_note_id(uow, complaint_id)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=key, request=request, method=_METHODS[action],
            resource_name=locked.note_name(note_id) if answer_note else locked.name,
            replay=lambda answer: self._replay_step(uow=uow, complaint=locked, answer=answer, actor=actor))
        if replayed is not None:
            return replayed
        current = await load_for_update(
            _ready(locked), etag=etag, not_found=not_found,
            check=lambda c: rules.check_workable(action, actor, c, close_reason=close_reason))
        now = self._clock()
        change = decide(current, now, note_id)
        await self._repository.update(uow, change.complaint)
        await self._sync_clocks(uow, change.complaint, now=now, actor=actor.subject)
        if change.note is not None:
            await self._repository.insert_note(uow, complaint_id, change.note)
        await self._repository.insert_step(uow, complaint_id, change.step)
        (full,) = await self._with_timelines(uow, [change.complaint])
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_EVENT,
                                  payload=self._step_payload(full, change.step), actor=actor.subject,
                                  resource_type=COMPLAINT_TYPE)
        # Last before the commit: the audit chain's lock is held from here to the commit.
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action=f"complaint.{action.name.lower()}", resource_name=current.name,
            purpose="COMPLAINT", fields=_changed_personal_fields(change))])
        if answer_note:
            full = dataclasses.replace(full, notes=(change.note,) if change.note else ())
        return rules.view_for(actor, full, now=now)

    # --- the SLA clocks ------------------------------------------------------------------------

    async def run_clocks(self, *, uow: UnitOfWork, now: datetime, limit: int) -> int:
        """One round of the clock worker: complaints with a clock past its escalation point or
        deadline, locked (SKIP LOCKED: another replica's complaints are left to it), each
        escalated once for what is due and its events recorded, so no replica repeats them; a
        breach goes on the feed as an `SlaBreach`. How many complaints it took."""
        complaint_ids = await self._clocks.claim(uow, now=now, limit=limit)
        for complaint_id in complaint_ids:
            complaint = await self._repository.get(uow, complaint_id)
            events = sla_rules.due_events(await self._clocks.running_due(uow, complaint_id, now=now), now=now)
            if complaint is None or not events:
                continue
            change = rules.escalate_by_clock(complaint, events, now=now,
                                             note_id=await self._repository.next_note_id(uow, complaint_id))
            if change is not None:
                await self._record(uow, change, action=Action.ESCALATED, actor=rules.SYSTEM_SLA)
                complaint = change.complaint
            await self._clocks.mark(uow, complaint_id, events, now=now, snapshot=rules.snapshot(complaint))
            for event in events:
                if event.event is sla_rules.ClockEvent.BREACH:
                    await self._publish_breach(uow, complaint_id, event.clock, event.cycle, now=now,
                                               actor=rules.SYSTEM_SLA)
        return len(complaint_ids)

    async def _record(self, uow: UnitOfWork, change: Change, *, action: Action, actor: str) -> Complaint:
        """Store a step decided by the service itself (no caller): complaint, note, timeline, feed."""
        complaint = change.complaint
        await self._repository.update(uow, complaint)
        if change.note is not None:
            await self._repository.insert_note(uow, complaint.complaint_id, change.note)
        await self._repository.insert_step(uow, complaint.complaint_id, change.step)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor, action=f"complaint.{action.name.lower()}", resource_name=complaint.name,
            purpose="COMPLAINT", fields=_changed_personal_fields(change))])
        (full,) = await self._with_timelines(uow, [complaint])
        await self._outbox.append(uow, resource_name=complaint.name, change_type=ChangeType.CHANGE_TYPE_EVENT,
                                  payload=self._step_payload(full, change.step), actor=actor,
                                  resource_type=COMPLAINT_TYPE)
        return full

    async def _sync_clocks(self, uow: UnitOfWork, complaint: Complaint, *, now: datetime, actor: str) -> None:
        """The clock rows follow the complaint; a clock this step stopped late is a breach (on the feed)."""
        late = await self._clocks.sync(uow, rules.clock_states(complaint), snapshot=rules.snapshot(complaint),
                                       now=now)
        for clock, cycle in late:
            await self._publish_breach(uow, complaint.complaint_id, clock, cycle, now=now, actor=actor)

    async def _publish_breach(self, uow: UnitOfWork, complaint_id: str, clock: sla_rules.SlaClock, cycle: int, *,
                              now: datetime, actor: str) -> None:
        breach = await self._clocks.breach(uow, complaint_id, clock, cycle, now=now)
        await self._outbox.append(uow, resource_name=f"complaints/{complaint_id}",
                                  change_type=ChangeType.CHANGE_TYPE_EVENT, payload=self._breach_payload(breach),
                                  actor=actor, resource_type=COMPLAINT_TYPE)

    async def _replay_step(self, *, uow: UnitOfWork, complaint: Complaint, answer: str,
                           actor: Principal) -> ComplaintView:
        """The answer of an earlier call with the same request_id: the complaint as it is now, or (for a
        note, whose name is the answer) only that note."""
        rules.check_case(actor, complaint)
        (full,) = await self._with_timelines(uow, [complaint])
        if answer != complaint.name:
            note_id = int(answer.rsplit("/", 1)[1])
            full = dataclasses.replace(full, notes=tuple(n for n in full.notes if n.note_id == note_id))
        return rules.view_for(actor, full, now=self._clock())

    async def _with_timelines(self, uow: UnitOfWork, complaints: Sequence[Complaint]) -> tuple[Complaint, ...]:
        timelines = await self._repository.timelines(uow, [c.complaint_id for c in complaints])
        return tuple(dataclasses.replace(c, notes=timelines[c.complaint_id][0], history=timelines[c.complaint_id][1])
                     for c in complaints)

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Complaint:
        """The complaint an earlier call with the same request_id filed."""
        existing = await self._repository.get(uow, name.removeprefix("complaints/"))
        if existing is None:
            raise NotFound("the complaint filed by this request no longer exists", reason="COMPLAINT_NOT_FOUND")
        return existing


COMPLAINT_TYPE = "crm.feedback.v1.Complaint"
_METHODS = {
    Action.UPDATED: "UpdateComplaint", Action.ASSIGNED: "AssignComplaint", Action.ACKNOWLEDGED: "AcknowledgeComplaint",
    Action.NOTE_ADDED: "AddComplaintNote", Action.ESCALATED: "EscalateComplaint", Action.RESOLVED: "ResolveComplaint",
    Action.CLOSED: "CloseComplaint", Action.REOPENED: "ReopenComplaint",
}


def _changed_personal_fields(change: Change) -> tuple[str, ...]:
    fields = ("notes.text",) if change.note is not None else ()
    return fields + (("resolution.summary",) if change.step.action == Action.RESOLVED else ())


def _policy_for(choose: Callable[[int, int], SlaPolicy], complaint: Complaint,
                patch: ComplaintPatch | None = None) -> SlaPolicy:
    """The policy for the complaint's category and priority as they are after `patch`."""
    category = patch.category if patch and "category" in patch.paths else complaint.category
    priority = patch.priority if patch and "priority" in patch.paths else complaint.priority
    return choose(category, priority)


async def _ready(value: Complaint) -> Complaint:
    """`value`, already read, as the awaitable `load_for_update` takes."""
    return value


def _missing_note() -> Note:
    raise NotFound("the note added by this request no longer exists", reason="NOTE_NOT_FOUND")
