"""Customer 360: one customer from every service, in one response, answered when a service is not.

The customer itself (profile GetCustomer) is essential: its error is the route's error (404, 403
for a relationship manager outside their book, 503). Every other part is fetched at the same
time, each with its own deadline (`CRM_GATEWAY_360_PART_DEADLINE_SECONDS`), and a part whose
service is slow or down is left out: the answer is then `partial`, and `missing` names each part,
its service and why (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...). A part the caller's roles may not
read is `withheld` instead (not an outage; the answer is complete for that caller).

Lists are the services' first pages (newest or most relevant first, as each service orders
them); the channel follows each list's own route for more. Adding a part as a service gains an
RPC is one `Part` below: the response schema is built from the parts.

A part whose service answers that it has nothing for this customer (risk: no current churn score
yet; segment: the customer not yet in its read model; campaign: a customer it has never heard of)
is `null`: the service answered, so the part is neither missing nor partial.

The contact history is campaign's `ListContactHistory`, open to channel applications and
relationship managers (an RM outside their book is refused by profile first, for the customer
itself); the read is audited by campaign for customer service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from pydantic import BaseModel, create_model

from crm.campaign.v1 import campaign_service_pb2 as campaign_pb
from crm.common.v1 import audit_pb2
from crm.feedback.v1 import complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as feedback_pb
from crm.profile.v1 import consent_pb2, customer_pb2, holding_pb2
from crm.profile.v1 import profile_service_pb2 as profile_pb
from crm.risk.v1 import risk_service_pb2 as risk_pb
from crm.segment.v1 import segment_service_pb2 as segment_pb
from crm_gateway.auth import Metadata, forwarded, require_roles, roles_text
from crm_gateway.peers import Peers
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import CustomerId, PeersDep, answer
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role
from crmkit.logs import get_logger

log = get_logger("crm.gateway.customer360")

READ_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.RISK_OFFICER, Role.ANALYST, Role.ADMIN})
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
CUSTOMER_SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
OPEN_COMPLAINTS = [complaint_pb2.COMPLAINT_STATUS_OPEN, complaint_pb2.COMPLAINT_STATUS_ACKNOWLEDGED,
                   complaint_pb2.COMPLAINT_STATUS_IN_PROGRESS, complaint_pb2.COMPLAINT_STATUS_REOPENED]
FIRST_PAGE = 50
# The caller may not read this part: left out, and the answer is still complete for them.
WITHHELD_CODES = frozenset({grpc.StatusCode.PERMISSION_DENIED})
# The service answered that it has nothing for this customer: the part is null, not missing.
NOTHING_YET = frozenset({grpc.StatusCode.NOT_FOUND})

Call = Callable[[Peers, str, Metadata, float], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the 360: the JSON key, the service, the call (peers, `customers/{id}`, the
    caller's metadata, the deadline) and the response field that becomes the part."""

    name: str
    service: str
    call: Call
    field: str
    description: str
    # Codes meaning "nothing for this customer" (an answer, not an outage): the part is null.
    empty_codes: frozenset[grpc.StatusCode] = frozenset()

    def value_descriptor(self, response_type: Descriptor) -> tuple[Descriptor, bool]:
        field = response_type.fields_by_name[self.field]
        if field.message_type is None:
            raise TypeError(f"{response_type.full_name}.{self.field} is not a message")
        return field.message_type, field.is_repeated


PARTS: tuple[tuple[Part, Descriptor], ...] = (
    (Part("holdings", "profile", lambda p, c, md, t: p.profile.ListHoldings(
        holding_pb2.ListHoldingsRequest(parent=c, page_size=FIRST_PAGE, audit=CUSTOMER_SERVICE),
        metadata=md, timeout=t), "holdings", "The customer's products (first page)."),
     holding_pb2.ListHoldingsResponse.DESCRIPTOR),
    (Part("consents", "profile", lambda p, c, md, t: p.profile.ListConsents(
        consent_pb2.ListConsentsRequest(parent=c, page_size=FIRST_PAGE, audit=CUSTOMER_SERVICE),
        metadata=md, timeout=t), "states", "The customer's consent per purpose and channel."),
     consent_pb2.ListConsentsResponse.DESCRIPTOR),
    (Part("contact_preferences", "profile", lambda p, c, md, t: p.profile.GetContactPreferences(
        consent_pb2.GetContactPreferencesRequest(name=f"{c}/contactPreferences", audit=CUSTOMER_SERVICE),
        metadata=md, timeout=t), "contact_preferences", "How and when the customer wants to be contacted."),
     consent_pb2.GetContactPreferencesResponse.DESCRIPTOR),
    (Part("segment_membership_changes", "segment", lambda p, c, md, t: p.segment.ListMembershipChanges(
        segment_pb.ListMembershipChangesRequest(parent="segments/-", customer=c, page_size=FIRST_PAGE),
        metadata=md, timeout=t), "changes", "Segments the customer entered or left, newest first."),
     segment_pb.ListMembershipChangesResponse.DESCRIPTOR),
    (Part("open_complaints", "feedback", lambda p, c, md, t: p.feedback.ListComplaints(
        feedback_pb.ListComplaintsRequest(customer=c, statuses=OPEN_COMPLAINTS, page_size=FIRST_PAGE,
                                          audit=CUSTOMER_SERVICE),
        metadata=md, timeout=t), "complaints", "The customer's complaints not yet resolved."),
     feedback_pb.ListComplaintsResponse.DESCRIPTOR),
    (Part("classification", "segment", lambda p, c, md, t: p.segment.GetCustomerClassification(
        segment_pb.GetCustomerClassificationRequest(customer=c, audit=CUSTOMER_SERVICE),
        metadata=md, timeout=t), "classification",
        "Value tier, activity layer, lifecycle stage and the tier's service standard; null while the "
        "customer is not yet in segment's read model.", empty_codes=NOTHING_YET),
     segment_pb.GetCustomerClassificationResponse.DESCRIPTOR),
    (Part("churn_score", "risk", lambda p, c, md, t: p.risk.GetChurnScore(
        risk_pb.GetChurnScoreRequest(customer=c), metadata=md, timeout=t), "score",
        "The current (last written-back) churn score with its drivers, read without re-scoring; null "
        "when the customer has none.", empty_codes=NOTHING_YET),
     risk_pb.GetChurnScoreResponse.DESCRIPTOR),
    (Part("contact_history", "campaign", lambda p, c, md, t: p.campaign.ListContactHistory(
        campaign_pb.ListContactHistoryRequest(customer=c, page_size=FIRST_PAGE, audit=CUSTOMER_SERVICE),
        metadata=md, timeout=t), "entries",
        "Offers made to the customer (sent, shown, presented on a visit) with their result, newest first "
        "(the first entry is the last offer made); null when campaign has never heard of the customer.",
        empty_codes=NOTHING_YET),
     campaign_pb.ListContactHistoryResponse.DESCRIPTOR),
)


