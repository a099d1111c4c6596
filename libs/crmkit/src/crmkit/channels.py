"""Client channels to peer services: made once per process, with deadlines, retries, keepalive.

Retries happen only on UNAVAILABLE (the call never reached a server that acted on it), at most
three attempts with backoff, and every call gets the default deadline unless it sets its own.
The caller's bearer token and the trace context travel with every call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from crmkit.auth import _current

RETRY_SERVICE_CONFIG = json.dumps({
    # round_robin skips a server whose standard health service says NOT_SERVING (a draining pod)
    "healthCheckConfig": {"serviceName": ""},
    "methodConfig": [{
        "name": [{}],
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoff": "0.05s",
            "maxBackoff": "0.5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})

CHANNEL_OPTIONS = [
    ("grpc.service_config", RETRY_SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Kubernetes headless Services resolve to every pod: spread calls across them.
    ("grpc.lb_policy_name", "round_robin"),
]


class _CallDefaults:
    """Adds the default deadline and the caller's identity to calls that do not carry them."""

    def __init__(self, deadline_seconds: float, token_source: Callable[[], str | None]) -> None:
        self._deadline = deadline_seconds
        self._token_source = token_source

    def _details(self, details: grpc.aio.ClientCallDetails, streaming: bool) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if "authorization" not in metadata:
            token = self._token_source()
            if token:
                metadata["authorization"] = f"Bearer {token}"
        # A server-streaming call such as WatchChanges is long-lived by design: no default deadline.
        timeout = details.timeout if details.timeout is not None or streaming else self._deadline
        return grpc.aio.ClientCallDetails(details.method, timeout, metadata, details.credentials,
                                          details.wait_for_ready)


# grpc.aio files each interceptor under the FIRST call kind it implements, so each kind needs
# its own object.
class _UnaryUnaryDefaults(_CallDefaults, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, False), request)


class _UnaryStreamDefaults(_CallDefaults, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, True), request)


class _StreamUnaryDefaults(_CallDefaults, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details, False), request_iterator)


def forwarded_token() -> str | None:
    """The token of the call being served, so a peer sees the same end user."""
    principal = _current.get()
    return principal.token if principal is not None else None


def open_channel(
    target: str, *, deadline_seconds: float, token_source: Callable[[], str | None] = forwarded_token,
    tls_ca_file: str | None = None,
) -> grpc.aio.Channel:
    interceptors = [*aio_client_interceptors(),
                    *(kind(deadline_seconds, token_source)
                      for kind in (_UnaryUnaryDefaults, _UnaryStreamDefaults, _StreamUnaryDefaults))]
    if tls_ca_file:
        with open(tls_ca_file, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)
