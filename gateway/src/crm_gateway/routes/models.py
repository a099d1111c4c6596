"""Operator route over RiskService's model registry: the churn model versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from crm.risk.v1 import churn_model_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import PageDep, PeersDep, answer, enum_names, page_model, paged
from crmkit.auth import Principal, Role

READ_ROLES = frozenset({Role.RISK_OFFICER, Role.ANALYST, Role.AUDITOR, Role.ADMIN})
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
ChurnModelPage = page_model("ChurnModelPage", "churn_models", churn_model_pb2.ChurnModel.DESCRIPTOR)
Status = enum_names(churn_model_pb2.ChurnModelStatus)

router = APIRouter(prefix="/v1/churn-models", tags=["model registry"])


@router.get("", name="list_churn_models", summary="List churn model versions",
            description="The registry's churn model versions with their metrics, newest first, filtered by "
                        f"status. Roles: {roles_text(READ_ROLES)}.",
            response_model=ChurnModelPage, responses=problem_responses(400))
async def list_churn_models(
    principal: Reader, peers: PeersDep, page: PageDep,
    status: Annotated[Status | None,  # type: ignore[valid-type]  # a Literal built from the proto enum
                      Query(description="Only models in this status.")] = None,
) -> JSONResponse:
    request = page.apply(pb.ListChurnModelsRequest(
        status=churn_model_pb2.ChurnModelStatus.Value(status) if status
        else churn_model_pb2.CHURN_MODEL_STATUS_UNSPECIFIED))
    response = await peers.risk.ListChurnModels(request, metadata=forwarded(principal))
    return answer(paged(response, "churn_models"))
