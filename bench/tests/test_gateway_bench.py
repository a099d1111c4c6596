"""The gateway-360 bench compares like with like: its floor makes as many gRPC calls as the
customer 360, to the same services, and every peer of the gateway is one of the bench's
processes. Quick: no process started."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from bench.gateway_360 import gateway_env, service_envs
from bench.gateway_overload import limited_gateway_env, outcome_of, sustainable
from bench.gateway_server import FANOUT
from bench.harness import REGISTRY, LoadResult
from crm_gateway.routes.customer360 import PARTS

SERVICES = ("profile", "segment", "feedback", "risk", "campaign")


def test_the_floor_calls_the_same_services_as_often_as_the_360() -> None:
    calls = Counter(["profile", *(part.service for part, _ in PARTS)])  # GetCustomer, then each part
    assert Counter(FANOUT) == calls
    assert set(calls) == set(SERVICES)


def test_every_peer_of_the_gateway_is_a_bench_process_and_limits_are_off() -> None:
    ports = {name: 40_000 + i for i, name in enumerate(SERVICES)}
    env = gateway_env(ports, 41_000, "secret")
    assert {name: env[f"CRM_GATEWAY_{name.upper()}_TARGET"] for name in SERVICES} == {
        name: f"127.0.0.1:{port}" for name, port in ports.items()}
    assert env["CRM_GATEWAY_RATE_LIMITS_ENABLED"] == "false"
    envs = service_envs({name: f"postgresql:///{name}" for name in SERVICES}, ports, "secret")
    assert envs["segment"]["CRM_SEGMENT_PROFILE_TARGET"] == "127.0.0.1:40000"
    assert all(envs[name][f"CRM_{name.upper()}_PORT"] == str(ports[name]) for name in SERVICES)


def test_the_gateway_bench_is_registered() -> None:
    assert REGISTRY["gateway-360"].module == "bench.gateway_360"


def test_the_overload_bench_is_registered_and_its_limited_gateway_publishes_the_rate_per_client() -> None:
    assert REGISTRY["gateway-overload"].module == "bench.gateway_overload"
    env = limited_gateway_env(gateway_env({"profile": 40_000}, 41_000, "secret"), 123.4)
    assert env["CRM_GATEWAY_RATE_LIMITS_ENABLED"] == "true"
    assert float(env["CRM_GATEWAY_RATE_LIMIT_READ_PER_SECOND"]) == 123.4
    assert env["CRM_GATEWAY_RATE_LIMIT_READ_BURST"] == "12"  # a tenth of a second's worth


def _phase(throughput: float, p99_ms: float, concurrency: int) -> LoadResult:
    count = round(throughput * 10)
    return LoadResult(concurrency=concurrency, completed=count, elapsed_seconds=10.0,
                      latencies_seconds=[p99_ms / 1000] * count)


def test_the_sustainable_rate_is_the_fastest_phase_within_the_latency_goal() -> None:
    phases = [_phase(100, 5, 1), _phase(300, 20, 4), _phase(420, 49, 8), _phase(450, 90, 16)]
    assert sustainable(phases).concurrency == 8
    slow = [_phase(10, 80, 1), _phase(20, 200, 4)]
    assert sustainable(slow).concurrency == 1  # none within the goal: the gentlest load


def test_every_answer_under_overload_is_admitted_or_refused_with_a_retry_after() -> None:
    assert outcome_of(httpx.Response(200)) == "200"
    assert outcome_of(httpx.Response(429, headers={"Retry-After": "1"})) == "429"
    with pytest.raises(AssertionError, match="Retry-After"):
        outcome_of(httpx.Response(429))
    with pytest.raises(AssertionError, match="503"):
        outcome_of(httpx.Response(503, text="down"))
