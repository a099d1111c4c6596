"""Campaign routes over CampaignService: the operator console's campaigns, their approval (four
eyes: the service refuses the creator) and results, and a channel recording a customer's response
to an offer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from crm.campaign.v1 import campaign_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    RESOURCE_ID_PATTERN,
    IdempotencyKey,
    PageDep,
    PeersDep,
    answer,
    enum_names,
    keyed,
    page_model,
    paged,
    parse,
)
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

READ_ROLES = frozenset({Role.MARKETER, Role.ANALYST, Role.AUDITOR, Role.ADMIN})
APPROVE_ROLES = frozenset({Role.MARKETER, Role.ADMIN})
RESPOND_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Approver = Annotated[Principal, Depends(require_roles(*APPROVE_ROLES))]
Responder = Annotated[Principal, Depends(require_roles(*RESPOND_ROLES))]

Campaign: Any = proto_model(campaign_pb2.Campaign.DESCRIPTOR)
CampaignPage = page_model("CampaignPage", "campaigns", campaign_pb2.Campaign.DESCRIPTOR)
Results: Any = proto_model(pb.GetCampaignResultsResponse.DESCRIPTOR.fields_by_name["results"].message_type)
OfferResponse: Any = proto_model(engagement_pb2.OfferResponse.DESCRIPTOR)
OfferResponseInput: Any = proto_model(engagement_pb2.OfferResponse.DESCRIPTOR, for_input=True)


class Approval(BaseModel):
    """The approver's decision: the campaign's current `etag` and a comment."""

    model_config = ConfigDict(extra="forbid", title="CampaignApprovalInput")
    etag: str = Field(min_length=1, max_length=128)
    comment: str = Field(default="", max_length=2000)


CampaignId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="The campaign's id.")]
State = enum_names(campaign_pb2.CampaignState)

router = APIRouter(tags=["campaigns"])


@router.get("/v1/campaigns", name="list_campaigns", summary="List campaigns",
            description=f"Campaigns, filtered by state, a page at a time. Roles: {roles_text(READ_ROLES)}.",
            response_model=CampaignPage, responses=problem_responses(400))
async def list_campaigns(
    principal: Reader, peers: PeersDep, page: PageDep,
    state: Annotated[list[State] | None,  # type: ignore[valid-type]  # a Literal built from the proto enum
                     Query(description="Only campaigns in these states.")] = None,
) -> JSONResponse:
    request = page.apply(pb.ListCampaignsRequest(states=[campaign_pb2.CampaignState.Value(s) for s in state or []]))
    return answer(paged(await peers.campaign.ListCampaigns(request, metadata=forwarded(principal)), "campaigns"))


@router.post("/v1/campaigns/{campaign_id}/approve", name="approve_campaign", summary="Approve a campaign",
             description="Approves a submitted campaign at its current `etag`; its creator may not. "
                         f"Roles: {roles_text(APPROVE_ROLES)}.",
             response_model=Campaign, responses=problem_responses(400, 404, 409, 413))
async def approve_campaign(
    campaign_id: CampaignId, approval: Annotated[Approval, Body()], principal: Approver, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    request = keyed(pb.ApproveCampaignRequest(name=f"campaigns/{campaign_id}", etag=approval.etag,
                                              comment=approval.comment), idempotency_key)
    return answer((await peers.campaign.ApproveCampaign(request, metadata=forwarded(principal))).campaign)


@router.get("/v1/campaigns/{campaign_id}/results", name="get_campaign_results", summary="Campaign results",
            description="Responses, conversions and uplift against the control group with its confidence "
                        f"interval. Roles: {roles_text(READ_ROLES)}.",
            response_model=Results, responses=problem_responses(400, 404))
async def get_campaign_results(
    campaign_id: CampaignId, principal: Reader, peers: PeersDep,
    confidence_level: Annotated[float, Query(ge=0, lt=1, description="e.g. 0.95; 0 for the service's default.")] = 0,
) -> JSONResponse:
    response = await peers.campaign.GetCampaignResults(pb.GetCampaignResultsRequest(
        campaign=f"campaigns/{campaign_id}", confidence_level=confidence_level), metadata=forwarded(principal))
    return answer(response.results)


@router.post("/v1/offer-responses", name="record_offer_response", status_code=201,
             summary="Record a response to an offer",
             description="A customer's response to an offer they were sent (accepted, declined, ...). "
                         f"Roles: {roles_text(RESPOND_ROLES)}.",
             response_model=OfferResponse, responses=problem_responses(400, 404, 409, 413))
async def record_offer_response(
    response: Annotated[OfferResponseInput, Body()], principal: Responder, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    request = keyed(pb.RecordResponseRequest(response=parse(response, engagement_pb2.OfferResponse, "response")),
                    idempotency_key)
    recorded = await peers.campaign.RecordResponse(request, metadata=forwarded(principal))
    return answer(recorded.response, status_code=201)
