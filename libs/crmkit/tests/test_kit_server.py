"""The server bootstrap and channel factory with real gRPC servers in process: health follows
readiness, SIGTERM-style stop drains in-flight calls, auth and deny-by-default, reflection in
both versions, and channels with deadlines, retries on UNAVAILABLE only and the caller's identity."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from crmkit import errors
from crmkit.auth import Principal, Role, bind_principal, reset_principal
from crmkit.channels import open_channel
from crmkit.logs import configure_logging
from crmkit.server import LIVENESS, GrpcServer, ServiceBinding
from crmkit.settings import ServiceSettings
from crmkit.testing import TEST_JWT_SECRET, bearer, error_reason, eventually, token

# Any small proto service serves as the service under test; OTLP's TraceService has one unary RPC.
DESCRIPTOR = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]
EXPORT = f"/{DESCRIPTOR.full_name}/Export"
Request = trace_service_pb2.ExportTraceServiceRequest


class Scripted(trace_service_pb2_grpc.TraceServiceServicer):
    """Behaves as the test says: sleep, fail with a domain error, and remember what it saw."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.release: asyncio.Event | None = None  # set: each call is held until the test releases it
        self.failures: list[Exception] = []
        self.calls = 0
        self.authorization: list[str] = []

    async def Export(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.authorization.append(dict(context.invocation_metadata()).get("authorization", ""))
        if self.release is not None:
            await self.release.wait()
        await asyncio.sleep(self.delay)  # a slow handler is the behaviour under test (deadlines)
        if self.failures:
            raise self.failures.pop(0)
        return trace_service_pb2.ExportTraceServiceResponse()


class Ready:
    def __init__(self) -> None:
        self.value = True

    async def __call__(self) -> bool:
        return self.value


def settings() -> ServiceSettings:
    return ServiceSettings(env="test", jwt_secret=TEST_JWT_SECRET, host="127.0.0.1", shutdown_grace_seconds=5,
                           health_probe_seconds=0.05, access_log=False)


@pytest.fixture
async def served() -> AsyncIterator[tuple[GrpcServer, Scripted, Ready]]:
    servicer, ready = Scripted(), Ready()
    server = GrpcServer(settings=settings(), port=0, error_domain="test.crm", readiness=ready, bindings=[
        ServiceBinding(descriptor=DESCRIPTOR, policy={EXPORT: frozenset({Role.ADMIN})},
                       register=lambda s: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, s))])
    await server.start()
    yield server, servicer, ready
    await server.stop()


async def health_status(server: GrpcServer, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
        return reply.status


async def test_health_follows_readiness_for_overall_and_each_service(served) -> None:
    server, _, ready = served
    assert await health_status(server) == health_pb2.HealthCheckResponse.SERVING
    assert await health_status(server, DESCRIPTOR.full_name) == health_pb2.HealthCheckResponse.SERVING
    ready.value = False
    await eventually(lambda: health_status(server), until=lambda s: s == health_pb2.HealthCheckResponse.NOT_SERVING,
                     what="overall health NOT_SERVING after readiness failed")
    assert await health_status(server, DESCRIPTOR.full_name) == health_pb2.HealthCheckResponse.NOT_SERVING
    # The process itself is alive: its liveness name stays SERVING through a database outage.
    assert await health_status(server, LIVENESS) == health_pb2.HealthCheckResponse.SERVING


async def test_stop_reports_not_serving_then_lets_in_flight_calls_finish(served) -> None:
    server, servicer, _ = served
    servicer.release = asyncio.Event()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        async def call() -> None:
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(Request(), metadata=bearer(Role.ADMIN))

        in_flight = asyncio.create_task(call())
        await eventually(lambda: servicer.calls == 1, what="the call in the handler")
        stopping = asyncio.create_task(server.stop())

        async def overall() -> int:
            return (await server.health.Check(health_pb2.HealthCheckRequest(service=""), None)).status

        await eventually(overall, until=lambda s: s == health_pb2.HealthCheckResponse.NOT_SERVING,
                         what="NOT_SERVING once stopping")
        assert not in_flight.done() and not stopping.done()  # NOT_SERVING came first, the call still runs
        servicer.release.set()
        await in_flight  # completed, not cancelled
        await stopping
    assert servicer.calls == 1


async def test_calls_need_a_token_and_an_allowed_role(served) -> None:
    server, servicer, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for metadata, code in [((), grpc.StatusCode.UNAUTHENTICATED),
                               (bearer(Role.ANALYST), grpc.StatusCode.PERMISSION_DENIED)]:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.Export(Request(), metadata=metadata)
            assert error.value.code() == code
    assert servicer.calls == 0


async def test_bad_input_with_many_violations_reaches_the_caller_as_invalid_argument(served) -> None:
    server, servicer, _ = served
    servicer.failures.append(errors.InvalidArgument(
        [errors.FieldViolation(f"items[{i}].name", "must be 1 to 64 letters, digits, '-' or '_'") for i in range(500)]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:  # the status fits the client's metadata limit
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(Request(), metadata=bearer(Role.ADMIN))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("invalid request: items[0].name: must be")


async def test_a_token_living_longer_than_the_cap_is_unauthenticated_naming_why(served) -> None:
    server, servicer, _ = served
    now = int(time.time())
    ten_days = jwt.encode({"sub": "a", "roles": ["admin"], "iss": "crm-platform", "aud": "crm",
                           "iat": now, "exp": now + 10 * 24 * 3600}, TEST_JWT_SECRET, algorithm="HS256")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Export(Request(), metadata=(("authorization", f"Bearer {ten_days}"),))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error.value, domain="test.crm") == "TOKEN_LIFETIME_TOO_LONG"
    assert servicer.calls == 0


async def test_methods_registered_as_generic_and_registered_handlers_are_guarded() -> None:
    """Generated code of grpc >= 1.62 adds each method twice; neither way reaches it unguarded."""
    servicer = Scripted()

    def register(server: grpc.aio.Server) -> None:
        handlers = {"Export": grpc.unary_unary_rpc_method_handler(
            servicer.Export, request_deserializer=Request.FromString,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(DESCRIPTOR.full_name, handlers),))
        server.add_registered_method_handlers(DESCRIPTOR.full_name, handlers)

    server = GrpcServer(settings=settings(), port=0, error_domain="test.crm", readiness=Ready(), bindings=[
        ServiceBinding(descriptor=DESCRIPTOR, policy={EXPORT: frozenset({Role.ADMIN})}, register=register)])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.Export(Request())
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert servicer.calls == 0
            await stub.Export(Request(), metadata=bearer(Role.ADMIN))
    finally:
        await server.stop()
    assert servicer.calls == 1


async def test_access_log_lines_carry_the_callers_trace_id_without_an_exporter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another test of the session may have installed an SDK tracer provider process-wide: this one
    # is about a process that exports nothing.
    for module in ("crmkit.interceptor", "crmkit.server"):
        monkeypatch.setattr(f"{module}.traces_exported", lambda: False)
    configure_logging(service="test")
    binding = ServiceBinding(
        descriptor=DESCRIPTOR, policy={EXPORT: frozenset({Role.ADMIN})},
        register=lambda s: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Scripted(), s))
    server = GrpcServer(settings=settings().model_copy(update={"access_log": True}), port=0, error_domain="test.crm",
                        readiness=Ready(), bindings=[binding])
    await server.start()
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traceparent = (("traceparent", f"00-{trace_id}-{span_id}-01"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            await stub.Export(Request(), metadata=bearer(Role.ADMIN) + traceparent)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Export(Request(), metadata=traceparent)  # no token: refused, and logged
            await stub.Export(Request(), metadata=bearer(Role.ADMIN))  # an untraced caller
    finally:
        await server.stop()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    completed = [line for line in lines if line["event"] == "rpc_completed"]
    assert [(line["code"], line.get("trace_id")) for line in completed] == [
        ("OK", trace_id), ("UNAUTHENTICATED", trace_id), ("OK", None)]
    first = completed[0]
    assert (first["rpc"], first["service"], first["level"]) == (EXPORT, "test", "info")
    assert first["timestamp"].endswith("Z") and isinstance(first["duration_ms"], float) and first["span_id"]


def test_a_method_without_an_access_rule_stops_the_start() -> None:
    binding = ServiceBinding(descriptor=DESCRIPTOR, policy={}, register=lambda s: None)
    with pytest.raises(ValueError, match="no access rule for Export"):
        GrpcServer(settings=settings(), port=0, error_domain="t", readiness=Ready(), bindings=[binding])


async def test_channels_retry_unavailable_only(served) -> None:
    server, servicer, _ = served
    channel = open_channel(f"127.0.0.1:{server.bound_port}", deadline_seconds=5,
                           token_source=lambda: token(Role.ADMIN))
    async with channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        servicer.failures = [errors.Unavailable("database restarting")]
        await stub.Export(Request())
        assert servicer.calls == 2
        servicer.failures = [errors.Aborted("etag")]
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Export(Request())
        assert error.value.code() == grpc.StatusCode.ABORTED
        assert servicer.calls == 3


async def test_channels_apply_the_default_deadline(served) -> None:
    server, servicer, _ = served
    servicer.delay = 1.0
    async with open_channel(f"127.0.0.1:{server.bound_port}", deadline_seconds=0.2,
                            token_source=lambda: token(Role.ADMIN)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(Request())
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_channels_forward_the_callers_token(served) -> None:
    server, servicer, _ = served
    caller = token(Role.ADMIN, subject="rm-42")
    bound = bind_principal(Principal(subject="rm-42", roles=frozenset({Role.ADMIN}), token=caller))
    try:
        async with open_channel(f"127.0.0.1:{server.bound_port}", deadline_seconds=5) as channel:
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(Request())
    finally:
        reset_principal(bound)
    assert servicer.authorization[-1] == f"Bearer {caller}"


# v1's messages are v1alpha's field for field (names, numbers, types), so v1alpha's classes
# encode a v1 client's requests; what makes a client v1 is the method it calls.
REFLECTION_METHODS = {"v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                      "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}


async def reflect(server: GrpcServer, version: str, *requests: reflection_pb2.ServerReflectionRequest
                  ) -> list[reflection_pb2.ServerReflectionResponse]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
        call = channel.stream_stream(REFLECTION_METHODS[version],
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        return [reply async for reply in call(iter(requests), timeout=10)]


def files(reply: reflection_pb2.ServerReflectionResponse) -> list[descriptor_pb2.FileDescriptorProto]:
    assert not reply.HasField("error_response"), reply.error_response
    return [descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_lists_services_and_resolves_symbols_in_both_versions(served, version: str) -> None:
    server, _, _ = served
    listed, by_symbol, itself = await reflect(
        server, version,
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=DESCRIPTOR.full_name),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"grpc.reflection.{version}.ServerReflection"))
    names = {s.name for s in listed.list_services_response.service}
    assert {DESCRIPTOR.full_name, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert DESCRIPTOR.file.name in {f.name for f in files(by_symbol)}
    [own] = [f for f in files(itself) if f.package == f"grpc.reflection.{version}"]
    assert [s.name for s in own.service] == ["ServerReflection"]


async def test_health_details_are_probed_with_the_status_and_a_failing_one_changes_no_status() -> None:
    calls = 0

    async def details() -> dict[str, object]:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("the read model's database went away")
        return {"feature_lag_seconds": 1.5 * calls}

    server = GrpcServer(settings=settings(), port=0, error_domain="test.crm", readiness=Ready(), bindings=[],
                        health_details=details)
    await server.start()
    try:
        await eventually(lambda: calls, until=lambda n: n > 3, what="probes past the failing details")
        assert server.details == {"feature_lag_seconds": 3.0}, "the last good details stay"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop()
