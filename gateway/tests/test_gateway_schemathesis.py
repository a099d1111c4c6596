"""Contract tests: schemathesis drives every operation of the gateway's own OpenAPI document.

The gateway runs as a real process (as deployed: uvicorn, its lifespan, its middleware) with the
real profile, segment, campaign, feedback and risk services behind it; the document is the one
it serves at `/openapi.json`, built here by the same code and checked equal to the served one:
schemathesis parametrizes tests when they are collected, before any fixture runs (its loader
from a fixture, `schemathesis.pytest.from_fixture`, fails on pytest 9.2, which dropped
`Node._nodeid`).

For each operation schemathesis sends the document's examples, boundary values of every
parameter (its coverage phase) and generated requests, valid and invalid, with a token carrying
every human role. The document's example customer exists, so the examples read a real one. Every
answer must be no server error, use a status the operation documents, and match that status's
schema.

Runs are deterministic (`derandomize`), so a failure in CI fails the same way locally.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction

from crm_gateway.app import create_app
from crm_gateway.settings import GatewaySettings
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, eventually, free_port, stop_process, token

from .conftest import auth, customer_json

pytestmark = pytest.mark.slow

# Requests per operation in the generation phase; the examples and coverage phases add theirs.
EXAMPLES_PER_OPERATION = 15
HUMAN_ROLES = tuple(role for role in Role if role is not Role.SERVICE)


# Buckets no generated run can empty (the limits themselves are tested in test_gateway_rate_limits).
BURSTS = {"rate_limit_read_burst": 1_000_000, "rate_limit_write_burst": 1_000_000,
          "rate_limit_auth_failure_burst": 1_000_000}


def gateway_env(port: int, peers: dict[str, str]) -> dict[str, str]:
    """The gateway's settings as a deployment gives them: environment variables."""
    return {
        "CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
        "CRM_GATEWAY_PORT": str(port), "CRM_GATEWAY_DRAIN_SECONDS": "0", "CRM_GATEWAY_REDIS_URL": "",
        **{f"CRM_GATEWAY_{name.upper()}": str(value) for name, value in BURSTS.items()},
        **{f"CRM_GATEWAY_{peer.upper()}_TARGET": target for peer, target in peers.items()},
    }


@pytest.fixture(scope="session")
async def gateway_url(profile_address: str, segment_address: str, campaign_book_address: str,
                      feedback_address: str, risk_address: str,
                      tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The gateway as a real process in front of the five real services, once `/readyz` says
    every peer is serving."""
    port = free_port()
    peers = {"profile": profile_address, "segment": segment_address, "campaign": campaign_book_address,
             "feedback": feedback_address, "risk": risk_address}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CRM_", "OTEL_"))}
    env.update(gateway_env(port, peers))
    log_path: Path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "crm_gateway", env=env,
                                                       stdout=log, stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=2) as client:

                async def ready() -> bool:
                    if process.returncode is not None:
                        logged = await asyncio.to_thread(log_path.read_text, errors="replace")
                        pytest.fail(f"the gateway exited: {logged[-2000:]}")
                    try:
                        return (await client.get("/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(ready, seconds=60, interval=0.1, what="the gateway ready")
                example = customer_json(customer_id=example_customer_id(), relationship_manager_id="rm-contract")
                created = await client.post("/v1/customers", json=example, headers=auth(Role.ADMIN))
                assert created.status_code == 201, created.text
            yield url
        finally:
            await stop_process(process)


def document() -> dict[str, Any]:
    """The OpenAPI document of a gateway with the settings of `gateway_url`'s (peers aside, which
    it does not state); a test below checks the running gateway serves this very document."""
    settings = GatewaySettings(**{"env": "test", "jwt_secret": TEST_JWT_SECRET, "redis_url": "", **BURSTS})
    return create_app(settings).openapi()


DOCUMENT = document()


def example_customer_id() -> str:
    """The customer id the document gives as its example (routes/common.py)."""
    parameters = DOCUMENT["paths"]["/v1/customers/{customer_id}"]["get"]["parameters"]
    return str(next(p for p in parameters if p["name"] == "customer_id")["schema"]["examples"][0])
schema = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS: list[CheckFunction] = [schemathesis.checks.not_a_server_error,
                               schemathesis.checks.status_code_conformance,
                               schemathesis.checks.response_schema_conformance]


async def test_the_running_gateway_serves_the_document_under_test(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url) as client:
        served = await client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_operation_answers_as_documented(case: schemathesis.Case, gateway_url: str) -> None:
    case.call_and_validate(base_url=gateway_url, headers={"Authorization": f"Bearer {token(*HUMAN_ROLES)}"},
                           checks=CHECKS)
