"""The gateway-360 bench compares like with like: its floor makes as many gRPC calls as the
customer 360, to the same services, and every peer of the gateway is one of the bench's
processes. Quick: no process started."""

from __future__ import annotations

from collections import Counter

from bench.gateway_360 import gateway_env, service_envs
from bench.gateway_server import FANOUT
from bench.harness import REGISTRY
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
