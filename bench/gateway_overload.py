"""gateway-overload: at twice the sustainable rate, the excess is answered 429 with `Retry-After`,
the admitted requests keep their latency, and the gateway recovers when the load drops.

Profile runs as its own process on a fresh database with the bench's customers; the gateway runs
twice, as `python -m crm_gateway` with a deployment's settings: once with its rate limits off to
find what this machine sustains, once with limits published at that rate.

1. **Sustainable rate.** `GET /v1/customers/{id}` (a pass-through read: token check, profile's
   audited GetCustomer, the JSON answer) in a closed loop at concurrencies 1, 2, 4, 8 and 16, on
   the unlimited gateway: the sustainable rate is the highest throughput whose p99 stayed within
   the goal (50 ms). That throughput is the floor of the admitted rate below.
2. **Limits.** The limited gateway's read limit per client is the sustainable rate shared among
   `CLIENTS` clients (tokens of different subjects), bursts of a tenth of a second's worth: what an
   operator would publish for this machine.
3. **Overload.** Each client offers twice its share in an open loop (`drive_open`: requests go
   out when due, whether or not earlier ones have returned, as independent callers do) for the
   bench's phase time. Every answer is a 200 or a 429 carrying a positive `Retry-After`; any other
   answer fails the bench. Headline: the admitted requests' p99 (goal <= 50 ms), next to the
   sustainable phase's p99 as its floor. Also: admitted rate over the sustainable rate, the share
   refused, and how late the bench's own client issued its calls (`*_client_issue_lag_p99_ms`:
   latencies count from the due time, so a client that cannot keep up on a loaded machine shows
   there rather than flattering the gateway).
4. **Recovery.** Then half the sustainable rate for the same time: everything admitted again
   (refused share, rate and p99 reported).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import grpc
import httpx

from bench import profile_service
from bench.environment import free_port, run_to_completion
from bench.gateway_360 import gateway_env, http_server
from bench.harness import BenchRun, LoadResult, OpenLoopResult, drive, drive_open
from crm.profile.v1 import profile_service_pb2_grpc
from crmkit.auth import Role, issue_token

CALIBRATION_CONCURRENCIES = (1, 2, 4, 8, 16)
P99_GOAL_MS = 50.0
CLIENTS = 4
OVERLOAD_FACTOR = 2.0
RECOVERY_FACTOR = 0.5
BURST_SECONDS = 0.1
CALL_TIMEOUT_SECONDS = 10.0
TOKEN_LIFETIME_SECONDS = 6 * 3600


def limited_gateway_env(base: dict[str, str], per_client_per_second: float) -> dict[str, str]:
    """The gateway's settings with the read limit published at `per_client_per_second`."""
    return {**base, "CRM_GATEWAY_RATE_LIMITS_ENABLED": "true",
            "CRM_GATEWAY_RATE_LIMIT_READ_PER_SECOND": f"{per_client_per_second:.3f}",
            "CRM_GATEWAY_RATE_LIMIT_READ_BURST": str(max(1, round(per_client_per_second * BURST_SECONDS)))}


def sustainable(results: list[LoadResult]) -> LoadResult:
    """The closed-loop phase with the highest throughput whose p99 kept within the goal (the
    lowest concurrency's when none did: the machine cannot meet the goal at any load)."""
    within = [r for r in results if r.p99_ms <= P99_GOAL_MS]
    return max(within, key=lambda r: r.throughput) if within else results[0]


Outcome = Callable[[int], Awaitable[str]]


def outcome_of(response: httpx.Response) -> str:
    """"200", or "429" when refused with a usable `Retry-After`; anything else fails the bench."""
    if response.status_code == 200:
        return "200"
    if response.status_code == 429:
        retry_after = response.headers.get("retry-after", "")
        if not retry_after.isdigit() or int(retry_after) < 1:
            raise AssertionError(f"429 without a positive Retry-After (got {retry_after!r})")
        return "429"
    raise AssertionError(f"answered {response.status_code}: {response.text[:300]}")


async def offer(calls: list[Outcome], *, rate: float, seconds: float) -> OpenLoopResult:
    """Every client offers `rate / len(calls)` at once; their outcomes added up."""
    results = await asyncio.gather(*(drive_open(call, rate=rate / len(calls), seconds=seconds) for call in calls))
    elapsed = max(r.elapsed_seconds for r in results)
    names = {name for r in results for name in r.outcomes}
    return OpenLoopResult(offered_per_second=rate, elapsed_seconds=elapsed, outcomes={
        name: LoadResult(concurrency=0, completed=sum(r.count(name) for r in results), elapsed_seconds=elapsed,
                         latencies_seconds=sorted(x for r in results if name in r.outcomes
                                                  for x in r.outcomes[name].latencies_seconds))
        for name in names}, issue_lag_seconds=sorted(x for r in results for x in r.issue_lag_seconds))