class PartStatus(BaseModel):
    """A part left out of the answer, its service and why."""

    part: str
    service: Literal["profile", "segment", "campaign", "feedback", "risk"]
    reason: str
    """The gRPC status of the failed call: `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`, ..."""


def _response_model() -> type[BaseModel]:
    fields: dict[str, Any] = {"customer": (proto_model(customer_pb2.Customer.DESCRIPTOR), ...)}
    for part, response_type in PARTS:
        message, repeated = part.value_descriptor(response_type)
        model = proto_model(message)
        fields[part.name] = (list[model] | None if repeated else model | None, None)  # type: ignore[valid-type]
    fields["partial"] = (bool, ...)
    fields["missing"] = (list[PartStatus], ...)
    fields["withheld"] = (list[PartStatus], ...)
    return create_model("Customer360", __doc__="The customer and what each service knows of them; a part "
                        "that could not be fetched is absent and named in `missing`.", **fields)


Customer360 = _response_model()
router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get(
    "/{customer_id}/360", name="get_customer_360", summary="Customer 360",
    description="The customer with their holdings, consents and contact preferences (profile), segment "
                "membership changes and classification (segment), the current churn score (risk), open "
                "complaints (feedback) and contact history (campaign), fetched in parallel, each "
                "part within its own deadline. When a service is slow or down the answer still comes, "
                "`partial: true`, with the part absent and named in `missing`; parts the caller's roles "
                "may not read are named in `withheld`. The customer itself is required: its errors are this "
                f"route's. Read for customer service and audited. Roles: {roles_text(READ_ROLES)}.",
    response_model=Customer360, responses=problem_responses(400, 404),
)
async def get_customer_360(
    customer_id: CustomerId, principal: Reader, peers: PeersDep, request: Request,
) -> JSONResponse:
    name = f"customers/{customer_id}"
    metadata = forwarded(principal)
    deadline: float = request.app.state.settings.customer_360_part_deadline_seconds

    async def fetch(part: Part) -> Any:
        return await part.call(peers, name, metadata, deadline)

    parts = [asyncio.create_task(fetch(part)) for part, _ in PARTS]
    try:
        customer = await peers.profile.GetCustomer(
            profile_pb.GetCustomerRequest(name=name, audit=CUSTOMER_SERVICE), metadata=metadata)
    except BaseException:
        for task in parts:
            task.cancel()
        await asyncio.gather(*parts, return_exceptions=True)
        raise
    results = await asyncio.gather(*parts, return_exceptions=True)
    body: dict[str, Any] = {"customer": json_format.MessageToDict(customer.customer, preserving_proto_field_name=True)}
    missing: list[dict[str, str]] = []
    withheld: list[dict[str, str]] = []
    for (part, _), result in zip(PARTS, results, strict=True):
        if isinstance(result, grpc.aio.AioRpcError):
            status = {"part": part.name, "service": part.service, "reason": result.code().name}
            if result.code() in part.empty_codes:
                body[part.name] = None
            elif result.code() in WITHHELD_CODES:
                withheld.append(status)
            else:
                missing.append(status)
                log.warning("customer_360_part_missing", part=part.name, service=part.service,
                            grpc_code=result.code().name)
            continue
        if isinstance(result, BaseException):
            raise result
        body[part.name] = _part_json(result, part.field)
    body.update(partial=bool(missing), missing=missing, withheld=withheld)
    return answer(body)


def _part_json(response: Message, field: str) -> Any:
    value = getattr(response, field)
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    return [json_format.MessageToDict(item, preserving_proto_field_name=True) for item in value]
