"""Complaint protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.type import interval_pb2

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.complaints.model import ComplaintDraft, ComplaintFilter, ComplaintView, TimeRange
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


def to_proto(view: ComplaintView) -> complaint_pb2.Complaint:
    c = view.complaint
    message = complaint_pb2.Complaint(
        name=c.name, complaint_id=c.complaint_id, etag=c.etag, customer=c.customer,
        channel=channel_pb2.Channel.ValueType(c.channel),
        category=classification_pb2.ComplaintCategory.ValueType(c.category), subcategory=c.subcategory,
        priority=complaint_pb2.ComplaintPriority.ValueType(c.priority), description=c.description,
        branch_id=c.branch_id, related_resources=list(c.related_resources),
        status=complaint_pb2.ComplaintStatus.ValueType(c.status),
        assignee=c.assignee, escalation_level=c.escalation_level, filer=c.filer,
        masked_fields=list(view.masked_fields),
    )
    set_timestamps(message, receive_time=c.received_at, create_time=c.created_at, update_time=c.updated_at)
    sla = message.sla
    sla.sla_policy = c.sla.policy
    set_timestamps(sla, respond_by=c.sla.respond_by, resolve_by=c.sla.resolve_by,
                   respond_time=c.sla.responded_at, resolve_time=c.sla.resolved_at)
    sla.respond_breached = view.respond_breached
    sla.resolve_breached = view.resolve_breached
    return message
