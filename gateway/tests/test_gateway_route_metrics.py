"""RED metrics per route: each answered request adds to `gateway.requests` and
`gateway.request.duration` under its route template, method, status and outcome; the raw path
(with its identifiers) is never an attribute. Read through OpenTelemetry's in-memory reader."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from crmkit.auth import Role

from .conftest import auth

ROUTE = "/v1/customers/{customer_id}"


@pytest.fixture(scope="session")
def metric_reader() -> InMemoryMetricReader:
    """An in-memory reader on this process's meter provider.

    OpenTelemetry allows one global provider per process and a provider's readers are fixed when
    it is made: one with this reader is installed unless an SDK provider is already there (then
    the test is skipped). The gateway's instruments reach it through the API's proxies.
    """
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        pytest.skip("another meter provider is installed in this process")
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def total(reader: InMemoryMetricReader, name: str, **attributes: Any) -> float:
    """The counter's sum, or the histogram's count, over the points with these attributes."""
    wanted = {key.replace("__", "."): value for key, value in attributes.items()}
    return sum(point.value if hasattr(point, "value") else point.count
               for point in points(reader, name) if wanted.items() <= dict(point.attributes).items())


def route_points(**attributes: Any) -> dict[str, Any]:
    return {"http__route": ROUTE, "http__request__method": "GET", **attributes}


async def test_a_request_records_its_route_template_status_and_duration(metric_reader, gateway_with) -> None:
    customer_id = f"NO-SUCH-{uuid.uuid4().hex[:8]}"
    not_found = route_points(http__response__status_code=404, outcome="client_error")
    refused = route_points(http__response__status_code=401, outcome="client_error")
    before = (total(metric_reader, "gateway.requests", **not_found),
              total(metric_reader, "gateway.request.duration", **not_found),
              total(metric_reader, "gateway.requests", **refused))
    async with gateway_with() as (_, client):
        assert (await client.get(f"/v1/customers/{customer_id}", headers=auth(Role.ADMIN))).status_code == 404
        assert (await client.get(f"/v1/customers/{customer_id}")).status_code == 401
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
    after = (total(metric_reader, "gateway.requests", **not_found),
             total(metric_reader, "gateway.request.duration", **not_found),
             total(metric_reader, "gateway.requests", **refused))
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 1)
    [duration] = [p for p in points(metric_reader, "gateway.request.duration")
                  if p.attributes["http.route"] == ROUTE and p.attributes["http.response.status_code"] == 404]
    assert duration.sum > 0  # milliseconds
    routes = {p.attributes["http.route"] for p in points(metric_reader, "gateway.requests")}
    assert "unmatched" in routes  # the unknown path, under no template of its own
    assert not [r for r in routes if customer_id in r or "/no/such" in r or r == "/healthz"]
