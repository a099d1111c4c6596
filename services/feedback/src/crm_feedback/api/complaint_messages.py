"""Complaint protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.message import Message
from google.type import interval_pb2

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.complaints.model import (
    Action,
    Compensation,
    ComplaintDraft,
    ComplaintFilter,
    ComplaintView,
    Note,
    Step,
    TimeRange,
)
from crm_feedback.complaints.workflow import ComplaintPatch, NoteDraft, ResolutionDraft
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import set_timestamps


def _timestamp(parent: Message, field: str, path: str, bad: list[FieldViolation]) -> datetime | None:
    if not parent.HasField(field):
        return None
    try:
        return getattr(parent, field).ToDatetime(tzinfo=UTC)
    except ValueError:
        bad.append(FieldViolation(path, "is not a valid timestamp"))
        return None


def _interval(parent: Message, field: str, bad: list[FieldViolation]) -> TimeRange:
    if not parent.HasField(field):
        return TimeRange()
    interval: interval_pb2.Interval = getattr(parent, field)
    return TimeRange(start=_timestamp(interval, "start_time", f"{field}.start_time", bad),
                     end=_timestamp(interval, "end_time", f"{field}.end_time", bad))


def draft_from(message: complaint_pb2.Complaint) -> ComplaintDraft:
    """The filing as sent; INVALID_ARGUMENT only for values that cannot even be read."""
    bad: list[FieldViolation] = []
    receive_time = _timestamp(message, "receive_time", "complaint.receive_time", bad)
    if bad:
        raise InvalidArgument(bad)
    return ComplaintDraft(
        customer=message.customer, channel=message.channel, description=message.description,
        category=message.category, subcategory=message.subcategory, priority=message.priority,
        branch_id=message.branch_id, related_resources=tuple(message.related_resources), receive_time=receive_time,
        product=message.product,
    )


def filter_from(request: pb.ListComplaintsRequest) -> ComplaintFilter:
    bad: list[FieldViolation] = []
    query = ComplaintFilter(
        customer=request.customer, statuses=tuple(request.statuses), categories=tuple(request.categories),
        priorities=tuple(request.priorities), channel=request.channel, assignee=request.assignee,
        branch_id=request.branch_id, breached_only=request.breached_only,
        min_escalation_level=request.min_escalation_level,
        receive_interval=_interval(request, "receive_interval", bad),
        due_interval=_interval(request, "due_interval", bad),
        order_by=request.order_by,
    )
    if bad:
        raise InvalidArgument(bad)
    return query


def patch_from(request: pb.UpdateComplaintRequest) -> ComplaintPatch:
    c = request.complaint
    return ComplaintPatch(paths=tuple(request.update_mask.paths), category=c.category, subcategory=c.subcategory,
                          priority=c.priority, branch_id=c.branch_id, related_resources=tuple(c.related_resources),
                          product=c.product)


def note_from(message: complaint_pb2.ComplaintNote) -> NoteDraft:
    return NoteDraft(type=message.type, text=message.text, contact_channel=message.contact_channel)


def resolution_from(message: complaint_pb2.ComplaintResolution) -> ResolutionDraft:
    compensation, readable = None, True
    if message.HasField("compensation"):
        money = message.compensation
        readable = abs(money.nanos) < 10**9 and not (money.units > 0 > money.nanos or money.units < 0 < money.nanos)
        compensation = Compensation(money.currency_code, Decimal(money.units) + Decimal(money.nanos) / 10**9)
    return ResolutionDraft(outcome=message.outcome, summary=message.summary, root_cause=message.root_cause,
                           compensation=compensation, compensation_readable=readable)


def note_to_proto(complaint_name: str, note: Note) -> complaint_pb2.ComplaintNote:
    message = complaint_pb2.ComplaintNote(
        name=f"{complaint_name}/notes/{note.note_id}", type=complaint_pb2.NoteType.ValueType(note.type),
        text=note.text, contact_channel=channel_pb2.Channel.ValueType(note.contact_channel), author=note.author)
    set_timestamps(message, create_time=note.created_at)
    return message


def step_to_proto(complaint_name: str, step: Step) -> complaint_pb2.ComplaintStep:
    message = complaint_pb2.ComplaintStep(
        action=complaint_pb2.ComplaintAction.ValueType(step.action),
        from_status=complaint_pb2.ComplaintStatus.ValueType(step.from_status),
        to_status=complaint_pb2.ComplaintStatus.ValueType(step.to_status), actor=step.actor,
        assignee=step.assignee, escalation_level=step.escalation_level,
        note=f"{complaint_name}/notes/{step.note_id}" if step.note_id is not None else "",
        escalation_trigger=complaint_pb2.EscalationTrigger.ValueType(step.escalation_trigger))
    set_timestamps(message, step_time=step.occurred_at)
    return message


def step_event(view: ComplaintView, step: Step) -> complaint_pb2.ComplaintStepEvent:
    return complaint_pb2.ComplaintStepEvent(step=step_to_proto(view.complaint.name, step),
                                            complaint=to_proto(view, full=False))


_AUTOMATIC = (complaint_pb2.ESCALATION_TRIGGER_BEFORE_BREACH, complaint_pb2.ESCALATION_TRIGGER_BREACH)


def _escalations(view: ComplaintView) -> list[complaint_pb2.Escalation]:
    """Each escalation step, its reason read from the note it recorded."""
    c = view.complaint
    notes = {n.note_id: n.text for n in c.notes}
    found, previous_assignee = [], ""
    for step in c.history:
        if step.action == Action.ESCALATED:
            escalation = complaint_pb2.Escalation(
                level=step.escalation_level, reason=notes.get(step.note_id or 0, ""), actor=step.actor,
                assignee=step.assignee if step.assignee != previous_assignee else "",
                automatic=step.escalation_trigger in _AUTOMATIC,
                trigger=complaint_pb2.EscalationTrigger.ValueType(step.escalation_trigger))
            set_timestamps(escalation, escalate_time=step.occurred_at)
            found.append(escalation)
        previous_assignee = step.assignee
    return found


def to_proto(view: ComplaintView, *, full: bool = True) -> complaint_pb2.Complaint:
    """The complaint; `full` adds its notes and timeline (`COMPLAINT_VIEW_FULL`)."""
    c = view.complaint
    message = complaint_pb2.Complaint(
        name=c.name, complaint_id=c.complaint_id, etag=c.etag, customer=c.customer,
        channel=channel_pb2.Channel.ValueType(c.channel),
        category=classification_pb2.ComplaintCategory.ValueType(c.category), subcategory=c.subcategory,
        priority=complaint_pb2.ComplaintPriority.ValueType(c.priority), description=c.description,
        branch_id=c.branch_id, related_resources=list(c.related_resources), product=c.product,
        status=complaint_pb2.ComplaintStatus.ValueType(c.status),
        assignee=c.assignee, escalation_level=c.escalation_level, filer=c.filer,
        masked_fields=list(view.masked_fields),
    )
    set_timestamps(message, receive_time=c.received_at, create_time=c.created_at, update_time=c.updated_at)
    sla = message.sla
    sla.sla_policy = c.sla.policy
    set_timestamps(sla, respond_by=c.sla.respond_by, resolve_by=c.sla.resolve_by,
                   respond_time=c.sla.responded_at, resolve_time=c.sla.resolved_at,
                   respond_escalate_time=c.sla.respond_escalate_at, resolve_escalate_time=c.sla.resolve_escalate_at)
    sla.respond_breached = view.respond_breached
    sla.resolve_breached = view.resolve_breached
    message.close_reason = complaint_pb2.CloseReason.ValueType(c.close_reason)
    message.duplicate_of = c.duplicate_of
    message.reopen_count = c.reopen_count
    set_timestamps(message, close_time=c.closed_at)
    message.escalations.extend(_escalations(view))
    if c.resolution is not None:
        r = c.resolution
        resolution = message.resolution
        resolution.outcome = complaint_pb2.ResolutionOutcome.ValueType(r.outcome)
        resolution.summary, resolution.root_cause, resolution.resolver = r.summary, r.root_cause, r.resolver
        set_timestamps(resolution, resolve_time=r.resolved_at)
        if r.compensation is not None:
            units = int(r.compensation.amount)
            resolution.compensation.currency_code = r.compensation.currency_code
            resolution.compensation.units = units
            resolution.compensation.nanos = int((r.compensation.amount - units) * 10**9)
    if full:
        message.notes.extend(note_to_proto(c.name, n) for n in c.notes)
        message.history.extend(step_to_proto(c.name, s) for s in c.history)
    return message
