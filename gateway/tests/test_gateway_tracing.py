"""One HTTP request is one trace: the caller's trace continues through the gateway into profile."""

from __future__ import annotations

import secrets

from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.trace import SpanKind

from crmkit.auth import Role
from crmkit.testing import eventually

GET_CUSTOMER_RPC = "/crm.profile.v1.ProfileService/GetCustomer"


def exported_of(collector, trace_id):  # type: ignore[no-untyped-def]
    """The spans the profile process exported for the trace so far."""
    return [span for _, span in collector.spans if span.trace_id == trace_id.to_bytes(16, "big")]


async def test_request_trace_continues_into_the_profile_rpc(client, headers, create_customer, new_customer,
                                                            span_recorder, span_collector) -> None:
    sent = new_customer()
    assert (await create_customer(sent)).status_code == 201
    trace_id = secrets.randbits(128) | 1
    span_recorder.watch(trace_id)
    traceparent = f"00-{trace_id:032x}-{secrets.randbits(64) | 1:016x}-01"

    response = await client.get(f"/v1/customers/{sent['customer_id']}",
                                headers={**headers(Role.CHANNEL_APP), "traceparent": traceparent})
    assert response.status_code == 200

    def has_rpc_client_span(spans):  # type: ignore[no-untyped-def]
        return any(s.kind is SpanKind.CLIENT and s.name == GET_CUSTOMER_RPC for s in spans)

    def has_rpc_server_span(spans):  # type: ignore[no-untyped-def]
        return any(s.kind == trace_pb2.Span.SPAN_KIND_SERVER and s.name == GET_CUSTOMER_RPC for s in spans)

    spans = await eventually(lambda: span_recorder.of_trace(trace_id), until=has_rpc_client_span, what="spans")
    http = next(s for s in spans if s.kind is SpanKind.SERVER and s.name == "GET /v1/customers/{customer_id}")
    rpc_client = next(s for s in spans if s.kind is SpanKind.CLIENT and s.name == GET_CUSTOMER_RPC)
    collector, _ = span_collector  # the profile process's spans
    exported = await eventually(lambda: exported_of(collector, trace_id), until=has_rpc_server_span,
                               what="the profile process's exports")
    rpc_server = next(s for s in exported if s.kind == trace_pb2.Span.SPAN_KIND_SERVER and s.name == GET_CUSTOMER_RPC)
    assert rpc_client.parent is not None and rpc_client.parent.span_id == http.context.span_id
    assert rpc_server.parent_span_id == rpc_client.context.span_id.to_bytes(8, "big")
    # The problem body quotes the same trace, so support can find a failed request.
    missing = await client.get("/v1/customers/NO-SUCH-ONE",
                               headers={**headers(Role.CHANNEL_APP), "traceparent": traceparent})
    assert missing.json()["trace_id"] == f"{trace_id:032x}"


async def test_personal_data_stays_out_of_the_request_spans(client, headers, create_customer, new_customer,
                                                            span_recorder) -> None:
    sent = new_customer()
    assert (await create_customer(sent)).status_code == 201
    trace_id = secrets.randbits(128) | 1
    span_recorder.watch(trace_id)
    traceparent = f"00-{trace_id:032x}-{secrets.randbits(64) | 1:016x}-01"
    response = await client.get(f"/v1/customers/{sent['customer_id']}",
                                headers={**headers(Role.CHANNEL_APP), "traceparent": traceparent})
    assert response.json()["mobile_phone"] == "+8613812345678"

    # The request's server span ends last, after its RPC client span (profile's spans are in its own process).
    spans = await eventually(lambda: span_recorder.of_trace(trace_id), what="the request's spans",
                             until=lambda s: {SpanKind.SERVER, SpanKind.CLIENT} <= {x.kind for x in s})
    recorded = " ".join(f"{s.name} {dict(s.attributes or {})} {[e.attributes for e in s.events]}" for s in spans)
    for personal in ("Li Wei", "13812345678", "li.wei@example.com", "11010519491231002X", "Bearer"):
        assert personal not in recorded


async def test_probes_are_not_traced(client, headers, span_recorder) -> None:
    trace_id = secrets.randbits(128) | 1
    span_recorder.watch(trace_id)
    traceparent = f"00-{trace_id:032x}-{secrets.randbits(64) | 1:016x}-01"
    for probe in ("/healthz", "/readyz"):
        assert (await client.get(probe, headers={"traceparent": traceparent})).status_code == 200
    # A traced request after the probes: once its span is recorded, a probe's span would be too.
    await client.get("/v1/customers/NO-SUCH-ONE", headers={**headers(Role.CHANNEL_APP), "traceparent": traceparent})
    marker = "GET /v1/customers/{customer_id}"
    spans = await eventually(lambda: span_recorder.of_trace(trace_id),
                             until=lambda s: any(span.name == marker for span in s), what="the marker span")
    assert [s.name for s in spans if s.kind is SpanKind.SERVER and not s.name.startswith("/grpc.health")] == [marker]
