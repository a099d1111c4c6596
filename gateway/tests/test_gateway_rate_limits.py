"""Published limits: a token bucket per client and route, 429 with `Retry-After`, shared by the
replicas through Redis when configured (the tests use the Redis at 127.0.0.1:6379 when it
answers), in process otherwise, and stated in the OpenAPI document."""

from __future__ import annotations

import asyncio
import socket
import uuid

import httpx
import pytest

from crm_gateway.app import create_app
from crm_gateway.limits import Limit, LocalBuckets
from crmkit.auth import Role
from crmkit.testing import free_port

from .conftest import auth, gateway_settings, running_gateway

BAD_TOKEN = {"Authorization": "Bearer not-a-jwt"}

REDIS = ("127.0.0.1", 6379)
CUSTOMER = "/v1/customers/NO-SUCH-CUSTOMER"


def redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def caller() -> dict[str, str]:
    """A fresh client (token subject) per test: buckets are per client."""
    return auth(Role.ADMIN, subject=f"app-{uuid.uuid4().hex[:8]}")


def test_a_bucket_admits_its_burst_then_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = LocalBuckets(clock=lambda: now[0])
    limit = Limit(per_second=2.0, burst=3)
    assert [buckets.take_now("k", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take_now("k", limit) == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take_now("k", limit) == 0.0
    assert buckets.take_now("other", limit) == 0.0  # another key has its own bucket
    now[0] += 100
    assert [buckets.take_now("k", limit) for _ in range(4)][-1] > 0  # refilled only up to the burst


async def test_over_the_burst_is_a_429_with_retry_after_for_that_client_and_route_only(gateway_with) -> None:
    async with gateway_with(rate_limit_read_burst=2, rate_limit_read_per_second=0.5) as (_, client):
        busy = caller()
        assert [(await client.get(CUSTOMER, headers=busy)).status_code for _ in range(2)] == [404, 404]
        refused = await client.get(CUSTOMER, headers=busy)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "2"  # one token at 0.5 per second
        assert refused.json()["reason"] == "RATE_LIMITED"
        # Another client, and the same client on another route, have their own buckets.
        assert (await client.get(CUSTOMER, headers=caller())).status_code == 404
        assert (await client.post("/v1/customers", json={}, headers=busy)).status_code == 400


async def test_the_bucket_refills_and_the_client_is_admitted_again(gateway_with) -> None:
    async with gateway_with(rate_limit_read_burst=1, rate_limit_read_per_second=2) as (_, client):
        busy = caller()
        assert (await client.get(CUSTOMER, headers=busy)).status_code == 404
        refused = await client.get(CUSTOMER, headers=busy)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"  # whole seconds, at least one
        await asyncio.sleep(0.6)
        assert (await client.get(CUSTOMER, headers=busy)).status_code == 404


async def test_replicas_share_the_buckets_through_redis(profile_address) -> None:
    if not redis_answers():
        pytest.skip("no Redis answers at 127.0.0.1:6379")
    settings = gateway_settings(profile_target=profile_address, redis_url="redis://127.0.0.1:6379/0",
                                rate_limit_read_burst=3, rate_limit_read_per_second=0.1)
    async with running_gateway(settings) as (_, one), running_gateway(settings) as (_, other):
        busy = caller()
        statuses = [(await replica.get(CUSTOMER, headers=busy)).status_code for replica in (one, other, one, other)]
        assert statuses == [404, 404, 404, 429]  # three tokens in all, not three per replica
        assert (await one.get(CUSTOMER, headers=busy)).headers["retry-after"] == "10"


async def test_without_redis_each_replica_limits_on_its_own_and_keeps_serving(profile_address) -> None:
    settings = gateway_settings(profile_target=profile_address, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                rate_limit_read_burst=2, rate_limit_read_per_second=0.1)
    async with running_gateway(settings) as (_, client):
        busy = caller()
        assert [(await client.get(CUSTOMER, headers=busy)).status_code for _ in range(3)] == [404, 404, 429]


async def test_the_limits_are_stated_in_the_openapi_document(gateway_with) -> None:
    async with gateway_with(rate_limit_read_burst=7, rate_limit_read_per_second=3,
                            rate_limit_write_burst=4, rate_limit_write_per_second=1) as (_, client):
        document = (await client.get("/openapi.json")).json()
    assert "3 requests per second per client, bursts of up to 7" in document["info"]["description"]
    get = document["paths"]["/v1/customers/{customer_id}"]["get"]
    assert get["x-rate-limit"] == {"class": "read", "per_second": 3, "burst": 7,
                                   "per": "client (token subject) and route", "algorithm": "token bucket"}
    post = document["paths"]["/v1/customers"]["post"]
    assert post["x-rate-limit"]["burst"] == 4
    too_many = post["responses"]["429"]
    assert "1 requests per second per client, bursts of up to 4" in too_many["description"]
    assert too_many["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    assert "x-rate-limit" not in document["paths"]["/healthz"]["get"]


async def test_failed_authentication_is_limited_per_client_address(profile_address) -> None:
    """401s cost the sender a token of its address: past the burst, 429 with Retry-After; a valid token
    from the same address and bad tokens from another address are unaffected."""
    settings = gateway_settings(profile_target=profile_address, rate_limit_auth_failure_burst=3,
                                rate_limit_auth_failure_per_second=0.25)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        def client_at(address: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                                     base_url="http://gateway.test")

        async with client_at("203.0.113.7") as flood, client_at("198.51.100.2") as other:
            statuses = [(await flood.get(CUSTOMER, headers=BAD_TOKEN)).status_code for _ in range(3)]
            assert statuses == [401, 401, 401]
            assert (await flood.get(CUSTOMER)).status_code == 429  # a missing token is a failure too
            refused = await flood.get(CUSTOMER, headers=BAD_TOKEN)
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "4"  # one token at 0.25 per second
            assert refused.json()["reason"] == "RATE_LIMITED"
            assert "failed authentications" in refused.json()["detail"]
            assert (await flood.get(CUSTOMER, headers=caller())).status_code == 404  # valid tokens pass
            assert (await other.get(CUSTOMER, headers=BAD_TOKEN)).status_code == 401


async def test_replicas_share_the_failed_authentication_buckets_through_redis(profile_address) -> None:
    if not redis_answers():
        pytest.skip("no Redis answers at 127.0.0.1:6379")
    address = f"2001:db8::{uuid.uuid4().hex[:4]}"  # a fresh address: Redis outlives the test
    settings = gateway_settings(profile_target=profile_address, redis_url="redis://127.0.0.1:6379/0",
                                rate_limit_auth_failure_burst=2, rate_limit_auth_failure_per_second=0.1)
    one_app, other_app = create_app(settings), create_app(settings)
    async with one_app.router.lifespan_context(one_app), other_app.router.lifespan_context(other_app):
        statuses = []
        for app in (one_app, other_app, one_app):
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as replica:
                statuses.append((await replica.get(CUSTOMER, headers=BAD_TOKEN)).status_code)
    assert statuses == [401, 401, 429]  # two failures in all, not two per replica
