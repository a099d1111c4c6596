"""The one server interceptor every service runs behind OpenTelemetry's.

Per call, in order: authenticate the JWT in `authorization` metadata; authorise the method
against the service's access policy (deny by default); bind principal and `rpc` for the
handler and the logs; run the handler; map a DomainError to its status with google.rpc
details; map anything else to INTERNAL without leaking internals; record RED metrics.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
import structlog
from grpc_status import rpc_status
from opentelemetry import metrics, trace

from crmkit import attributes
from crmkit.auth import Principal, Role, TokenVerifier, bind_principal, reset_principal
from crmkit.errors import DomainError, PermissionDenied, internal_status, to_status
from crmkit.logs import get_logger

log = get_logger("crm.rpc")

# Methods anyone may call: probes and API discovery carry no customer data.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

AccessPolicy = Mapping[str, frozenset[Role]]
"""Full method name (`/crm.profile.v1.ProfileService/GetCustomer`) -> roles allowed to call it."""


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *, verifier: TokenVerifier, policy: AccessPolicy, error_domain: str,
                 access_log: bool = True) -> None:
        self._verifier = verifier
        self._access_log = access_log
        self._policy = policy
        self._domain = error_domain
        meter = metrics.get_meter("crmkit.server")
        self._calls = meter.create_counter("rpc.server.calls", description="RPCs served, by method and code")
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="RPC latency by method and code"
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        metadata = dict(details.invocation_metadata or ())  # type: ignore[attr-defined]
        guard = _CallGuard(self, method, metadata.get("authorization"))
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                guard.unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                guard.stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                guard.unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            guard.stream(handler.stream_stream), handler.request_deserializer, handler.response_serializer)


class _CallGuard:
    """Wraps one call's behaviour with authentication, authorisation and error mapping."""

    def __init__(self, owner: CallInterceptor, method: str, authorization: str | None) -> None:
        self._owner = owner
        self._method = method
        self._authorization = authorization

    def _authorise(self) -> Principal:
        principal = self._owner._verifier.verify_bearer(self._authorization)
        allowed = self._owner._policy.get(self._method)
        if allowed is None or not principal.has_any(allowed):
            raise PermissionDenied(
                f"role not allowed to call {self._method.rsplit('/', 1)[-1]}", reason="ROLE_NOT_ALLOWED")
        span = trace.get_current_span()
        span.set_attribute(attributes.RPC_PRINCIPAL, principal.subject)
        span.set_attribute(attributes.RPC_ROLES, sorted(r.value for r in principal.roles))
        return principal

    def unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            structlog.contextvars.bind_contextvars(rpc=self._method)
            token = None
            try:
                token = bind_principal(self._authorise())
                return await behaviour(request, context)
            except Exception as exc:
                code = _code_of(exc)
                await self._abort(exc, context)
            finally:
                if token is not None:
                    reset_principal(token)
                self._record(code, started)

        return guarded

    def stream(self, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            structlog.contextvars.bind_contextvars(rpc=self._method)
            token = None
            try:
                token = bind_principal(self._authorise())
                async for response in behaviour(request, context):
                    yield response
            except Exception as exc:
                code = _code_of(exc)
                await self._abort(exc, context)
            finally:
                if token is not None:
                    reset_principal(token)
                self._record(code, started)

        return guarded

    async def _abort(self, exc: Exception, context: grpc.aio.ServicerContext) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        if isinstance(exc, NotImplementedError):
            # The generated base servicer's answer for an RPC a service does not serve yet.
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self._method} is not implemented yet")
        if isinstance(exc, DomainError):
            status = to_status(exc, domain=self._owner._domain)
            log.info("rpc_failed", code=exc.code.name, reason=exc.reason)
        else:
            status = internal_status(domain=self._owner._domain)
            # Frames only: an exception's message may quote data (SQL parameters, field values).
            log.error("rpc_crashed", error_type=type(exc).__name__,
                      stack="".join(traceback.format_tb(exc.__traceback__)))
        grpc_status = rpc_status.to_status(status)
        await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _record(self, code: grpc.StatusCode, started: float) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        labels = {"rpc.method": self._method, "rpc.grpc.status_code": code.name}
        self._owner._calls.add(1, labels)
        self._owner._duration.record(elapsed_ms, labels)
        if self._owner._access_log:
            log.info("rpc_completed", code=code.name, duration_ms=round(elapsed_ms, 2))


def _code_of(exc: Exception) -> grpc.StatusCode:
    if isinstance(exc, DomainError):
        return exc.code
    if isinstance(exc, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL
