"""Probes and degraded answers: liveness always, readiness follows the profile service."""

from __future__ import annotations

import json

from crmkit.auth import Role


async def test_liveness_answers_without_a_token(client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_profile_service_serves(client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["checks"]["profile"] == "SERVING"


async def test_not_ready_and_503_problems_when_the_profile_service_is_down(unreachable_gateway, headers) -> None:
    async with unreachable_gateway() as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not_ready"
        assert ready.json()["checks"]["profile"] == "UNAVAILABLE"

        response = await client.get("/v1/customers/C0001", headers=headers(Role.ADMIN))
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith(":unavailable")
        assert "127.0.0.1" not in json.dumps(problem)


async def test_unknown_route_and_method_are_problems(client) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = await client.delete("/v1/customers")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"
    assert wrong_method.headers["allow"] == "POST"
