"""Complaints over FeedbackService: a channel files one for the customer in front of it and tracks
it by its reference; staff list the queue. Read with the audit purpose COMPLAINT."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from crm.common.v1 import audit_pb2
from crm.feedback.v1 import complaint_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    CUSTOMER_ID_PATTERN,
    RESOURCE_ID_PATTERN,
    PageDep,
    PeersDep,
    RequiredIdempotencyKey,
    answer,
    enum_names,
    keyed,
    page_model,
    paged,
    parse,
)
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

FILE_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
TRACK_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ANALYST, Role.AUDITOR, Role.ADMIN})
QUEUE_ROLES = frozenset({Role.RELATIONSHIP_MANAGER, Role.ANALYST, Role.AUDITOR, Role.ADMIN})
Filer = Annotated[Principal, Depends(require_roles(*FILE_ROLES))]
Tracker = Annotated[Principal, Depends(require_roles(*TRACK_ROLES))]
QueueReader = Annotated[Principal, Depends(require_roles(*QUEUE_ROLES))]
COMPLAINT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT)

Complaint: Any = proto_model(complaint_pb2.Complaint.DESCRIPTOR)
ComplaintInput: Any = proto_model(complaint_pb2.Complaint.DESCRIPTOR, for_input=True)
ComplaintPage = page_model("ComplaintPage", "complaints", complaint_pb2.Complaint.DESCRIPTOR)
ComplaintId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="The complaint's reference.")]
Status = enum_names(complaint_pb2.ComplaintStatus)

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])


@router.post("", name="file_complaint", status_code=201, summary="File a complaint",
             description="Files the complaint given in the body for its `customer`; the answer carries its "
                         "reference, status and service-level deadlines. The `Idempotency-Key` is required: a "
                         f"retried filing must not file twice. Roles: {roles_text(FILE_ROLES)}.",
             response_model=Complaint, responses=problem_responses(400, 409, 413))
async def file_complaint(
    complaint: Annotated[ComplaintInput, Body()], principal: Filer, peers: PeersDep, request: Request,
    idempotency_key: RequiredIdempotencyKey,
) -> JSONResponse:
    message = parse(complaint, complaint_pb2.Complaint, "complaint")
    response = await peers.feedback.FileComplaint(keyed(pb.FileComplaintRequest(complaint=message), idempotency_key),
                                                  metadata=forwarded(principal))
    location = request.app.url_path_for("get_complaint", complaint_id=response.complaint.complaint_id)
    return answer(response.complaint, status_code=201, headers={"Location": str(location)})


@router.get("/{complaint_id}", name="get_complaint", summary="Track a complaint",
            description="The complaint by its reference, masked for the caller's role. "
                        f"Roles: {roles_text(TRACK_ROLES)}.",
            response_model=Complaint, responses=problem_responses(400, 404))
async def get_complaint(complaint_id: ComplaintId, principal: Tracker, peers: PeersDep) -> JSONResponse:
    response = await peers.feedback.GetComplaint(
        pb.GetComplaintRequest(name=f"complaints/{complaint_id}", audit=COMPLAINT), metadata=forwarded(principal))
    return answer(response.complaint)


@router.get("", name="list_complaints", summary="List complaints (the queue)",
            description="Complaints newest first, filtered by customer and status, a page at a time. "
                        f"Roles: {roles_text(QUEUE_ROLES)}.",
            response_model=ComplaintPage, responses=problem_responses(400))
async def list_complaints(
    principal: QueueReader, peers: PeersDep, page: PageDep,
    customer_id: Annotated[str | None, Query(pattern=CUSTOMER_ID_PATTERN, description="Only this customer's.")] = None,
    status: Annotated[list[Status] | None,  # type: ignore[valid-type]  # a Literal built from the proto enum
                      Query(description="Only complaints in these statuses.")] = None,
) -> JSONResponse:
    request = page.apply(pb.ListComplaintsRequest(
        customer=f"customers/{customer_id}" if customer_id else "", audit=COMPLAINT,
        statuses=[complaint_pb2.ComplaintStatus.Value(name) for name in status or []]))
    response = await peers.feedback.ListComplaints(request, metadata=forwarded(principal))
    return answer(paged(response, "complaints"))
