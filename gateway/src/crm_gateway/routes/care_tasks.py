"""Care tasks over CampaignService: the signed-in relationship manager's worklist (greetings,
offer and maturity follow-ups, reviews) and completing a task with its outcome.

The campaign service scopes a relationship manager to the tasks assigned to them, whatever the
filter says; marketers and admins see every task and may filter by `assignee`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from google.protobuf import timestamp_pb2
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm.campaign.v1 import campaign_pb2, care_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    CUSTOMER_ID_PATTERN,
    RESOURCE_ID_PATTERN,
    IdempotencyKey,
    PageDep,
    PeersDep,
    answer,
    enum_names,
    keyed,
    page_model,
    paged,
)
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

# Campaign's CARE roles: relationship managers work their tasks, marketers and admins oversee.
CARE_ROLES = frozenset({Role.RELATIONSHIP_MANAGER, Role.MARKETER, Role.ADMIN})
Carer = Annotated[Principal, Depends(require_roles(*CARE_ROLES))]
# An employee id or `branch:{branch_id}` (the service's rule for `CareTask.assignee`).
ASSIGNEE_PATTERN = r"^(branch:)?[A-Za-z0-9._@-]{1,64}$"

CareTask: Any = proto_model(care_pb2.CareTask.DESCRIPTOR)
CareTaskPage = page_model("CareTaskPage", "care_tasks", care_pb2.CareTask.DESCRIPTOR)
CareTaskId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="The care task's id.")]
State = enum_names(care_pb2.CareTaskState)
Kind = enum_names(care_pb2.CareTaskKind)
Outcome = enum_names(care_pb2.CareTaskOutcome)
Channel = enum_names(campaign_pb2.Channel)


class Completion(BaseModel):
    """How the task ended."""

    model_config = ConfigDict(extra="forbid", title="CareTaskCompletionInput")
    outcome: Outcome = Field(description="How the task ended.")  # type: ignore[valid-type]  # a Literal from the proto enum
    outcome_note: str = Field(default="", max_length=2000, description="The assignee's note; no identity numbers, "
                              "phone numbers, e-mail or postal addresses.")
    contact_channel: Channel | None = Field(  # type: ignore[valid-type]  # a Literal from the proto enum
        default=None, description="How the customer was contacted: required for contacted, accepted and "
                                  "declined; absent otherwise.")
    etag: str = Field(default="", max_length=128, description="The task's `etag`: complete only if unchanged.")


router = APIRouter(prefix="/v1/care-tasks", tags=["care tasks"])


@router.get("", name="list_care_tasks", summary="List care tasks (the worklist)",
            description="Care tasks earliest due first, by default those open or in progress. A relationship "
                        "manager gets the tasks assigned to them, whatever `assignee` says. `due_before` (e.g. now) "
                        f"lists the overdue ones. Roles: {roles_text(CARE_ROLES)}.",
            response_model=CareTaskPage, responses=problem_responses(400))
async def list_care_tasks(
    principal: Carer, peers: PeersDep, page: PageDep,
    state: Annotated[list[State] | None,  # type: ignore[valid-type]  # a Literal built from the proto enum
                     Query(description="Only tasks in these states; absent for open and in progress.")] = None,
    kind: Annotated[Kind | None,  # type: ignore[valid-type]  # a Literal built from the proto enum
                    Query(description="Only tasks of this kind.")] = None,
    customer_id: Annotated[str | None, Query(pattern=CUSTOMER_ID_PATTERN, description="Only this customer's.")] = None,
    assignee: Annotated[str | None, Query(pattern=ASSIGNEE_PATTERN,
                                          description="Only this assignee's (employee id or `branch:{id}`).")] = None,
    due_before: Annotated[AwareDatetime | None, Query(description="Only tasks due before this time.")] = None,
) -> JSONResponse:
    request = page.apply(pb.ListCareTasksRequest(
        assignee=assignee or "", customer=f"customers/{customer_id}" if customer_id else "",
        states=[care_pb2.CareTaskState.Value(name) for name in state or []],
        kind=care_pb2.CareTaskKind.Value(kind) if kind else care_pb2.CARE_TASK_KIND_UNSPECIFIED))
    if due_before is not None:
        request.due_before.CopyFrom(_timestamp(due_before))
    response = await peers.campaign.ListCareTasks(request, metadata=forwarded(principal))
    return answer(paged(response, "care_tasks"))


@router.post("/{care_task_id}/complete", name="complete_care_task", summary="Complete a care task",
             description="Completes the task (DONE) with its outcome. A task with a contact counts as a contact; an "
                         "accepted or declined task carrying an offer also records that response. 409 when the task "
                         "is already done or cancelled (`CARE_TASK_CLOSED`) or `etag` is stale. "
                         f"Roles: {roles_text(CARE_ROLES)}.",
             response_model=CareTask, responses=problem_responses(400, 404, 409, 413))
async def complete_care_task(
    care_task_id: CareTaskId, completion: Annotated[Completion, Body()], principal: Carer, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    request = keyed(pb.CompleteCareTaskRequest(
        name=f"careTasks/{care_task_id}", etag=completion.etag,
        outcome=care_pb2.CareTaskOutcome.Value(completion.outcome), outcome_note=completion.outcome_note,
        contact_channel=campaign_pb2.Channel.Value(completion.contact_channel) if completion.contact_channel
        else campaign_pb2.CHANNEL_UNSPECIFIED),
        idempotency_key)
    response = await peers.campaign.CompleteCareTask(request, metadata=forwarded(principal))
    return answer(response.care_task)


def _timestamp(value: AwareDatetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
