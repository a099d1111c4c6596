"""CareTask protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.campaign.v1 import campaign_pb2, campaign_service_pb2, care_pb2
from crm_campaign.campaigns.rules import CAMPAIGN_ID
from crm_campaign.care.model import CareTask, CareTaskFilter, Completion
from crm_campaign.offers.rules import OFFER_ID
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import ResourceName
from crmkit.values import set_timestamps

CARE_TASK = ResourceName("careTasks/{care_task_id}")
CUSTOMER = ResourceName("customers/{customer_id}")
OFFER = ResourceName("campaigns/{campaign_id}/offers/{offer_id}",
                     id_pattern={"campaign_id": CAMPAIGN_ID.pattern, "offer_id": OFFER_ID.pattern})


def _id(name: ResourceName, value: str, field: str, bad: list[FieldViolation]) -> tuple[str, ...]:
    """The ids in `value` ("" for each when empty: required fields are judged by the rules)."""
    if not value:
        return ("",) * len(name.id_names)
    found = name.ids_in(value)
    if found is None:
        bad.append(FieldViolation(field, name.rule))
        return ("",) * len(name.id_names)
    return found


def _time(message: Timestamp, field: str, bad: list[FieldViolation]) -> datetime | None:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        bad.append(FieldViolation(field, "must be a valid timestamp"))
        return None


def to_domain(message: care_pb2.CareTask, *, care_task_id: str = "") -> CareTask:
    """A task from a create or update request (output-only fields are not read); INVALID_ARGUMENT
    for names that cannot even be read."""
    bad: list[FieldViolation] = []
    (customer_id,) = _id(CUSTOMER, message.customer, "care_task.customer", bad)
    offer_campaign_id, offer_id = _id(OFFER, message.offer, "care_task.offer", bad)
    due_at = _time(message.due_time, "care_task.due_time", bad) if message.HasField("due_time") else None
    if bad:
        raise InvalidArgument(bad)
    return CareTask(
        care_task_id=care_task_id, customer_id=customer_id, kind=message.kind, title=message.title,
        description=message.description, assignee=message.assignee, priority=message.priority, due_at=due_at,
        state=message.state, offer_campaign_id=offer_campaign_id, offer_id=offer_id)


def to_proto(task: CareTask) -> care_pb2.CareTask:
    message = care_pb2.CareTask(
        name=task.name, etag=task.etag, customer=f"customers/{task.customer_id}",
        kind=care_pb2.CareTaskKind.ValueType(task.kind), title=task.title, description=task.description,
        assignee=task.assignee, priority=care_pb2.CareTaskPriority.ValueType(task.priority),
        state=care_pb2.CareTaskState.ValueType(task.state), outcome=care_pb2.CareTaskOutcome.ValueType(task.outcome),
        outcome_note=task.outcome_note, contact_channel=campaign_pb2.Channel.ValueType(task.contact_channel),
        source=task.source,
        offer=f"campaigns/{task.offer_campaign_id}/offers/{task.offer_id}" if task.offer_id else "",
        creator=task.creator)
    set_timestamps(message, due_time=task.due_at, create_time=task.created_at, update_time=task.updated_at,
                   close_time=task.closed_at)
    return message


def completion_to_domain(request: campaign_service_pb2.CompleteCareTaskRequest) -> Completion:
    return Completion(outcome=request.outcome, outcome_note=request.outcome_note,
                      contact_channel=request.contact_channel)


def filter_to_domain(request: campaign_service_pb2.ListCareTasksRequest) -> CareTaskFilter:
    bad: list[FieldViolation] = []
    (customer_id,) = _id(CUSTOMER, request.customer, "customer", bad)
    due_before = _time(request.due_before, "due_before", bad) if request.HasField("due_before") else None
    if bad:
        raise InvalidArgument(bad)
    return CareTaskFilter(assignee=request.assignee, customer_id=customer_id, states=tuple(request.states),
                          kind=request.kind, due_before=due_before)
