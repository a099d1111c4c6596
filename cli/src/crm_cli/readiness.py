"""Wait until a started component reports healthy: gRPC SERVING, or the gateway's 200."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import httpx

from crm_cli.platform import LOCAL_HOST, Component, Protocol
from crm_cli.probes import Health, grpc_health, healthz_url, http_health

POLL_SECONDS = 0.2
CHECK_TIMEOUT_SECONDS = 1.0

OnStatus = Callable[[Component, Health, str], None]


async def wait_serving(target: Component, port: int, on_status: OnStatus) -> None:
    """Poll until the component is healthy, reporting each change; bound it with a deadline."""
    last: Health | None = None
    if target.protocol is Protocol.HTTP:
        async with httpx.AsyncClient() as client:
            while True:
                health, detail = await http_health(client, healthz_url(port), timeout=CHECK_TIMEOUT_SECONDS)
                if health != last:
                    on_status(target, health, detail)
                    last = health
                if health is Health.SERVING:
                    return
                await asyncio.sleep(POLL_SECONDS)
    async with grpc.aio.insecure_channel(f"{LOCAL_HOST}:{port}") as channel:
        while True:
            health, detail = await grpc_health(channel, timeout=CHECK_TIMEOUT_SECONDS)
            if health != last:
                on_status(target, health, detail)
                last = health
            if health is Health.SERVING:
                return
            await asyncio.sleep(POLL_SECONDS)
