"""gateway-360: customer 360 requests/s and p99 through the HTTP gateway, as a ratio to the bare
fan-out floor measured in the same run.

Every service runs as its own process on this machine, each on a fresh migrated database
(profile, segment following profile's feed, feedback, risk, campaign), and the gateway runs as its
own process too (`bench.gateway_server`: the real application plus one floor route). Customers are
created through profile's CreateCustomer; segment classifies them from profile's feed before the
load starts. An HTTP client in the bench process then alternates, in slices at the same
concurrency, between:

- the floor, `GET /bench/fanout/{id}`: the same HTTP stack, token check and channels making the
  same number of gRPC calls as the 360 (one per part plus the customer), each an empty health
  `Check` on the same service;
- the path, `GET /v1/customers/{id}/360` for random customers.

Headline: 360 requests/s over the floor's (goal >= 0.7), with the 360's p99 (goal <= 50 ms).
Each part keeps the gateway's default deadline (0.5 s): an answer left partial under load is
counted (`customer_360_partial_share_c*`, and which parts in the notes), not a failure.
No churn score is written back and no campaign has dispatched, so risk answers NOT_FOUND and
campaign an empty page: the cheap answers the 360 gets for most customers.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
import httpx

from bench import profile_service
from bench.environment import ServerProcess, free_port, run_to_completion
from bench.harness import BenchRun, LoadResult, drive_alternating
from crm.common.v1 import audit_pb2
from crm.profile.v1 import profile_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2 as segment_pb
from crm.segment.v1 import segment_service_pb2_grpc
from crmkit.auth import Role, issue_token

CONCURRENCIES = (1, 16)
HEADLINE_CONCURRENCY = 16
WARMUP_SECONDS = 1.0
ROUNDS = 5
CALL_TIMEOUT_SECONDS = 10.0
CLASSIFIED_WAIT_SECONDS = 120.0
SERVICE_START_SECONDS = 180.0  # five services starting at once on a shared machine


def _common(jwt_secret: str) -> dict[str, str]:
    return {**os.environ, "CRM_ENV": "development", "CRM_HOST": "127.0.0.1", "CRM_JWT_SECRET": jwt_secret,
            "CRM_SHUTDOWN_GRACE_SECONDS": "2"}


def service_envs(urls: dict[str, str], ports: dict[str, int], jwt_secret: str) -> dict[str, dict[str, str]]:
    """Each service's settings, as a deployment sets them; peers point at the bench's processes."""
    common = _common(jwt_secret)
    profile = f"127.0.0.1:{ports['profile']}"
    segment = f"127.0.0.1:{ports['segment']}"
    return {
        "profile": profile_service.service_env(urls["profile"], ports["profile"], jwt_secret),
        "segment": {**common, "CRM_SEGMENT_DATABASE_URL": urls["segment"], "CRM_SEGMENT_PORT": str(ports["segment"]),
                    "CRM_SEGMENT_PROFILE_TARGET": profile},
        "feedback": {**common, "CRM_FEEDBACK_DATABASE_URL": urls["feedback"],
                     "CRM_FEEDBACK_PORT": str(ports["feedback"]), "CRM_FEEDBACK_PROFILE_TARGET": profile,
                     "CRM_FEEDBACK_SEGMENT_TARGET": segment},
        "risk": {**common, "CRM_RISK_DATABASE_URL": urls["risk"], "CRM_RISK_PORT": str(ports["risk"]),
                 "CRM_RISK_PROFILE_TARGET": "", "CRM_RISK_ALERT_ESCALATION_POLL_SECONDS": "0"},
        "campaign": {**common, "CRM_CAMPAIGN_DATABASE_URL": urls["campaign"],
                     "CRM_CAMPAIGN_PORT": str(ports["campaign"]), "CRM_CAMPAIGN_PROFILE_TARGET": profile,
                     "CRM_CAMPAIGN_SEGMENT_TARGET": segment,
                     "CRM_CAMPAIGN_FEEDBACK_TARGET": f"127.0.0.1:{ports['feedback']}",
                     "CRM_CAMPAIGN_RISK_TARGET": f"127.0.0.1:{ports['risk']}"},
    }


def gateway_env(ports: dict[str, int], port: int, jwt_secret: str) -> dict[str, str]:
    """The gateway's settings: every peer on this machine; rate limits off (the bench measures the
    path, not the limiter, and drives both routes alike)."""
    env = {**_common(jwt_secret), "CRM_GATEWAY_PORT": str(port), "CRM_GATEWAY_RATE_LIMITS_ENABLED": "false",
           "CRM_GATEWAY_REDIS_URL": "", "CRM_GATEWAY_DRAIN_SECONDS": "0", "CRM_GATEWAY_DOCS_ENABLED": "false"}
    env.update({f"CRM_GATEWAY_{name.upper()}_TARGET": f"127.0.0.1:{p}" for name, p in ports.items()})
    return env


class HttpServerProcess(ServerProcess):
    """An HTTP server process: started, awaited until `GET /readyz` answers 200, stopped by SIGTERM."""

    async def _until_serving(self) -> None:
        async with httpx.AsyncClient(base_url=f"http://{self.address}", timeout=1.0) as client:
            while True:
                if self._process is None or self._process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited while starting; see {self.log_path}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)


@asynccontextmanager
async def http_server(bench: BenchRun, name: str, argv: list[str], *, env: dict[str, str], port: int,
                      ) -> AsyncIterator[str]:
    """An HTTP server process for this bench; yields its base URL."""
    server = HttpServerProcess(name, argv, env=env, port=port, log_path=bench.log_path(name))
    await server.start()
    try:
        yield f"http://{server.address}"
    finally:
        await server.stop()


async def wait_classified(bench: BenchRun, address: str, customer_ids: list[str],
                          metadata: tuple[tuple[str, str], ...]) -> None:
    """Until segment has classified the last customer created (its feed is applied in order)."""
    request = segment_pb.GetCustomerClassificationRequest(
        customer=f"customers/{customer_ids[-1]}",
        audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLASSIFIED_WAIT_SECONDS
    async with grpc.aio.insecure_channel(address) as channel:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        while True:
            try:
                await stub.GetCustomerClassification(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
                bench.note("segment has classified every customer")
                return
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.5)


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    token = issue_token(secret=jwt_secret, subject="bench-admin", roles=[Role.ADMIN], lifetime_seconds=6 * 3600)
    metadata = (("authorization", f"Bearer {token}"),)
    services = ("profile", "segment", "feedback", "risk", "campaign")
    async with AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(bench.database()) for name in services}
        ports = {name: free_port() for name in services}
        envs = service_envs(urls, ports, jwt_secret)
        bench.note("migrating five fresh databases")
        for name in services:
            await run_to_completion([sys.executable, "-m", f"crm_{name}", "migrate"], env=envs[name],
                                    log_path=bench.log_path(f"{name}-migrate"))
        addresses = {name: await stack.enter_async_context(bench.server(
            name, [sys.executable, "-m", f"crm_{name}", "serve"], env=envs[name], port=ports[name],
            start_seconds=SERVICE_START_SECONDS))
            for name in services}
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(addresses["profile"]))
        customer_ids = await profile_service.load_customers(
            bench, profile_service_pb2_grpc.ProfileServiceStub(channel), metadata)
        await wait_classified(bench, addresses["segment"], customer_ids, metadata)
        gateway_port = free_port()
        base = await stack.enter_async_context(http_server(
            bench, "gateway", [sys.executable, "-m", "bench.gateway_server"],
            env=gateway_env(ports, gateway_port, jwt_secret), port=gateway_port))
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        client = await stack.enter_async_context(httpx.AsyncClient(
            base_url=base, timeout=CALL_TIMEOUT_SECONDS, limits=limits,
            headers={"authorization": f"Bearer {token}"}))
        rng = random.Random(5)
        picks = [rng.choice(customer_ids) for _ in range(50_000)]
        first = (await client.get(f"/v1/customers/{picks[0]}/360")).json()
        if first.get("partial") or first.get("classification") is None:
            raise AssertionError(f"the 360 is not whole with every service up: missing {first.get('missing')}")

        partial: Counter[str] = Counter()

        async def whole(index: int) -> object:
            response = await client.get(f"/v1/customers/{picks[index % len(picks)]}/360")
            if response.status_code != 200:
                raise AssertionError(f"360 answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            partial["answers"] += 1
            if body["partial"]:  # a part past its deadline under load: counted, not a failure
                partial["partial"] += 1
                partial.update(f"{m['part']}:{m['reason']}" for m in body["missing"])
            return response

        async def fanout(index: int) -> object:
            response = await client.get(f"/bench/fanout/{picks[index % len(picks)]}")
            if response.status_code != 200:
                raise AssertionError(f"fan-out floor answered {response.status_code}: {response.text[:300]}")
            return response

        for concurrency in CONCURRENCIES:
            partial.clear()
            floor, measured = await drive_alternating(
                [fanout, whole], concurrency=concurrency, seconds=bench.seconds, rounds=ROUNDS,
                warmup_seconds=WARMUP_SECONDS)
            bench.note(f"bare fan-out  {floor.summary()}")
            bench.note(f"customer 360  {measured.summary()}")
            report(bench, measured, floor, headline=concurrency == HEADLINE_CONCURRENCY)
            bench.emit(f"customer_360_partial_share_c{concurrency}",
                       partial["partial"] / max(partial["answers"], 1), "share")
            if partial["partial"]:
                bench.note(f"partial answers (part:reason -> count): {dict(partial)}")


def report(bench: BenchRun, measured: LoadResult, floor: LoadResult, *, headline: bool) -> None:
    c = measured.concurrency
    bench.emit(f"customer_360_qps_c{c}", measured.throughput, "requests/s", floor=floor.throughput,
               headline=headline)
    bench.emit(f"customer_360_p50_ms_c{c}", measured.p50_ms, "ms", floor=floor.p50_ms)
    bench.emit(f"customer_360_p99_ms_c{c}", measured.p99_ms, "ms", floor=floor.p99_ms)
