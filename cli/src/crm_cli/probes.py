"""Health probes: the standard gRPC health service (grpc.health.v1) and the gateway's `/healthz`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm_cli.platform import LOCAL_HOST, Component, Protocol


class Health(StrEnum):
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"
    # The server answers but does not know the asked service name.
    SERVICE_UNKNOWN = "SERVICE_UNKNOWN"
    UNREACHABLE = "UNREACHABLE"
    ERROR = "ERROR"


@dataclass(frozen=True)
class ProbeResult:
    component: str
    address: str
    health: Health
    latency_ms: float
    detail: str = ""

    @property
    def serving(self) -> bool:
        return self.health is Health.SERVING


async def grpc_health(channel: grpc.aio.Channel, *, timeout: float, service: str = "") -> tuple[Health, str]:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Health.UNREACHABLE, exc.code().name
        if exc.code() is grpc.StatusCode.NOT_FOUND:
            return Health.SERVICE_UNKNOWN, exc.details() or ""
        return Health.ERROR, exc.code().name
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return Health.SERVING, ""
    if reply.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN:
        return Health.SERVICE_UNKNOWN, ""
    return Health.NOT_SERVING, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def http_health(client: httpx.AsyncClient, url: str, *, timeout: float) -> tuple[Health, str]:
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.TransportError as exc:
        return Health.UNREACHABLE, type(exc).__name__
    if response.status_code == httpx.codes.OK:
        return Health.SERVING, ""
    return Health.NOT_SERVING, f"HTTP {response.status_code}"


def healthz_url(port: int, host: str = LOCAL_HOST) -> str:
    return f"http://{host}:{port}/healthz"


async def probe(target: Component, port: int, *, timeout: float, host: str = LOCAL_HOST) -> ProbeResult:
    """One health check of one component."""
    started = time.perf_counter()
    if target.protocol is Protocol.HTTP:
        address = f"http://{host}:{port}"
        async with httpx.AsyncClient() as client:
            health, detail = await http_health(client, healthz_url(port, host), timeout=timeout)
    else:
        address = f"{host}:{port}"
        async with grpc.aio.insecure_channel(address) as channel:
            health, detail = await grpc_health(channel, timeout=timeout)
    return ProbeResult(target.name, address, health, (time.perf_counter() - started) * 1000, detail)
