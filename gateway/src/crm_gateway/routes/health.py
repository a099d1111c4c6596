"""Probes: liveness (the process answers) and readiness (the profile service answers).

Readiness asks only the profile service's gRPC health: without it the gateway has nothing to
serve. The other services are peers whose outage gets a documented degraded answer on the
routes that use them, so they do not take the gateway out of rotation.
"""

from __future__ import annotations

from typing import Annotated, Literal

import grpc
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2
from pydantic import BaseModel

from crm_gateway.peers import PROFILE_SERVICE, Peers, get_peers

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
    """Peer -> its gRPC health status (`SERVING`, `NOT_SERVING`) or why it did not answer."""


@router.get("/healthz", summary="Liveness probe", response_model=Liveness)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz", summary="Readiness probe", response_model=Readiness,
    responses={503: {"model": Readiness,
                     "description": "Not ready: the profile service does not serve, or the gateway is draining."}},
)
async def readyz(request: Request, peers: Annotated[Peers, Depends(get_peers)]) -> JSONResponse:
    if request.app.state.drain.started:  # leaving the rotation before the socket closes (draining.py)
        return JSONResponse({"status": "not_ready", "checks": {"gateway": "DRAINING"}}, status_code=503)
    try:
        reply = await peers.profile_health.Check(health_pb2.HealthCheckRequest(service=PROFILE_SERVICE))
        profile = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.aio.AioRpcError as error:
        profile = error.code().name
    ready = profile == "SERVING"
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": {"profile": profile}},
                        status_code=200 if ready else 503)
