"""A rolling update of the gateway drops no request, proven locally with real processes: two gateway
replicas in front of one real profile process serve a steady, bounded load of
`GET /v1/customers/{id}`, spread by a client-side round robin that behaves as a Kubernetes Service
with readiness: it sends only to replicas whose `/readyz` answered 200 at the last probe (every
0.1 s, as a kubelet's periodic probe), and a connection refused (nothing was sent) is retried on
another replica. A third replica starts (the surge pod), then one of the first two gets SIGTERM and
drains: `/readyz` answers 503 for `CRM_GATEWAY_DRAIN_SECONDS` while it keeps serving, then uvicorn
stops listening and finishes in-flight requests. Every request made meanwhile must succeed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import uuid
from collections import Counter
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, DatabaseFactory, bearer, free_port, migrated_database, token

WORKERS = 8  # concurrent clients
PAUSE = 0.005  # seconds between one client's requests: a steady, bounded load
PROBE_PERIOD = 0.1  # seconds between readiness probes of each replica
DRAIN_SECONDS = 2.0  # the gateway's CRM_GATEWAY_DRAIN_SECONDS here: many probe periods


def gateway_env(port: int, profile_port: int) -> dict[str, str]:
    unreachable = {f"CRM_GATEWAY_{peer}_TARGET": f"127.0.0.1:{free_port()}"  # not the machine's other services
                   for peer in ("SEGMENT", "CAMPAIGN", "FEEDBACK", "RISK")}
    return {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
            "CRM_GATEWAY_PORT": str(port), "CRM_GATEWAY_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
            "CRM_GATEWAY_DRAIN_SECONDS": str(DRAIN_SECONDS), "CRM_SHUTDOWN_GRACE_SECONDS": "5",
            "CRM_GATEWAY_RATE_LIMITS_ENABLED": "false", "OTEL_SDK_DISABLED": "true", **unreachable}


class ReadinessRoundRobin:
    """Round robin over the replicas that passed their last readiness probe, as a Service's endpoints."""

    def __init__(self, http: httpx.AsyncClient, ports: list[int]) -> None:
        self.http = http
        self.ports = ports
        self.ready: set[int] = set()
        self.draining_seen: set[int] = set()  # replicas whose probe answered 503 DRAINING
        self._turn = itertools.count()

    async def probe_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(port) for port in self.ports))
            await asyncio.sleep(PROBE_PERIOD)

    async def _probe(self, port: int) -> None:
        try:
            reply = await self.http.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
        except httpx.HTTPError:
            self.ready.discard(port)
            return
        if reply.status_code == 200:
            self.ready.add(port)
        else:
            self.ready.discard(port)
            if reply.json().get("checks", {}).get("gateway") == "DRAINING":
                self.draining_seen.add(port)

    def pick(self, tried: set[int]) -> int | None:
        candidates = sorted(self.ready - tried)
        return candidates[next(self._turn) % len(candidates)] if candidates else None


