"""Readers of the change-event payloads that more than one service follows from a peer's feed,
so every follower reads a peer's contract the same way (one meaning of "open complaint").

Only contract knowledge lives here (resource types, which statuses count as open, where a
payload carries the resource); what a follower stores is its own read model's business.
"""

from __future__ import annotations

from crm.campaign.v1 import audience_pb2, engagement_pb2
from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import complaint_pb2

COMPLAINT_TYPE = "crm.feedback.v1.Complaint"
CHURN_SCORE_TYPE = "crm.risk.v1.ChurnScore"
DISPATCH_TYPE = "crm.campaign.v1.Dispatch"
OFFER_RESPONSE_TYPE = "crm.campaign.v1.OfferResponse"
# Dispatch states in which the channel provider accepted the message: the customer was contacted.
CONTACTED_DISPATCH_STATES = frozenset({audience_pb2.DISPATCH_STATE_SENT, audience_pb2.DISPATCH_STATE_DELIVERED})
# Responses that show interest in the offer (SHOWN is a contact, DECLINED and OPTED_OUT are not).
POSITIVE_RESPONSE_TYPES = frozenset({
    engagement_pb2.RESPONSE_TYPE_OPENED, engagement_pb2.RESPONSE_TYPE_CLICKED,
    engagement_pb2.RESPONSE_TYPE_INTERESTED, engagement_pb2.RESPONSE_TYPE_ACCEPTED})
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


def dispatch_of(event: change_event_pb2.ChangeEvent) -> audience_pb2.Dispatch | None:
    """The dispatch as a campaign event leaves it (queued, and at each state change); None else."""
    dispatch = audience_pb2.Dispatch()
    if event.resource_type == DISPATCH_TYPE and event.payload.Unpack(dispatch):
        return dispatch
    return None


def offer_response_of(event: change_event_pb2.ChangeEvent) -> engagement_pb2.OfferResponse | None:
    """The response a campaign event records (each once, when recorded); None else."""
    response = engagement_pb2.OfferResponse()
    if event.resource_type == OFFER_RESPONSE_TYPE and event.payload.Unpack(response):
        return response
    return None
