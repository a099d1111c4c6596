"""`crm customers show ID` against real profile, segment, feedback and campaign processes: one view
of the customer with holdings and consents, classification, open complaints and dispatches; with
one service pointed at a dead port its part is "unavailable", the view is marked partial and the
command still exits 0; an unknown customer exits 1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from crm_cli.main import cli
from crm_cli.synthetic_bank import generate
from crmkit.testing import TEST_JWT_SECRET, free_port

pytestmark = pytest.mark.slow
SEED = 71


def _json(result: Result) -> dict:  # type: ignore[type-arg]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _crm(ports: dict[str, int]) -> Callable[..., Result]:
    env = {f"CRM_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env |= {"CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_TOKEN": None, "COLUMNS": "250"}  # type: ignore[dict-item]

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return invoke


@pytest.fixture
def ports(profile_port: int, segment_port: int, feedback_port: int, campaign_port: int) -> dict[str, int]:
    return {"profile": profile_port, "segment": segment_port, "feedback": feedback_port, "campaign": campaign_port}


def test_a_customers_360_view_and_a_partial_one_when_a_service_is_down(ports: dict[str, int]) -> None:
    crm = _crm(ports)
    assert _json(crm("demo", "load", "--customers", "6", "--seed", str(SEED), "--output", "json"))["failures"] == []
    who = next(c for c in generate(6, seed=SEED) if c.holdings)
    customer_id = who.customer.customer_id
    filed = _json(crm("complaints", "file", customer_id, "Card blocked abroad", "--channel", "branch",
                      "--output", "json"))

    view = _json(crm("customers", "show", customer_id, "--output", "json"))
    assert view["customer"] == f"customers/{customer_id}"
    assert view["partial"] is False, {s: view[s].get("detail") for s in view["unavailable"]}
    assert {view[s]["status"] for s in ("profile", "segment", "feedback", "campaign")} == {"ok"}
    assert view["profile"]["customer"]["customer_id"] == customer_id
    assert len(view["profile"]["holdings"]) == min(len(who.holdings), 20)
    assert [c["complaint_id"] for c in view["feedback"]["open_complaints"]] == [filed["complaint_id"]]
    assert view["campaign"]["dispatches"] == []

    table = crm("customers", "show", customer_id)
    assert table.exit_code == 0, table.output
    assert filed["complaint_id"] in table.stdout and "holding" in table.stdout and "partial" not in table.stdout

    # Feedback is not there: its part is unavailable within the deadline, the rest still shows.
    down = _crm({**ports, "feedback": free_port()})
    started = time.monotonic()
    partial = _json(down("customers", "show", customer_id, "--deadline", "1", "--output", "json"))
    assert time.monotonic() - started < 10
    assert partial["partial"] is True and partial["unavailable"] == ["feedback"]
    assert partial["feedback"]["status"] == "unavailable" and "open_complaints" not in partial["feedback"]
    assert partial["profile"]["status"] == "ok" and partial["profile"]["customer"]["customer_id"] == customer_id
    shown = down("customers", "show", customer_id, "--deadline", "1")
    assert shown.exit_code == 0 and "partial: feedback missing" in shown.stdout and "unavailable" in shown.stdout


def test_an_unknown_customer_fails_and_bad_arguments_exit_2(ports: dict[str, int]) -> None:
    crm = _crm(ports)
    missing = crm("customers", "show", "NO-SUCH-CUSTOMER-1")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
    assert crm("customers", "show", "X", "--deadline", "0").exit_code == 2
    assert "Example" in crm("customers", "show", "--help").stdout
