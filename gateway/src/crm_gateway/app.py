"""Wiring of the gateway: `create_app(settings)` builds the FastAPI application. No logic here.

Start-up (the lifespan) opens one channel per peer service; shutdown closes them and then
flushes telemetry, in that order. Nothing is made at import time, so tests build as many
applications as they like, each with its own settings.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

import grpc
from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway import body_limit, problems
from crm_gateway.body_limit import BodyLimit, BodyTooLarge
from crm_gateway.draining import Drain
from crm_gateway.limits import LimitClass, RateLimited, RateLimits, limit_class_of
from crm_gateway.peers import Peers
from crm_gateway.route_metrics import RouteMetrics
from crm_gateway.routes import (
    campaigns,
    care_tasks,
    complaints,
    consents,
    customer360,
    customers,
    docs,
    engagement,
    health,
    loyalty,
    models,
    segments,
)
from crm_gateway.routes.common import IDEMPOTENCY_HEADER
from crm_gateway.settings import GatewaySettings
from crmkit.auth import TokenVerifier
from crmkit.errors import DomainError
from crmkit.logs import get_logger
from crmkit.telemetry import Telemetry

log = get_logger("crm.gateway")

DESCRIPTION = """\
HTTP/JSON door of the CRM platform for channel applications (branch counter, mobile and web
banking, WeChat, call centre).

Every `/v1` route needs `Authorization: Bearer <jwt>` (see the `bearerAuth` scheme); each lists
the roles it admits. Bodies use the proto3 JSON mapping of the platform's contracts with proto
field names. Errors are RFC 9457 `application/problem+json` documents.
"""
BODY_LIMIT_TEXT = """
Request bodies are limited to {max_bytes} bytes: a larger one is refused with 413 (`BODY_TOO_LARGE`)
before it is read, whether it declares its `Content-Length` or is sent in chunks.
"""
RATE_LIMIT_TEXT = """
Rate limits: a token bucket per client (the token's subject) and route. Reads (GET) allow {read};
writes allow {write}. Over the limit the answer is 429 (`RATE_LIMITED`) with `Retry-After` in
seconds. Each operation states its limit in `x-rate-limit`. Failed authentication (401) is limited per
client address to {auth_failures}; beyond it a bad token is answered 429 instead of 401.
"""
# Probes are polled every few seconds: tracing or logging them would drown the real requests.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
UNTRACED_URLS = ",".join(f"{path}$" for path in sorted(PROBE_PATHS))  # matched against full URLs


def create_app(settings: GatewaySettings, *, telemetry: Telemetry | None = None, drain: Drain | None = None,
               ) -> FastAPI:
    """The gateway for these settings; `telemetry`, when given, is flushed last on shutdown;
    `drain`, when given, is the server's (the readiness probe answers 503 once it has started).

    (uvicorn re-raises SIGTERM once the lifespan has ended, so nothing after `serve()` runs:
    the lifespan is the last place to flush spans.)
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.peers = Peers.open(settings)
        log.info("gateway_started", peers=sorted(settings.peer_targets))
        try:
            yield
        finally:
            try:
                await app.state.peers.close()
                del app.state.peers
                await app.state.rate_limits.close()
                log.info("gateway_stopped")
            finally:
                if telemetry is not None:
                    await asyncio.to_thread(telemetry.shutdown)

    app = FastAPI(
        title="CRM gateway", version=_version(), lifespan=lifespan,
        description=DESCRIPTION + BODY_LIMIT_TEXT.format(max_bytes=settings.max_body_bytes) + _limits_text(settings),
        # FastAPI's own pages load scripts from a public CDN: routes/docs.py serves packaged ones.
        docs_url=None, redoc_url=None,
    )
    app.state.drain = drain or Drain()
    app.state.settings = settings
    app.state.verifier = TokenVerifier.from_settings(settings)
    app.state.rate_limits = RateLimits.from_settings(settings)
    app.include_router(health.router)
    for routes in (customers, customer360, consents, complaints, segments, models, campaigns, engagement, care_tasks,
                   loyalty):
        app.include_router(routes.router)
    if settings.docs_page_enabled:
        app.include_router(docs.router)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestBoundary)  # added last, so outermost: it logs the 413s too
    app.openapi = lambda: _openapi_document(app)  # type: ignore[method-assign]  # FastAPI documents replacing app.openapi
    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"])
    return app


