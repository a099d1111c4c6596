"""One request through real processes: gateway -> profile -> PostgreSQL is one trace, and the
log lines of both processes carry its trace id."""

from __future__ import annotations

import json
import uuid

import grpc
import httpx
import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, free_port, migrated_database, token

pytestmark = pytest.mark.slow

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT


def _attribute(span: trace_pb2.Span, key: str) -> str:
    return next((a.value.string_value for a in span.attributes if a.key == key), "")


async def test_one_request_is_one_trace_across_gateway_profile_and_database(
    database_factory, span_collector, launcher, service_env,
) -> None:
    collector, endpoint = span_collector
    database_url = await migrated_database(database_factory, PROFILE)
    profile_port, gateway_port = free_port(), free_port()
    telemetry = service_env.telemetry(endpoint)
    profile = launcher.start("profile", "crm_profile", {**service_env.profile(database_url, profile_port), **telemetry},
                             "serve")
    gateway = launcher.start("gateway", "crm_gateway", {
        **telemetry, "CRM_ENV": "test", "CRM_JWT_SECRET": service_env.profile("", 0)["CRM_JWT_SECRET"],
        "CRM_HOST": "127.0.0.1", "CRM_GATEWAY_PORT": str(gateway_port),
        "CRM_GATEWAY_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
    })
    await launcher.wait_serving(f"127.0.0.1:{profile_port}", profile)

    customer_id = f"T{uuid.uuid4().hex[:10].upper()}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as channel:
        await profile_service_pb2_grpc.ProfileServiceStub(channel).CreateCustomer(
            profile_service_pb2.CreateCustomerRequest(customer=customer_pb2.Customer(
                customer_id=customer_id, customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL, full_name="Zhang San")),
            metadata=bearer(Role.ADMIN), timeout=5)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}") as http:
        await eventually(lambda: gateway.popen.poll() is None and _healthy(gateway_port))
        response = await http.get(f"/v1/customers/{customer_id}",
                                  headers={"Authorization": f"Bearer {token(Role.CHANNEL_APP)}"})
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Zhang San"

    def request_trace() -> bytes | None:
        for service, span in collector.spans:
            if service == "crm-gateway" and span.kind == SERVER and customer_id in _attribute(span, "url.path") + \
                    _attribute(span, "http.target") + span.name:
                return span.trace_id
        for service, span in collector.spans:
            if service == "crm-gateway" and span.kind == SERVER and "customers" in span.name:
                return span.trace_id
        return None

    trace_id = await eventually(request_trace)

    def spans_of_trace() -> list[tuple[str, trace_pb2.Span]] | None:
        spans = [(s, span) for s, span in collector.spans if span.trace_id == trace_id]
        has_db = any(s == "crm-profile" and _attribute(span, "db.system") + _attribute(span, "db.system.name")
                     for s, span in spans)
        return spans if has_db else None

    spans = await eventually(spans_of_trace)
    by_id = {span.span_id: (service, span) for service, span in spans}
    profile_server = [span for service, span in spans
                      if service == "crm-profile" and span.kind == SERVER and "GetCustomer" in span.name]
    assert len(profile_server) == 1, [(s, sp.name) for s, sp in spans]
    parent_service, parent = by_id[profile_server[0].parent_span_id]
    assert parent_service == "crm-gateway" and parent.kind == CLIENT

    def ancestors(span: trace_pb2.Span) -> list[bytes]:
        chain = []
        while span.parent_span_id in by_id:
            chain.append(span.parent_span_id)
            span = by_id[span.parent_span_id][1]
        return chain

    database_spans = [span for service, span in spans
                      if service == "crm-profile" and (_attribute(span, "db.system") or
                                                       _attribute(span, "db.system.name"))]
    assert database_spans
    assert all(profile_server[0].span_id in ancestors(span) for span in database_spans)

    hex_trace = trace_id.hex()

    def logged_with_trace(process) -> bool:  # type: ignore[no-untyped-def]
        for line in process.log_lines():
            try:
                if json.loads(line).get("trace_id") == hex_trace:
                    return True
            except ValueError:
                continue
        return False

    await eventually(lambda: logged_with_trace(profile) and logged_with_trace(gateway))


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False
