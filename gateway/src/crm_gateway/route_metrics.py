"""RED metrics per route: rate, errors and duration of the gateway's requests, through OpenTelemetry.

Two instruments, recorded once per request by the request boundary (app.py), exported with the
process's meter provider (crmkit.telemetry: OTLP when `OTEL_*` asks for metrics, nothing otherwise):

- `gateway.requests` (counter): requests answered. Rate is its rate; errors are its points with
  `outcome` = `server_error` (5xx: a defect or a peer down) or `client_error` (4xx, 429 included).
- `gateway.request.duration` (histogram, ms): time from the request's start to the end of its answer.

Attributes: `http.route` (the route template, `/v1/customers/{customer_id}`, never the path, which
quotes identifiers; `unmatched` for a request no route took, such as a 404 for an unknown path or
a 413 refused before routing), `http.request.method` (`_OTHER` for a method outside HTTP's own, so
that a client cannot grow the series), `http.response.status_code` and `outcome`. Probes
(`/healthz`, `/readyz`) are not recorded: they say nothing about the traffic.
"""

from __future__ import annotations

from opentelemetry import metrics

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def outcome_of(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


class RouteMetrics:
    """The two instruments; `record` once per answered request."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("crm_gateway", meter_provider=meter_provider)
        self._requests = meter.create_counter(
            "gateway.requests", unit="{request}", description="Requests answered, by route template, method and status")
        self._duration = meter.create_histogram(
            "gateway.request.duration", unit="ms", description="Request duration by route template, method and status")

    def record(self, *, route: str | None, method: str, status: int, duration_ms: float) -> None:
        attributes: dict[str, str | int] = {
            "http.route": route or UNMATCHED,
            "http.request.method": method if method in METHODS else "_OTHER",
            "http.response.status_code": status,
            "outcome": outcome_of(status),
        }
        self._requests.add(1, attributes)
        self._duration.record(duration_ms, attributes)
