"""The gateway's own body limit: 413 problem+json before the body is read or forwarded,
whether the body declares its length or arrives in chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from crmkit.auth import Role
from crmkit.testing import token

PROBLEM = "application/problem+json"
SMALL_LIMIT = 4096


@pytest.fixture
async def small_limit_client(gateway_with) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_with(max_body_bytes=SMALL_LIMIT) as (_, client):
        yield client


def auth(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}


def in_chunks(body: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start:start + size]

    return chunks()


def assert_too_large(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith(":content-too-large")
    assert problem["status"] == 413
    assert problem["reason"] == "BODY_TOO_LARGE"
    assert str(limit) in problem["detail"]


async def test_a_20_mb_body_is_413_not_a_retryable_429_nor_an_internal_limit(client, headers, new_customer) -> None:
    sent = new_customer(occupation="x" * (20 * 1024 * 1024))
    response = await client.post("/v1/customers", json=sent, headers=headers(Role.ADMIN))
    assert_too_large(response, 1024 * 1024)
    assert "16777216" not in response.text and "SERVER" not in response.text
    missing = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ADMIN))
    assert missing.status_code == 404


async def test_a_chunked_body_is_counted_and_refused_past_the_limit(small_limit_client, new_customer) -> None:
    sent = new_customer(occupation="x" * (2 * SMALL_LIMIT))
    response = await small_limit_client.post(
        "/v1/customers", content=in_chunks(json.dumps(sent).encode()),
        headers={**auth(Role.ADMIN), "Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_too_large(response, SMALL_LIMIT)
    missing = await small_limit_client.get(f"/v1/customers/{sent['customer_id']}", headers=auth(Role.ADMIN))
    assert missing.status_code == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_within_the_limit_goes_through(small_limit_client, new_customer, chunked) -> None:
    body = json.dumps(new_customer()).encode()
    assert len(body) < SMALL_LIMIT
    response = await small_limit_client.post(
        "/v1/customers", content=in_chunks(body, 100) if chunked else body,
        headers={**auth(Role.ADMIN), "Content-Type": "application/json"})
    assert response.status_code == 201


async def test_a_declared_length_past_the_limit_is_refused_without_authentication(small_limit_client) -> None:
    response = await small_limit_client.post("/v1/customers", content=b"{" + b" " * SMALL_LIMIT + b"}",
                                             headers={"Content-Type": "application/json"})
    assert_too_large(response, SMALL_LIMIT)


async def test_the_openapi_document_states_the_limit(small_limit_client) -> None:
    document = (await small_limit_client.get("/openapi.json")).json()
    assert f"limited to {SMALL_LIMIT} bytes" in document["info"]["description"]
    too_large = document["paths"]["/v1/customers"]["post"]["responses"]["413"]
    assert too_large["content"] == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
