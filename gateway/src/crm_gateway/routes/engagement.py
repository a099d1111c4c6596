"""Serving one customer on a channel, over CampaignService: the next best action (the counter's
marketing-assistant popup, the apps), what the customer did with it, and the customer's contact
history for their relationship manager.

Reads go out with the audit purpose CUSTOMER_SERVICE, as the customer routes do; the campaign
service audits them and keeps a relationship manager to their own book (403 `OUTSIDE_BOOK` /
`NOT_IN_BOOK`, also for a customer it has not heard of from profile yet).

Asking for the next best action stores a decision (its `decision_id`) and records no contact:
the channel reports `RESPONSE_TYPE_SHOWN` when it displays an action, then what the customer
did, each with the decision id, through the response route here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from google.protobuf import timestamp_pb2
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm.campaign.v1 import campaign_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    RESOURCE_ID_PATTERN,
    CustomerId,
    IdempotencyKey,
    PageDep,
    PeersDep,
    answer,
    as_json,
    enum_names,
    keyed,
    page_model,
    paged,
)
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

# The front line serving the customer in front of them (campaign's FRONT_LINE).
FRONT_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
Front = Annotated[Principal, Depends(require_roles(*FRONT_ROLES))]
CUSTOMER_SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)

# The channels a customer is on while being served; SMS and e-mail are outbound only.
InboundChannel = Literal["CHANNEL_BRANCH_COUNTER", "CHANNEL_MOBILE_APP", "CHANNEL_WEB", "CHANNEL_WECHAT",
                         "CHANNEL_CALL_CENTRE", "CHANNEL_RM_VISIT"]
Channel = enum_names(campaign_pb2.Channel)
ResponseType = enum_names(engagement_pb2.ResponseType)
OFFER_PATTERN = r"^campaigns/[A-Za-z0-9_.:-]{1,128}/offers/[A-Za-z0-9_.:-]{1,128}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"

NextBestActions: Any = proto_model(pb.GetNextBestActionResponse.DESCRIPTOR)
OfferResponse: Any = proto_model(engagement_pb2.OfferResponse.DESCRIPTOR)
ContactHistoryPage = page_model("ContactHistoryPage", "entries", engagement_pb2.ContactHistoryEntry.DESCRIPTOR)


class ActionResponse(BaseModel):
    """What the customer did with an action of a next-best-action answer."""

    model_config = ConfigDict(extra="forbid", title="NextBestActionResponseInput")
    decision_id: str = Field(pattern=UUID_PATTERN, description="`decision_id` of the answer that proposed the offer.")
    offer: str = Field(pattern=OFFER_PATTERN, description="The action's `offer`.")
    channel: InboundChannel = Field(description="The channel the customer responded on.")
    type: ResponseType = Field(  # type: ignore[valid-type]  # a Literal built from the proto enum
        description="`RESPONSE_TYPE_SHOWN` when displayed, then what the customer did.")
    response_time: AwareDatetime = Field(description="When, with its offset; not in the future.")


router = APIRouter(prefix="/v1/customers/{customer_id}", tags=["next best action"])


@router.get("/next-best-action", name="get_next_best_action", summary="Next best action",
            description="The actions to offer the customer now on `channel`, best first, each with why, and the "
                        "offers left out with why not (`excluded`), under a `decision_id` to send back with the "
                        "customer's response. An empty `actions` is a normal answer. `degraded` (with "
                        "`degraded_reasons`) when risk did not answer in time: offers above R1 are left out. "
                        "Nothing counts as a contact until `RESPONSE_TYPE_SHOWN` is reported. Audited; a "
                        f"relationship manager only for their own book. Roles: {roles_text(FRONT_ROLES)}.",
            response_model=NextBestActions, responses=problem_responses(400, 404))
async def get_next_best_action(
    customer_id: CustomerId, principal: Front, peers: PeersDep,
    channel: Annotated[InboundChannel, Query(description="The channel the customer is on now.")],
    max_actions: Annotated[int, Query(ge=0, le=10, description="Most actions, 1 to 10; 0 or absent for 3.")] = 0,
) -> JSONResponse:
    response = await peers.campaign.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=f"customers/{customer_id}", channel=campaign_pb2.Channel.Value(channel), max_actions=max_actions,
        audit=CUSTOMER_SERVICE), metadata=forwarded(principal))
    # proto3 JSON leaves out empty lists and false: an app reads "no action" as `actions: []`.
    return answer({"actions": [], "excluded": [], "degraded": False, "degraded_reasons": [], **as_json(response)})


@router.post("/next-best-action/responses", name="record_next_best_action_response", status_code=201,
             summary="Record the response to a next best action",
             description="What the customer did with an action of the answer named by `decision_id`: "
                         "`RESPONSE_TYPE_SHOWN` when the channel displays it (it then counts against frequency caps), "
                         "then accepted, declined, ... The decision must be about this customer and have proposed "
                         "the offer (400 naming `response.decision_id`; 404 `DECISION_NOT_FOUND`). The "
                         "`Idempotency-Key` is required: a retried report must not count twice. "
                         f"Roles: {roles_text(FRONT_ROLES)}.",
             response_model=OfferResponse, responses=problem_responses(400, 404, 409, 413))
async def record_next_best_action_response(
    customer_id: CustomerId, response: Annotated[ActionResponse, Body()], principal: Front, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(response.response_time)
    message = engagement_pb2.OfferResponse(
        customer=f"customers/{customer_id}", offer=response.offer, decision_id=response.decision_id,
        channel=campaign_pb2.Channel.Value(response.channel), type=engagement_pb2.ResponseType.Value(response.type),
        response_time=when)
    recorded = await peers.campaign.RecordResponse(keyed(pb.RecordResponseRequest(response=message), idempotency_key),
                                                   metadata=forwarded(principal))
    return answer(recorded.response, status_code=201)


@router.get("/contact-history", name="list_contact_history", summary="A customer's contact history",
            description="Each offer made to the customer, newest first (the first entry is the last offer): "
                        "campaign, offer, channel, when, the furthest result and, for visits, the relationship "
                        "manager. Filtered by channel, campaign and contact time (`contact_from` inclusive, "
                        "`contact_to` exclusive). Audited; a relationship manager only for their own book. "
                        f"Roles: {roles_text(FRONT_ROLES)}.",
            response_model=ContactHistoryPage, responses=problem_responses(400, 404))
async def list_contact_history(
    customer_id: CustomerId, principal: Front, peers: PeersDep, page: PageDep,
    channel: Annotated[Channel | None,  # type: ignore[valid-type]  # a Literal built from the proto enum
                       Query(description="Only contacts on this channel.")] = None,
    campaign_id: Annotated[str | None, Query(pattern=RESOURCE_ID_PATTERN,
                                             description="Only contacts by this campaign.")] = None,
    contact_from: Annotated[AwareDatetime | None, Query(description="Only contacts at or after this time.")] = None,
    contact_to: Annotated[AwareDatetime | None, Query(description="Only contacts before this time.")] = None,
) -> JSONResponse:
    request = page.apply(pb.ListContactHistoryRequest(
        customer=f"customers/{customer_id}", channel=campaign_pb2.Channel.Value(channel) if channel
        else campaign_pb2.CHANNEL_UNSPECIFIED,
        campaign=f"campaigns/{campaign_id}" if campaign_id else "", audit=CUSTOMER_SERVICE))
    _set_time(request.contact_interval.start_time, contact_from)
    _set_time(request.contact_interval.end_time, contact_to)
    if contact_from is None and contact_to is None:
        request.ClearField("contact_interval")
    response = await peers.campaign.ListContactHistory(request, metadata=forwarded(principal))
    return answer(paged(response, "entries"))


def _set_time(field: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    if value is not None:
        field.FromDatetime(value)
