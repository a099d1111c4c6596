"""The aio gRPC server every service runs: the call guard, health, reflection (v1 and v1alpha),
graceful drain.

Every method a service registers runs behind the kit's call guard (authentication, access
policy, error mapping, metrics, access log; see interceptor.py), and behind OpenTelemetry's server
interceptor while traces are exported. With no exporter that interceptor steps aside: it costs
about a tenth of a short read's CPU for spans nobody receives; the guard then takes the caller's
trace context from the metadata itself, so log lines carry the trace id of a traced caller.

Health serves the overall status (`""`) and each service's own name, driven by a readiness
probe (database reachable) rather than hard-coded, and `liveness`, SERVING for as long as the
event loop answers: Kubernetes' liveness probe asks that one, so a database outage takes pods
out of rotation (readiness) without restarting every one of them. On SIGTERM the server first
reports NOT_SERVING, so load balancers stop sending new calls, then `stop(grace)` lets in-flight
calls finish before the process closes its engine and flushes telemetry.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

from crmkit.auth import TokenVerifier
from crmkit.interceptor import AccessPolicy, CallGuard
from crmkit.logs import get_logger
from crmkit.reflection import enable_reflection
from crmkit.settings import ServiceSettings
from crmkit.telemetry import traces_exported

log = get_logger("crm.server")

SERVER_OPTIONS = [
    # A second process on the same port is a mistake to report, not a load balancer.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


@dataclass(frozen=True)
class ServiceBinding:
    """One proto service a process serves: its descriptor, how to register it, who may call what."""

    descriptor: ServiceDescriptor
    register: Callable[[grpc.aio.Server], None]
    policy: AccessPolicy

    def check_policy(self) -> None:
        """Every method must have an explicit access rule: deny by default, but never by accident."""
        missing = [
            m.name for m in self.descriptor.methods
            if f"/{self.descriptor.full_name}/{m.name}" not in self.policy
        ]
        if missing:
            raise ValueError(f"{self.descriptor.full_name}: no access rule for {', '.join(missing)}")


Readiness = Callable[[], Awaitable[bool]]
# What a service adds to its health beyond SERVING / NOT_SERVING (e.g. a read model's lag); the
# standard health response has no room for it, so each probe logs it and `details` holds it.
HealthDetails = Callable[[], Awaitable[Mapping[str, object]]]

# The health name that says only "this process's event loop answers" (see the module doc).
LIVENESS = "liveness"

# Probes and API discovery are not traced: they are noise in traces, and the instrumentation's
# stream wrapper fails to detach its context on reflection's bidirectional stream.
_TRACED = filters.negate(filters.any_of(filters.service_prefix("grpc.health."),
                                        filters.service_prefix("grpc.reflection.")))


class GrpcServer:
    def __init__(
        self, *, settings: ServiceSettings, bindings: Sequence[ServiceBinding], port: int,
        error_domain: str, readiness: Readiness, health_details: HealthDetails | None = None,
    ) -> None:
        for binding in bindings:
            binding.check_policy()
        self._settings = settings
        self._bindings = bindings
        self._port = port
        self._readiness = readiness
        self._health_details = health_details
        self.details: Mapping[str, object] = {}
        verifier = TokenVerifier.from_settings(settings)
        policy = {method: roles for b in bindings for method, roles in b.policy.items()}
        self._guard = CallGuard(verifier=verifier, policy=policy, error_domain=error_domain,
                                access_log=settings.access_log)
        self.server = grpc.aio.server(interceptors=[_TracedWhileExported()], options=SERVER_OPTIONS)
        self.health = health.aio.HealthServicer()
        self._probe_task: asyncio.Task[None] | None = None
        self.bound_port = 0

    @property
    def service_names(self) -> list[str]:
        return [b.descriptor.full_name for b in self._bindings]

    async def start(self) -> int:
        for binding in self._bindings:
            binding.register(_GuardedRegistration(self.server, self._guard))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        enable_reflection(self.server, [*self.service_names, health.SERVICE_NAME])
        address = f"{self._settings.host}:{self._port}"
        credentials = _server_credentials(self._settings)
        if credentials is None:
            self.bound_port = self.server.add_insecure_port(address)
        else:
            self.bound_port = self.server.add_secure_port(address, credentials)
        await self._set_health(await self._ready())
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.server.start()
        self._probe_task = asyncio.create_task(self._probe_forever(), name="health-probe")
        log.info("server_started", port=self.bound_port, services=self.service_names)
        return self.bound_port

    async def _ready(self) -> bool:
        try:
            return await asyncio.wait_for(self._readiness(), timeout=self._settings.health_probe_seconds)
        except Exception:
            return False

    async def _refresh_details(self) -> None:
        if self._health_details is None:
            return
        try:
            self.details = dict(await asyncio.wait_for(self._health_details(),
                                                       timeout=self._settings.health_probe_seconds))
        except Exception:  # details inform; they never decide readiness
            log.exception("health_details_failed")

    async def _set_health(self, ready: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def _probe_forever(self) -> None:
        last = None
        while True:
            await asyncio.sleep(self._settings.health_probe_seconds)
            ready = await self._ready()
            await self._refresh_details()
            if ready != last:
                log.info("health_changed", serving=ready, **self.details)
                last = ready
            elif self.details:
                log.debug("health_details", serving=ready, **self.details)
            await self._set_health(ready)

    async def stop(self) -> None:
        """NOT_SERVING first, still serving for the drain while callers move away, then let
        in-flight calls finish within the grace period."""
        if self._probe_task is not None:
            self._probe_task.cancel()
        await self.health.enter_graceful_shutdown()
        log.info("server_draining", drain_seconds=self._settings.shutdown_drain_seconds,
                 grace_seconds=self._settings.shutdown_grace_seconds)
        if self._settings.shutdown_drain_seconds > 0:
            await asyncio.sleep(self._settings.shutdown_drain_seconds)
        await self.server.stop(self._settings.shutdown_grace_seconds)
        log.info("server_stopped")


class _TracedWhileExported(grpc.aio.ServerInterceptor):
    """OpenTelemetry's server interceptor for the calls made while traces are exported.

    Without an exporter it steps aside: its spans would go nowhere, and they cost about a tenth of
    a short read's CPU. Decided per call rather than at start-up, so an SDK tracer provider
    installed after the server was built (tests in process) is still honoured.
    """

    def __init__(self) -> None:
        self._otel = aio_server_interceptor(filter_=_TRACED)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if traces_exported():
            return await self._otel.intercept_service(continuation, details)
        return await continuation(details)


class _GuardedRegistration:
    """What a service's generated `add_*Servicer_to_server` registers with instead of the server:
    every handler it adds runs behind the call guard, so none reaches the server unguarded.

    Generated code adds each method twice, as a generic handler and as a "registered method".
    Only the generic handlers are kept (they serve the same methods): for every incoming call,
    grpc.aio's accept loop waits twice on one pending task per registered method, about 40 us a
    call for a service of sixty methods.
    """

    def __init__(self, server: grpc.aio.Server, guard: CallGuard) -> None:
        self._server = server
        self._guard = guard

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers([self._guard.generic(h) for h in handlers])

    def add_registered_method_handlers(self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """Left out on purpose: the generic handlers serve these methods (see the class docstring)."""


def _server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert_file:
        return None
    if not settings.tls_key_file:
        raise ValueError("CRM_TLS_KEY_FILE is required with CRM_TLS_CERT_FILE")
    with open(settings.tls_cert_file, "rb") as cert, open(settings.tls_key_file, "rb") as key:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])


async def wait_for_stop_signal() -> None:
    """Return on SIGTERM (Kubernetes) or SIGINT (Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stop_signal_received")
