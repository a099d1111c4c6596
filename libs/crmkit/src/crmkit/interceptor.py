"""The guard every service method runs behind (inside OpenTelemetry's server interceptor when
traces are exported).

Per call, in order: authenticate the JWT in `authorization` metadata; authorise the method
against the service's access policy (deny by default); bind principal and `rpc` for the
handler and the logs; run the handler; map a DomainError to its status with google.rpc
details; map anything else to INTERNAL without leaking internals; record RED metrics and the
access log line.

The guard wraps each method's handler once, when the service registers it (`CallGuard.generic`),
rather than per call as a grpc.aio interceptor would (a new method handler, closures and a
metadata dict for every call): everything it knows about a method (its allowed roles, its
metric labels, its log line) is fixed at start-up.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import Token
from typing import Any

import grpc
import structlog
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace

from crmkit import attributes
from crmkit.auth import (
    Principal,
    Role,
    TokenVerifier,
    bind_method,
    bind_principal,
    reset_method,
    reset_principal,
)
from crmkit.errors import DomainError, PermissionDenied, Unimplemented, internal_status, to_status
from crmkit.logs import RpcLog, get_logger
from crmkit.telemetry import traces_exported

log = get_logger("crm.rpc")

# Methods anyone may call: probes and API discovery carry no customer data.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

AccessPolicy = Mapping[str, frozenset[Role]]
"""Full method name (`/crm.profile.v1.ProfileService/GetCustomer`) -> roles allowed to call it."""

_OK = grpc.StatusCode.OK
# W3C trace context headers, as gRPC metadata keys (always lower case).
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


class CallGuard:
    """Authentication, authorisation, error mapping, metrics and access log for every method.

    When traces are not exported, OpenTelemetry's server interceptor steps aside (server.py); the
    guard then takes the caller's W3C trace context from the metadata itself, so that log lines
    carry a traced caller's trace id.
    """

    def __init__(self, *, verifier: TokenVerifier, policy: AccessPolicy, error_domain: str,
                 access_log: bool = True) -> None:
        self._verifier = verifier
        self._policy = policy
        self._domain = error_domain
        self._access_log = access_log
        meter = metrics.get_meter("crmkit.server")
        self._calls = meter.create_counter("rpc.server.calls", description="RPCs served, by method and code")
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="RPC latency by method and code"
        )

    def generic(self, inner: grpc.GenericRpcHandler) -> grpc.GenericRpcHandler:
        """A generic handler serving `inner`'s methods behind this guard."""
        return _GuardedHandlers(self, inner)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` behind this guard; public methods (health, reflection) as they are."""
        if method.startswith(PUBLIC_PREFIXES):
            return handler
        guarded = _GuardedMethod(self, method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                guarded.unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                guarded.stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                guarded.unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            guarded.stream(handler.stream_stream), handler.request_deserializer, handler.response_serializer)


class _GuardedHandlers(grpc.GenericRpcHandler):
    """Looks a method up in the service's own handler and guards it, once per method."""

    def __init__(self, guard: CallGuard, inner: grpc.GenericRpcHandler) -> None:
        self._guard = guard
        self._inner = inner
        # Bounded by the service's methods: only names `inner` serves are remembered.
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            guarded = self._guarded[method] = self._guard.wrap(method, handler)
        return guarded


class _GuardedMethod:
    """One method's guard: what is fixed per method is worked out here, once."""

    def __init__(self, guard: CallGuard, method: str) -> None:
        self._guard = guard
        self._method = method
        self._allowed = guard._policy.get(method)
        self._denied = f"role not allowed to call {method.rsplit('/', 1)[-1]}"
        self._labels: dict[grpc.StatusCode, dict[str, str]] = {}
        self._log = RpcLog(method) if guard._access_log else None

    def _read_metadata(self, context: grpc.aio.ServicerContext
                       ) -> tuple[str | None, Token[otel_context.Context] | None]:
        """The `authorization` value, and the token of the caller's trace context if the guard
        attached it (OpenTelemetry's interceptor does when traces are exported)."""
        authorization = None
        carrier: dict[str, str] | None = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value
            elif key in _TRACE_HEADERS:
                (carrier := carrier or {})[key] = value
        if carrier is None or traces_exported():
            return authorization, None
        return authorization, otel_context.attach(propagate.extract(carrier))

    def _authorise(self, authorization: str | None) -> Principal:
        principal = self._guard._verifier.verify_bearer(authorization)
        if self._allowed is None or principal.roles.isdisjoint(self._allowed):
            raise PermissionDenied(self._denied, reason="ROLE_NOT_ALLOWED")
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(attributes.RPC_PRINCIPAL, principal.subject)
            span.set_attribute(attributes.RPC_ROLES, sorted(r.value for r in principal.roles))
        return principal

    def unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = _OK
            structlog.contextvars.bind_contextvars(rpc=self._method)
            method_token = bind_method(self._method)  # audit records name the method they were made in
            principal_token = trace_token = None
            try:
                authorization, trace_token = self._read_metadata(context)
                principal_token = bind_principal(self._authorise(authorization))
                return await behaviour(request, context)
            except Exception as exc:
                code = _code_of(exc)
                await self._abort(exc, context)
            finally:
                if principal_token is not None:
                    reset_principal(principal_token)
                reset_method(method_token)
                self._record(code, started)
                if trace_token is not None:
                    otel_context.detach(trace_token)

        return guarded

    def stream(self, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            code = _OK
            structlog.contextvars.bind_contextvars(rpc=self._method)
            method_token = bind_method(self._method)  # audit records name the method they were made in
            principal_token = trace_token = None
            try:
                authorization, trace_token = self._read_metadata(context)
                principal_token = bind_principal(self._authorise(authorization))
                async for response in behaviour(request, context):
                    yield response
            except Exception as exc:
                code = _code_of(exc)
                await self._abort(exc, context)
            finally:
                if principal_token is not None:
                    reset_principal(principal_token)
                reset_method(method_token)
                self._record(code, started)
                if trace_token is not None:
                    otel_context.detach(trace_token)

        return guarded

    async def _abort(self, exc: Exception, context: grpc.aio.ServicerContext) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        if isinstance(exc, NotImplementedError):
            # The generated base servicer's answer for an RPC a service does not serve yet; as a
            # domain error it carries ErrorInfo like every other failure.
            exc = Unimplemented(f"{self._method} is not implemented yet", reason="NOT_IMPLEMENTED")
        if isinstance(exc, DomainError):
            status = to_status(exc, domain=self._guard._domain)
            log.info("rpc_failed", code=exc.code.name, reason=exc.reason)
        else:
            status = internal_status(domain=self._guard._domain)
            # Frames only: an exception's message may quote data (SQL parameters, field values).
            log.error("rpc_crashed", error_type=type(exc).__name__,
                      stack="".join(traceback.format_tb(exc.__traceback__)))
        grpc_status = rpc_status.to_status(status)
        await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _record(self, code: grpc.StatusCode, started: float) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        labels = self._labels.get(code)
        if labels is None:
            labels = self._labels[code] = {"rpc.method": self._method, "rpc.grpc.status_code": code.name}
        self._guard._calls.add(1, labels)
        self._guard._duration.record(elapsed_ms, labels)
        if self._log is not None:
            self._log.completed(code.name, elapsed_ms)


def _code_of(exc: Exception) -> grpc.StatusCode:
    if isinstance(exc, DomainError):
        return exc.code
    if isinstance(exc, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL
