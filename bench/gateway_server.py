"""The gateway as the gateway-360 bench serves it: the real application (`create_app`, its
middleware, auth and peers), plus one floor route, `GET /bench/fanout/{customer_id}`, that makes
the same number of gRPC calls as the customer 360 (the essential one and one per part), each an
empty health `Check` on the same service's channel. The floor thus pays the same HTTP stack, the
same token check and the same channels, and nothing a service does. Run as its own process,
`python -m bench.gateway_server`, settings from `CRM_GATEWAY_*`, stopped by SIGTERM.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

import uvicorn
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2

from crm_gateway.app import create_app
from crm_gateway.auth import forwarded, require_roles
from crm_gateway.routes import customer360
from crm_gateway.routes.common import PeersDep
from crm_gateway.settings import GatewaySettings
from crmkit.auth import Principal
from crmkit.logs import configure_logging
from crmkit.loop import UVICORN_LOOP

# The services the 360's calls go to, in the same numbers: profile's essential GetCustomer, then
# one per part.
FANOUT = ("profile", *(part.service for part, _ in customer360.PARTS))
Reader = Annotated[Principal, Depends(require_roles(*customer360.READ_ROLES))]
floor = APIRouter()


@floor.get("/bench/fanout/{customer_id}", include_in_schema=False)
async def fanout(customer_id: str, principal: Reader, peers: PeersDep) -> JSONResponse:
    metadata = forwarded(principal)
    request = health_pb2.HealthCheckRequest(service="")
    replies = await asyncio.gather(*(peers.health[service].Check(request, metadata=metadata, timeout=5.0)
                                     for service in FANOUT))
    return JSONResponse({"customer_id": customer_id, "serving": [r.status for r in replies]})


def main() -> None:
    settings = GatewaySettings()
    configure_logging(service="gateway", level=settings.log_level)
    app = create_app(settings)
    app.include_router(floor)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, loop=UVICORN_LOOP, lifespan="on",
                            log_config=None, access_log=False, server_header=False,
                            timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds))
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