def _limits_text(settings: GatewaySettings) -> str:
    if not settings.rate_limits_enabled:
        return "\nRate limits are off in this deployment.\n"
    limits = RateLimits.from_settings(settings.model_copy(update={"redis_url": ""})).limits
    auth_failures = f"{settings.rate_limit_auth_failure_per_second:g} per second, bursts of up to " \
                    f"{settings.rate_limit_auth_failure_burst}"
    return RATE_LIMIT_TEXT.format(read=limits[LimitClass.READ].describe(), write=limits[LimitClass.WRITE].describe(),
                                  auth_failures=auth_failures)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(grpc.aio.AioRpcError)
    async def peer_failed(request: Request, error: grpc.aio.AioRpcError) -> Response:
        # A POST's `request_id` is its Idempotency-Key header (routes/common.py): named as sent.
        renames = {"request_id": IDEMPOTENCY_HEADER} if request.method == "POST" else None
        response = problems.from_rpc_error(error, renames=renames)
        if response.status_code >= 500:
            route = request.scope.get("route")
            log.warning("peer_call_failed", grpc_code=error.code().name, status=response.status_code,
                        route=getattr(route, "path", None))
        return response

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, error: RateLimited) -> Response:
        return problems.from_domain_error(error, headers={"Retry-After": str(error.retry_after)})

    @app.exception_handler(DomainError)
    async def refused(request: Request, error: DomainError) -> Response:
        return problems.from_domain_error(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        body_name = _body_name(request)
        invalid = [(_param_name(e, body_name), e["msg"]) for e in error.errors()]
        detail = "invalid request: " + "; ".join(f"{name}: {why}" for name, why in invalid)
        return problems.problem(problems.INVALID_ARGUMENT, detail, invalid_params=invalid,
                                reason="INVALID_ARGUMENT")

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, error: BodyTooLarge) -> Response:
        return body_limit.too_large(error.max_bytes)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        detail = error.detail if isinstance(error.detail, str) else ""
        return problems.from_http_status(error.status_code, detail, headers=error.headers)


def _body_name(request: Request) -> str:
    """The name a lone, non-embedded body parameter goes by (`customer`), for naming its fields."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    params = getattr(dependant, "body_params", [])
    if len(params) == 1 and not getattr(params[0].field_info, "embed", False):
        return str(params[0].alias)
    return ""


def _param_name(error: Any, body_name: str) -> str:
    """`("body", "id_document", "number")` -> `customer.id_document.number`; a header by its name."""
    where, *path = error["loc"]
    if where != "body":  # a query, path or header parameter: `status[0]` for a list's item
        first, *rest = path or [where]
        return str(first) + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)
    if error["type"] == "json_invalid":  # the body is not JSON; the position is not a field
        return body_name or "body"
    steps = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return (body_name + steps).lstrip(".") or "body"


class RequestBoundary:
    """One JSON log line and the RED metrics (route_metrics.py) per request, and a bare 500 problem
    for a bug.

    The line (`request_completed`: method, route template, status, milliseconds) is written
    inside the request's span, so it carries the trace id that joins it to the services' lines;
    it names the route template, never the path or query, which can quote identifiers. Probes
    are not logged: they come every few seconds and say nothing about the traffic.

    A bug is logged with its exception type and frames only: Starlette would re-raise it to the
    server, which logs the message, and messages can quote data (a KeyError with a value).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = RouteMetrics()  # RED per route template (route_metrics.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception as exc:  # the last line of defence: every bug becomes a bare 500
            log.error("request_crashed", error_type=type(exc).__name__,
                      stack="".join(traceback.format_tb(exc.__traceback__)))
            if not status:
                await problems.problem(problems.INTERNAL, "")(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            duration_ms = (time.perf_counter() - started) * 1000
            self.metrics.record(route=getattr(route, "path", None), method=scope["method"], status=status,
                                duration_ms=duration_ms)
            log.info("request_completed", method=scope["method"], route=getattr(route, "path", None),
                     status=status, duration_ms=round(duration_ms, 2))


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error responses filed as `application/problem+json` and the
    default 422 validation response removed (bad input is a 400 problem here)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
    problem_schema = {"$ref": "#/components/schemas/Problem"}
    limited = _rate_limited_operations(app)
    limits: RateLimits = app.state.rate_limits
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for response in responses.values():
                content = response.get("content", {})
                if content.get("application/json", {}).get("schema") == problem_schema:
                    content[problems.MEDIA_TYPE] = content.pop("application/json")
            limit_class = limited.get((path, method.upper()))
            if limit_class is not None and limits.enabled:
                limit = limits.limit_of(limit_class)
                operation["x-rate-limit"] = {"class": limit_class.value, **limit.document()}
                if "429" in responses:
                    responses["429"]["description"] += f" Limit of this route: {limit.describe()}."
                    responses["429"]["headers"] = {"Retry-After": {
                        "description": "Whole seconds until the client may call this route again.",
                        "schema": {"type": "integer", "minimum": 1}}}
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def _rate_limited_operations(app: FastAPI) -> dict[tuple[str, str], LimitClass]:
    """(path, METHOD) -> the limit class of each operation guarded by `require_roles`."""
    found: dict[tuple[str, str], LimitClass] = {}
    for context in routing.iter_route_contexts(app.routes):  # included routers, with their prefixes
        route = getattr(context, "original_route", context)
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        pending = list(dependant.dependencies)
        while pending:
            dependency = pending.pop()
            call = dependency.call
            if getattr(call, "rate_limited", False):
                for method in getattr(route, "methods", ()):
                    path = getattr(context, "path", "") or getattr(route, "path", "")
                    found[(path, method)] = call.limit_class or limit_class_of(method)
            pending.extend(dependency.dependencies)
    return found


def _version() -> str:
    try:
        return metadata.version("crm-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"