@pytest.mark.slow
async def test_replacing_a_gateway_replica_under_load_drops_no_request(
    database_factory: DatabaseFactory, tmp_path: Path, launcher: Any, service_env: Any, rollout: Any,
) -> None:
    url = await migrated_database(database_factory, PROFILE)
    profile_port = free_port()
    profile = launcher.start("profile", "crm_profile", {**service_env.profile(url, profile_port),
                                                        "OTEL_SDK_DISABLED": "true"}, "serve")
    await launcher.wait_serving(f"127.0.0.1:{profile_port}", profile)
    customer_id = f"R{uuid.uuid4().hex[:10].upper()}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as channel:
        await profile_service_pb2_grpc.ProfileServiceStub(channel).CreateCustomer(
            profile_service_pb2.CreateCustomerRequest(customer=customer_pb2.Customer(
                customer_id=customer_id, customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL, full_name="Zhang San")),
            metadata=bearer(Role.ADMIN), timeout=5)

    old, kept, surge = free_port(), free_port(), free_port()
    outcomes: Counter[str] = Counter()
    served: Counter[int] = Counter()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {token(Role.CHANNEL_APP)}"}

    async def gateway_ready(http: httpx.AsyncClient, port: int) -> bool:
        try:
            return (await http.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    async with httpx.AsyncClient(timeout=5) as http:
        balancer = ReadinessRoundRobin(http, [old, kept, surge])

        def replica(port: int, name: str) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
            return rollout.replica("crm_gateway", [], {**os.environ, **gateway_env(port, profile_port)},
                                   tmp_path / f"{name}.log", lambda: gateway_ready(http, port))

        async def client() -> None:
            while not stop.is_set():
                tried: set[int] = set()
                while (port := balancer.pick(tried)) is not None:
                    try:
                        reply = await http.get(f"http://127.0.0.1:{port}/v1/customers/{customer_id}", headers=headers)
                    except httpx.ConnectError:  # refused: nothing was sent, another endpoint may take it
                        balancer.ready.discard(port)
                        tried.add(port)
                        outcomes["refused, retried"] += 1
                        continue
                    except httpx.HTTPError as exc:
                        outcomes[type(exc).__name__] += 1
                    else:
                        outcomes["OK" if reply.status_code == 200 else f"HTTP {reply.status_code}"] += 1
                        served[port] += reply.status_code == 200
                    break
                else:
                    outcomes["no ready replica"] += 1
                await asyncio.sleep(PAUSE)

        async with AsyncExitStack() as replicas:
            # The first two start side by side (as a Deployment's first pods), each awaited until ready.
            entered = await asyncio.gather(replicas.enter_async_context(replica(old, "old")),
                                           replicas.enter_async_context(replica(kept, "kept")), return_exceptions=True)
            for outcome in entered:
                if isinstance(outcome, BaseException):
                    raise outcome
            terminated = entered[0]
            assert isinstance(terminated, asyncio.subprocess.Process)
            probing = asyncio.create_task(balancer.probe_forever())
            await asyncio.sleep(3 * PROBE_PERIOD)  # both in rotation before the load starts
            clients = [asyncio.create_task(client()) for _ in range(WORKERS)]
            try:
                # The surge pod starts while the load runs; it joins the rotation once /readyz says 200.
                surge_up = asyncio.create_task(replicas.enter_async_context(replica(surge, "surge")))
                await asyncio.sleep(2)
                before = outcomes["OK"]
                await surge_up
                started = time.monotonic()
                terminated.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(terminated.wait(), timeout=45)
                drained = time.monotonic() - started
                await asyncio.sleep(2)  # and the load goes on on the two replicas left
                stop.set()
                await asyncio.gather(*clients)
            finally:
                stop.set()
                for task in [*clients, probing]:
                    task.cancel()
                await asyncio.gather(*clients, probing, return_exceptions=True)
    failed = {outcome: n for outcome, n in outcomes.items() if outcome not in ("OK", "refused, retried")}
    print(f"\ngateway rollout: {outcomes['OK']} requests ok ({served[old]} old, {served[kept]} kept, "
          f"{served[surge]} surge), {outcomes['refused, retried']} refused connections retried, "
          f"{sum(failed.values())} failed {failed}; the terminated replica drained and exited in "
          f"{drained:.1f} s (measured under load)")
    assert failed == {}, f"requests failed during the rollout: {failed}"
    # uvicorn re-raises the signal it caught once its graceful stop is done, so a cleanly stopped
    # gateway ends as killed by SIGTERM (143 in a shell; the kubelet expects no other code).
    assert code in (0, -signal.SIGTERM), f"the gateway stops on SIGTERM without error (exit {code})"
    assert "gateway_stopped" in (tmp_path / "old.log").read_text(), "the lifespan's shutdown ran"
    assert old in balancer.draining_seen, "the terminated gateway left the rotation through /readyz (503 DRAINING)"
    assert drained >= DRAIN_SECONDS, "the gateway kept serving for its drain period before it stopped"
    assert before > 0 and served[old] > 0 and served[surge] > 0, "requests went to every replica in rotation"

