"""Readers of the change-event payloads that more than one service follows from a peer's feed,
so every follower reads a peer's contract the same way (one meaning of "open complaint").

Only contract knowledge lives here (resource types, which statuses count as open, where a
payload carries the resource); what a follower stores is its own read model's business.
"""

from __future__ import annotations

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import complaint_pb2

COMPLAINT_TYPE = "crm.feedback.v1.Complaint"
CHURN_SCORE_TYPE = "crm.risk.v1.ChurnScore"
# Complaint statuses in which the bank still owes the customer an answer.
OPEN_COMPLAINT_STATUSES = frozenset({
    complaint_pb2.COMPLAINT_STATUS_OPEN, complaint_pb2.COMPLAINT_STATUS_ACKNOWLEDGED,
    complaint_pb2.COMPLAINT_STATUS_IN_PROGRESS, complaint_pb2.COMPLAINT_STATUS_REOPENED})

_CREATED, _UPDATED, _STEP = (change_event_pb2.CHANGE_TYPE_CREATED, change_event_pb2.CHANGE_TYPE_UPDATED,
                             change_event_pb2.CHANGE_TYPE_EVENT)


def complaint_of(event: change_event_pb2.ChangeEvent) -> complaint_pb2.Complaint | None:
    """The complaint as a feedback event leaves it: the payload of a filing or an update, or the
    complaint inside a workflow step (acknowledged, resolved, closed, reopened:
    CHANGE_TYPE_EVENT). None for anything else (an SLA breach, a deletion)."""
    if event.resource_type != COMPLAINT_TYPE:
        return None
    complaint, step = complaint_pb2.Complaint(), complaint_pb2.ComplaintStepEvent()
    if event.change_type in (_CREATED, _UPDATED) and event.payload.Unpack(complaint):
        return complaint
    if event.change_type == _STEP and event.payload.Unpack(step) and step.HasField("complaint"):
        return step.complaint
    return None


def is_open(complaint: complaint_pb2.Complaint) -> bool:
    return complaint.status in OPEN_COMPLAINT_STATUSES
