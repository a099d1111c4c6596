"""Probes: liveness (the process answers) and readiness (what each peer service says).

Readiness asks every peer's gRPC health at once, each within a short deadline, and reports them
all in `checks`. Only the essential peer (profile: without it the gateway has nothing to serve)
decides the status: the others are peers whose outage gets a documented degraded answer on the
routes that use them (a customer 360 marked partial), so they do not take the gateway out of
rotation, but an operator (or a dashboard polling the probe) sees them.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import grpc
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2
from pydantic import BaseModel

from crm_gateway.peers import ESSENTIAL, SERVICE_NAMES, Peers, get_peers

router = APIRouter(tags=["health"])
# A probe answers within a load balancer's timeout whatever the peers do.
CHECK_SECONDS = 1.0


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
    """Peer -> its gRPC health status (`SERVING`, `NOT_SERVING`) or why it did not answer
    (`UNAVAILABLE`, `DEADLINE_EXCEEDED`); `gateway: DRAINING` while the gateway stops."""
    essential: list[str]
    """The peers that decide `status`; the others only degrade the routes that use them."""


@router.get("/healthz", summary="Liveness probe", response_model=Liveness)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz", summary="Readiness probe", response_model=Readiness,
    description="Every peer service's health; ready when the essential ones (profile) serve.",
    responses={503: {"model": Readiness,
                     "description": "Not ready: an essential service does not serve, or the gateway is draining."}},
)
async def readyz(request: Request, peers: Annotated[Peers, Depends(get_peers)]) -> JSONResponse:
    essential = sorted(ESSENTIAL)
    if request.app.state.drain.started:  # leaving the rotation before the socket closes (draining.py)
        return JSONResponse({"status": "not_ready", "checks": {"gateway": "DRAINING"}, "essential": essential},
                            status_code=503)
    names = sorted(peers.health)
    statuses = await asyncio.gather(*(_check(peers, name) for name in names))
    checks = dict(zip(names, statuses, strict=True))
    ready = all(checks.get(name) == "SERVING" for name in essential)
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks, "essential": essential},
                        status_code=200 if ready else 503)


async def _check(peers: Peers, name: str) -> str:
    try:
        reply = await peers.health[name].Check(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[name]),
                                               timeout=CHECK_SECONDS)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.aio.AioRpcError as error:
        return error.code().name
