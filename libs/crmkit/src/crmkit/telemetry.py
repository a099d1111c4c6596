"""OpenTelemetry traces and metrics, configured once from the standard `OTEL_*` variables.

Exporters: OTLP (gRPC) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal variant) is set and
`OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` are not `none`; otherwise no SDK provider is
installed and the API's no-op tracer costs next to nothing. With traces on, asyncpg is
instrumented so every SQL statement, COPY included, is a child span of the RPC that ran it; gRPC interceptors are passed
explicitly to servers and channels (see `server.py` and `channels.py`); the server's steps aside unless traces are
exported (`traces_exported`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from crmkit.logs import get_logger

log = get_logger("crm.telemetry")


@dataclass
class Telemetry:
    """Handles to flush and close on shutdown; `enabled` is False when nothing is exported."""

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def traces_exported() -> bool:
    """Whether spans go anywhere: an SDK tracer provider is installed (by `setup_telemetry` when an
    endpoint is configured, or by a test). Without one, the API's tracer makes no spans."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def _wanted(signal: str) -> bool:
    exporter = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower()
    endpoint = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return exporter != "none" and bool(endpoint)


def setup_telemetry(*, service_name: str) -> Telemetry:
    """Install the SDK providers when an OTLP endpoint is configured; instrument asyncpg."""
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    try:
        if _wanted("traces"):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(tracer_provider)
        if _wanted("metrics"):
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            meter_provider = MeterProvider(
                resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
            )
            metrics.set_meter_provider(meter_provider)
    except Exception:  # a broken exporter must not take the service down, but must be loud
        log.exception("telemetry_setup_failed")
    # Database spans only when traces go somewhere: the instrumentation costs 10-15 % of a
    # short query's CPU even with the no-op tracer.
    if tracer_provider is not None and not AsyncPGInstrumentor().is_instrumented_by_opentelemetry:
        AsyncPGInstrumentor().instrument()
    log.info("telemetry_configured", traces=tracer_provider is not None, metrics=meter_provider is not None)
    return Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
