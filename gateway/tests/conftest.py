"""Gateway test fixtures: the real profile service in process on a real database, and the gateway
application pointed at it, driven through httpx's ASGI transport with its lifespan running."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from crm.campaign.v1 import campaign_service_pb2_grpc
from crm.profile.v1 import profile_service_pb2_grpc
from crm_gateway.app import create_app
from crm_gateway.settings import GatewaySettings
from crmkit.auth import Role
from crmkit.testing import (
    TEST_JWT_SECRET,
    DatabaseFactory,
    SpanCollector,
    free_port,
    service_process,
    telemetry_env,
    token,
)

Headers = dict[str, str]


def profile_env(database_url: str, port: int) -> dict[str, str]:
    """The profile service's settings, as a deployment gives them: environment variables."""
    return {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_PROFILE_DATABASE_URL": database_url,
        "CRM_PROFILE_PORT": str(port),
        "CRM_HOST": "127.0.0.1",
        "CRM_PROFILE_ENCRYPTION_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
        "CRM_PROFILE_ACTIVE_KEY_ID": "k1",
        "CRM_PROFILE_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
        "CRM_PROFILE_FEED_POLL_SECONDS": "0.05",
    }


@pytest.fixture(scope="session")
async def profile_address(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                          span_collector: tuple[SpanCollector, str]) -> AsyncIterator[str]:
    """The profile service as a real process on its own database, exporting its spans to the
    test's collector: the gateway reaches it only through its gRPC contract, as in a deployment
    (it never imports a service's package)."""
    port = free_port()
    env = {**profile_env(await database_factory.create("gateway_profile"), port), **telemetry_env(span_collector[1])}
    log_path = tmp_path_factory.mktemp("profile") / "profile.log"
    async with service_process("crm_profile", env, port=port, log_path=log_path) as address:
        yield address


def feedback_env(database_url: str, port: int) -> dict[str, str]:
    return {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
            "CRM_FEEDBACK_DATABASE_URL": database_url, "CRM_FEEDBACK_PORT": str(port)}


def segment_env(database_url: str, port: int, profile: str) -> dict[str, str]:
    return {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
            "CRM_SEGMENT_DATABASE_URL": database_url, "CRM_SEGMENT_PORT": str(port),
            "CRM_SEGMENT_PROFILE_TARGET": profile}


@pytest.fixture(scope="session")
async def feedback_address(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                           ) -> AsyncIterator[str]:
    """The feedback service as a real process on its own database (for the customer 360)."""
    port = free_port()
    env = feedback_env(await database_factory.create("gateway_feedback"), port)
    log_path = tmp_path_factory.mktemp("feedback") / "feedback.log"
    async with service_process("crm_feedback", env, port=port, log_path=log_path) as address:
        yield address


@pytest.fixture(scope="session")
async def segment_address(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                          profile_address: str) -> AsyncIterator[str]:
    """The segment service as a real process following the test's profile service."""
    port = free_port()
    env = segment_env(await database_factory.create("gateway_segment"), port, profile_address)
    log_path = tmp_path_factory.mktemp("segment") / "segment.log"
    async with service_process("crm_segment", env, port=port, log_path=log_path) as address:
        yield address


@pytest.fixture(scope="session")
async def risk_address(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                       ) -> AsyncIterator[str]:
    """The risk service as a real process on its own database (its model registry)."""
    port = free_port()
    env = {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
           "CRM_RISK_DATABASE_URL": await database_factory.create("gateway_risk"), "CRM_RISK_PORT": str(port)}
    log_path = tmp_path_factory.mktemp("risk") / "risk.log"
    async with service_process("crm_risk", env, port=port, log_path=log_path) as address:
        yield address


@pytest.fixture(scope="session")
async def campaign_address(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                           ) -> AsyncIterator[str]:
    """The campaign service as a real process; its peers' feeds are not followed here (down)."""
    port = free_port()
    env = {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
           "CRM_CAMPAIGN_DATABASE_URL": await database_factory.create("gateway_campaign"),
           "CRM_CAMPAIGN_PORT": str(port), "CRM_CAMPAIGN_PROFILE_TARGET": nowhere(),
           "CRM_CAMPAIGN_SEGMENT_TARGET": nowhere(), "CRM_CAMPAIGN_FEEDBACK_TARGET": nowhere()}
    log_path = tmp_path_factory.mktemp("campaign") / "campaign.log"
    async with service_process("crm_campaign", env, port=port, log_path=log_path) as address:
        yield address


@pytest.fixture(scope="session")
async def campaign_book_address(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                                profile_address: str) -> AsyncIterator[str]:
    """The campaign service as a real process following the test's profile service (its
    customers and their managers); no segment, feedback or risk, no dispatcher."""
    port = free_port()
    env = {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
           "CRM_CAMPAIGN_DATABASE_URL": await database_factory.create("gateway_campaign_book"),
           "CRM_CAMPAIGN_PORT": str(port), "CRM_CAMPAIGN_PROFILE_TARGET": profile_address,
           "CRM_CAMPAIGN_SEGMENT_TARGET": "", "CRM_CAMPAIGN_FEEDBACK_TARGET": "", "CRM_CAMPAIGN_RISK_TARGET": "",
           "CRM_CAMPAIGN_DISPATCHER_ENABLED": "false"}
    log_path = tmp_path_factory.mktemp("campaign-book") / "campaign.log"
    async with service_process("crm_campaign", env, port=port, log_path=log_path) as address:
        yield address


