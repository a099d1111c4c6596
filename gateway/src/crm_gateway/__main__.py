"""`crm-gateway` (or `python -m crm_gateway`): serve the HTTP gateway until SIGTERM.

On SIGTERM or SIGINT the gateway first keeps serving for `CRM_GATEWAY_DRAIN_SECONDS` with
`/readyz` answering 503 (draining.py), then uvicorn stops accepting connections, lets in-flight
requests finish for up to `CRM_SHUTDOWN_GRACE_SECONDS`, and runs the lifespan's shutdown
(channels closed, telemetry flushed). Its access log is off: requests are traced, and the structured
`crm.*` logs carry the trace ids; a per-request log line would add volume and no facts.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import uvicorn

from crm_gateway.app import create_app
from crm_gateway.draining import Drain, DrainingServer
from crm_gateway.settings import GatewaySettings
from crmkit.logs import configure_logging
from crmkit.loop import UVICORN_LOOP
from crmkit.telemetry import setup_telemetry


def main() -> None:
    try:
        settings = GatewaySettings()
    except Exception as exc:  # pydantic names every missing or bad variable
        print(f"crm-gateway: configuration error:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(service="gateway", level=settings.log_level)
    telemetry = setup_telemetry(service_name="crm-gateway")
    drain = Drain()
    config = server_config(settings, create_app(settings, telemetry=telemetry, drain=drain))
    DrainingServer(config, drain=drain, drain_seconds=settings.drain_seconds).run()


def server_config(settings: GatewaySettings, app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=UVICORN_LOOP,  # the platform's one loop (crmkit.loop says why)
        lifespan="on",
        log_config=None,  # keep the JSON logging configured above
        access_log=False,
        server_header=False,
        # The client address (request.client) comes from X-Forwarded-For only when the connection
        # is from a trusted proxy; with none trusted it is the connection's peer.
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies or [],
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),  # uvicorn takes whole seconds
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


if __name__ == "__main__":
    main()