async def run(bench: BenchRun) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    admin = issue_token(secret=jwt_secret, subject="bench-admin", roles=[Role.ADMIN],
                        lifetime_seconds=TOKEN_LIFETIME_SECONDS)
    apps = [issue_token(secret=jwt_secret, subject=f"bench-app-{n}", roles=[Role.CHANNEL_APP],
                        lifetime_seconds=TOKEN_LIFETIME_SECONDS) for n in range(CLIENTS)]
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(bench.database())
        port = free_port()
        env = profile_service.service_env(url, port, jwt_secret)
        await run_to_completion([sys.executable, "-m", "crm_profile", "migrate"], env=env,
                                log_path=bench.log_path("profile-migrate"))
        address = await stack.enter_async_context(bench.server(
            "profile", [sys.executable, "-m", "crm_profile", "serve"], env=env, port=port))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
        customer_ids = await profile_service.load_customers(
            bench, profile_service_pb2_grpc.ProfileServiceStub(channel), (("authorization", f"Bearer {admin}"),))
        rng = random.Random(17)
        picks = [rng.choice(customer_ids) for _ in range(100_000)]

        async def gateway(name: str, gateway_settings: dict[str, str], gateway_port: int) -> str:
            return await stack.enter_async_context(http_server(
                bench, name, [sys.executable, "-m", "crm_gateway"], env=gateway_settings, port=gateway_port))

        async def client(base: str, token: str) -> httpx.AsyncClient:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            return await stack.enter_async_context(httpx.AsyncClient(
                base_url=base, timeout=CALL_TIMEOUT_SECONDS, limits=limits,
                headers={"authorization": f"Bearer {token}"}))

        unlimited_port = free_port()
        unlimited = await client(await gateway("gateway-unlimited", gateway_env(
            {"profile": port}, unlimited_port, jwt_secret), unlimited_port), apps[0])

        async def read(index: int) -> object:
            return outcome_of(await unlimited.get(f"/v1/customers/{picks[index % len(picks)]}"))

        await drive(read, concurrency=4, seconds=1.0)  # warm-up
        phases = []
        for concurrency in CALIBRATION_CONCURRENCIES:
            phase = await drive(read, concurrency=concurrency, seconds=bench.seconds / 2)
            bench.note(f"unlimited   {phase.summary()}")
            phases.append(phase)
        best = sustainable(phases)
        rate = best.throughput
        bench.emit("sustainable_qps", rate, "requests/s")
        bench.emit("sustainable_p99_ms", best.p99_ms, "ms")
        bench.emit("sustainable_concurrency", best.concurrency, "tasks")

        limited_port = free_port()
        base = await gateway("gateway-limited", limited_gateway_env(
            gateway_env({"profile": port}, limited_port, jwt_secret), rate / CLIENTS), limited_port)
        clients = [await client(base, token) for token in apps]

        def reader(http: httpx.AsyncClient, offset: int) -> Outcome:
            async def call(index: int) -> str:
                return outcome_of(await http.get(f"/v1/customers/{picks[(offset + index) % len(picks)]}"))
            return call

        calls = [reader(http, n * 25_000) for n, http in enumerate(clients)]
        await asyncio.sleep(1.0)  # buckets full before the load starts, as after any quiet second
        overload = await offer(calls, rate=OVERLOAD_FACTOR * rate, seconds=bench.seconds)
        bench.note(f"overload    {overload.summary()}")
        if not overload.count("200"):
            raise AssertionError("nothing admitted under overload")
        admitted = overload.outcomes["200"]
        bench.emit("overload_admitted_p99_ms", admitted.p99_ms, "ms", floor=best.p99_ms, headline=True)
        bench.emit("overload_admitted_p50_ms", admitted.p50_ms, "ms")
        bench.emit("overload_admitted_qps", admitted.throughput, "requests/s", floor=rate)
        bench.emit("overload_offered_qps", overload.total / overload.elapsed_seconds, "requests/s", floor=rate)
        bench.emit("overload_refused_share", overload.share("429"), "share")
        bench.emit("overload_client_issue_lag_p99_ms", overload.issue_lag_p99_ms, "ms")
        if overload.count("429"):
            bench.emit("overload_refused_p99_ms", overload.outcomes["429"].p99_ms, "ms")

        recovery = await offer(calls, rate=RECOVERY_FACTOR * rate, seconds=bench.seconds)
        bench.note(f"recovery    {recovery.summary()}")
        if not recovery.count("200"):
            raise AssertionError("nothing admitted after the load dropped: the gateway did not recover")
        recovered = recovery.outcomes["200"]
        bench.emit("recovery_qps", recovered.throughput, "requests/s", floor=RECOVERY_FACTOR * rate)
        bench.emit("recovery_p99_ms", recovered.p99_ms, "ms", floor=best.p99_ms)
        bench.emit("recovery_refused_share", recovery.share("429"), "share")
        bench.emit("recovery_client_issue_lag_p99_ms", recovery.issue_lag_p99_ms, "ms")