@pytest.fixture(scope="session")
async def campaigns(campaign_book_address: str) -> AsyncIterator[campaign_service_pb2_grpc.CampaignServiceStub]:
    """A direct gRPC stub to that campaign service, to set up data behind the gateway."""
    async with grpc.aio.insecure_channel(campaign_book_address) as channel:
        yield campaign_service_pb2_grpc.CampaignServiceStub(channel)


def nowhere() -> str:
    """A target nothing listens on: a peer that is down."""
    return f"127.0.0.1:{free_port()}"


def gateway_settings(**overrides: Any) -> GatewaySettings:
    """Test settings: buckets in process unless a test asks for Redis (CRM_GATEWAY_REDIS_URL in the
    environment does not leak in), and bursts no test reaches unless it sets its own."""
    limits = {"rate_limit_read_burst": 100_000, "rate_limit_write_burst": 100_000,  # tests call fast
              "rate_limit_auth_failure_burst": 100_000}
    # Peers a test does not name are down, never whatever listens on the default ports.
    peers = {f"{peer}_target": nowhere() for peer in ("profile", "segment", "campaign", "feedback", "risk")}
    return GatewaySettings(env="test", jwt_secret=TEST_JWT_SECRET,
                           **{"redis_url": "", **limits, **peers, **overrides})


@asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The gateway application with its lifespan entered, and an HTTP client bound to it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield app, client


@pytest.fixture(scope="session")
async def gateway(profile_address: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_gateway(gateway_settings(profile_target=profile_address)) as running:
        yield running


@pytest.fixture
def client(gateway: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway[1]


@pytest.fixture
def gateway_app(gateway: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return gateway[0]


@pytest.fixture
def gateway_with(profile_address: str) -> Callable[..., Any]:
    """`async with gateway_with(max_body_bytes=...) as (app, client)`: a gateway on the test's
    profile service with some settings changed."""
    return lambda **overrides: running_gateway(gateway_settings(profile_target=profile_address, **overrides))


@pytest.fixture
def unreachable_gateway() -> Callable[[], Any]:
    """A gateway whose profile target has nothing listening: for degraded answers."""
    return lambda: running_gateway(gateway_settings(peer_deadline_seconds=1.0))


def auth(*roles: Role, subject: str = "tester") -> Headers:
    return {"Authorization": f"Bearer {token(*roles, subject=subject)}"}


@pytest.fixture
def headers() -> Callable[..., Headers]:
    """`headers(Role.ADMIN, subject=...)`: an Authorization header with a test token."""
    return auth


def customer_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": f"C{uuid.uuid4().hex[:12].upper()}",
        "customer_type": "CUSTOMER_TYPE_INDIVIDUAL",
        "full_name": "Li Wei",
        "birth_date": {"year": 1985, "month": 3, "day": 14},
        "gender": "GENDER_MALE",
        "nationality": "CN",
        # A valid PRC resident identity card number (check character 'X').
        "id_document": {"type": "ID_DOCUMENT_TYPE_NATIONAL_ID", "number": "11010519491231002X",
                        "issuing_country": "CN"},
        "mobile_phone": "+8613812345678",
        "email": "li.wei@example.com",
        "address": {"region_code": "CN", "locality": "Beijing", "address_lines": ["1 Chang'an Avenue"],
                    "postal_code": "100000"},
        "kyc_status": "KYC_STATUS_VERIFIED",
        "risk_tolerance": "RISK_TOLERANCE_BALANCED",
        "relationship_manager_id": "rm-007",
        "branch_id": "BJ-001",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


@pytest.fixture
def new_customer() -> Callable[..., dict[str, Any]]:
    """A valid customer body with a fresh id; keyword arguments override fields (None drops one)."""
    return customer_json


@pytest.fixture
def create_customer(client: httpx.AsyncClient) -> Callable[..., Any]:
    """POST a customer through the gateway (as an admin unless `headers` say otherwise)."""

    async def create(body: Any, headers: Headers | None = None) -> httpx.Response:
        return await client.post("/v1/customers", json=body, headers=headers or auth(Role.ADMIN))

    return create


@pytest.fixture(scope="session")
async def profile_stub(profile_address: str) -> AsyncIterator[profile_service_pb2_grpc.ProfileServiceStub]:
    """A direct gRPC stub to the profile service, to set up and check data behind the gateway."""
    async with grpc.aio.insecure_channel(profile_address) as channel:
        yield profile_service_pb2_grpc.ProfileServiceStub(channel)


class SpanRecorder(SpanProcessor):
    """Keeps the finished spans of the traces a test asks for, and nothing else."""

    def __init__(self) -> None:
        self._watched: set[int] = set()
        self.spans: list[ReadableSpan] = []

    def watch(self, trace_id: int) -> None:
        self._watched.add(trace_id)

    def of_trace(self, trace_id: int) -> list[ReadableSpan]:
        return [span for span in self.spans if span.context is not None and span.context.trace_id == trace_id]

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_id in self._watched:
            self.spans.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@pytest.fixture(scope="session")
def span_recorder() -> SpanRecorder:
    """Records spans of watched traces from this process's tracer provider.

    OpenTelemetry allows one global provider per process: an SDK provider already installed (by
    another suite) is reused, otherwise one without exporters is installed. Both the gateway's
    instrumentation and the in-process profile server pick it up through the API's proxies.
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            pytest.skip("a non-SDK tracer provider is installed in this process")
    recorder = SpanRecorder()
    provider.add_span_processor(recorder)
    return recorder
