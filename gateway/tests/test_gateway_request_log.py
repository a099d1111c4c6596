"""One JSON log line per request with the trace id; a bug is a bare 500 with a clean log line."""

from __future__ import annotations

import json
import secrets

import httpx

from crm_gateway.app import create_app
from crm_gateway.settings import GatewaySettings
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET


def log_lines(output: str, event: str) -> list[dict]:  # type: ignore[type-arg]
    lines = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            lines.append(record)
    return lines


async def test_each_request_logs_one_line_with_its_route_template_and_trace(
    client, headers, create_customer, new_customer, span_recorder, capsys,
) -> None:
    sent = new_customer()
    assert (await create_customer(sent)).status_code == 201
    trace_id = secrets.randbits(128) | 1
    capsys.readouterr()

    response = await client.get(f"/v1/customers/{sent['customer_id']}", headers={
        **headers(Role.CHANNEL_APP), "traceparent": f"00-{trace_id:032x}-{secrets.randbits(64) | 1:016x}-01"})
    assert response.status_code == 200

    output = capsys.readouterr().out
    [line] = log_lines(output, "request_completed")
    assert line["method"] == "GET"
    assert line["route"] == "/v1/customers/{customer_id}"
    assert line["status"] == 200
    assert line["trace_id"] == f"{trace_id:032x}"
    assert line["service"]
    assert sent["customer_id"] not in output
    for personal in ("Li Wei", "13812345678", "li.wei@example.com", "11010519491231002X"):
        assert personal not in output


async def test_probes_are_not_logged(client, capsys) -> None:
    capsys.readouterr()
    assert (await client.get("/healthz")).status_code == 200
    assert log_lines(capsys.readouterr().out, "request_completed") == []


async def test_bug_is_a_500_problem_without_internals(capsys) -> None:
    app = create_app(GatewaySettings(env="test", jwt_secret=TEST_JWT_SECRET))
    personal = " ".join(["Li", "Wei", "+86" + "13812345678"])  # not spelled out in the traced source line

    async def broken() -> None:
        raise KeyError(personal)

    app.add_api_route("/broken", broken)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        response = await client.get("/broken")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(":internal")
    assert "Li Wei" not in json.dumps(problem)
    output = capsys.readouterr().out
    [crash] = log_lines(output, "request_crashed")
    assert crash["error_type"] == "KeyError"
    assert [line["status"] for line in log_lines(output, "request_completed")] == [500]
    assert "Li Wei" not in output and "13812345678" not in output
