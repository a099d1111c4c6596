"""A terminating gateway keeps serving, out of rotation, for its drain period; then it stops."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest
import uvicorn

from crm_gateway.app import create_app
from crm_gateway.draining import Drain, DrainingServer
from crm_gateway.settings import GatewaySettings
from crmkit.testing import TEST_JWT_SECRET, eventually, free_port


async def test_sigterm_first_fails_readiness_while_serving_then_stops(profile_address) -> None:
    settings = GatewaySettings(env="test", jwt_secret=TEST_JWT_SECRET, profile_target=profile_address)
    drain = Drain()
    port = free_port()
    server = DrainingServer(
        uvicorn.Config(create_app(settings, drain=drain), host="127.0.0.1", port=port, loop="asyncio",
                       lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=1),
        drain=drain, drain_seconds=0.6)
    # uvicorn re-raises the signal it shut down for once it has stopped, as the process's last
    # act; this process stands in for Kubernetes and must survive it.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        await _drain_and_stop(server, port)
    finally:
        signal.signal(signal.SIGTERM, previous)


async def _drain_and_stop(server: DrainingServer, port: int) -> None:
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, seconds=10, what="uvicorn started")  # it offers no event to wait on
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/readyz")).status_code == 200

        server.handle_exit(signal.SIGTERM, None)
        draining = await client.get("/readyz")  # still listening, but out of rotation
        assert draining.status_code == 503
        assert draining.json()["status"] == "not_ready"
        assert draining.json()["checks"] == {"gateway": "DRAINING"}
        assert (await client.get("/healthz")).status_code == 200
        assert not serving.done()

    await asyncio.wait_for(serving, timeout=10)  # the drain period ends and uvicorn shuts down
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/healthz")
