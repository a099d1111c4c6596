"""Operator routes over SegmentService: the segments, a rule's preview, and why a customer is in
or out of a segment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse

from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    RESOURCE_ID_PATTERN,
    CustomerId,
    IdempotencyKey,
    PageDep,
    PeersDep,
    answer,
    keyed,
    page_model,
    paged,
    parse,
)
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

LIST_ROLES = frozenset({Role.ANALYST, Role.MARKETER, Role.AUDITOR, Role.ADMIN})
PREVIEW_ROLES = frozenset({Role.ANALYST, Role.MARKETER, Role.ADMIN})
EXPLAIN_ROLES = frozenset({Role.ANALYST, Role.MARKETER, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
Lister = Annotated[Principal, Depends(require_roles(*LIST_ROLES))]
Previewer = Annotated[Principal, Depends(require_roles(*PREVIEW_ROLES))]
Explainer = Annotated[Principal, Depends(require_roles(*EXPLAIN_ROLES))]

SegmentPage = page_model("SegmentPage", "segments", segment_pb2.Segment.DESCRIPTOR)
PreviewInput: Any = proto_model(pb.PreviewSegmentRequest.DESCRIPTOR, for_input=True)
Preview: Any = proto_model(pb.PreviewSegmentResponse.DESCRIPTOR)
Explanation: Any = proto_model(pb.ExplainSegmentMembershipResponse.DESCRIPTOR)
SegmentId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="The segment's id.")]

router = APIRouter(prefix="/v1/segments", tags=["segments"])


@router.get("", name="list_segments", summary="List segments",
            description=f"The segments, a page at a time. Roles: {roles_text(LIST_ROLES)}.",
            response_model=SegmentPage, responses=problem_responses(400))
async def list_segments(principal: Lister, peers: PeersDep, page: PageDep) -> JSONResponse:
    response = await peers.segment.ListSegments(page.apply(pb.ListSegmentsRequest()), metadata=forwarded(principal))
    return answer(paged(response, "segments"))


@router.post("/preview", name="preview_segment", summary="Preview a segment rule",
             description="How many customers a rule (or a saved segment) selects now, with a sample and the "
                         "rule's warnings; nothing is saved (a repeated `Idempotency-Key` has no effect). "
                         f"Roles: {roles_text(PREVIEW_ROLES)}.",
             response_model=Preview, responses=problem_responses(400, 404, 413))
async def preview_segment(
    preview: Annotated[PreviewInput, Body()], principal: Previewer, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    request = keyed(parse(preview, pb.PreviewSegmentRequest, "preview"), idempotency_key)
    return answer(await peers.segment.PreviewSegment(request, metadata=forwarded(principal)))


@router.get("/{segment_id}/members/{customer_id}/explanation", name="explain_segment_membership",
            summary="Explain a customer's membership",
            description="Each top-level clause of the segment's rule evaluated on the customer: held, not held "
                        f"or undefined, with the values read. Roles: {roles_text(EXPLAIN_ROLES)}.",
            response_model=Explanation, responses=problem_responses(400, 404))
async def explain_segment_membership(
    segment_id: SegmentId, customer_id: CustomerId, principal: Explainer, peers: PeersDep,
) -> JSONResponse:
    response = await peers.segment.ExplainSegmentMembership(pb.ExplainSegmentMembershipRequest(
        segment=f"segments/{segment_id}", customer=f"customers/{customer_id}"), metadata=forwarded(principal))
    return answer(response)
