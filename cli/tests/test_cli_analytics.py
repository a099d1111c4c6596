"""`crm tiers`, `crm clusters` and `crm clv` against real profile and segment processes: the demo
bank reaches segment's read model through profile's feed, is classified into value tiers and
clustered; bad input is refused naming the field and rule (exit 1) or as a bad argument (exit 2)."""

from __future__ import annotations

import json
import time

import pytest

from crm_cli import demo_data

pytestmark = pytest.mark.slow
SEED = 13  # its own bank: other tests count what their seed creates
CUSTOMERS = 30


def _json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def bank(crm_platform):  # type: ignore[no-untyped-def]
    """The demo bank, once every customer reached segment's read model."""
    loaded = _json(crm_platform("demo", "load", "--customers", str(CUSTOMERS), "--seed", str(SEED),
                                "--output", "json"))
    assert loaded["failures"] == []
    deadline = time.monotonic() + 60
    while _json(crm_platform("segments", "preview", "true", "--output", "json"))["total_customers"] < CUSTOMERS:
        assert time.monotonic() < deadline, "the demo bank did not reach segment's read model"
        time.sleep(0.5)
    return crm_platform


def test_value_tiers_are_listed_and_a_customer_has_one(bank) -> None:  # type: ignore[no-untyped-def]
    tiers = _json(bank("tiers", "list", "--output", "json"))
    assert [t["rank"] for t in tiers] == [1, 2, 3, 4, 5]
    names = {t["tier"] for t in tiers}
    table = bank("tiers", "list")
    assert table.exit_code == 0 and tiers[0]["display_name"] in table.stdout

    customer = demo_data.customer_id(1, SEED)
    deadline = time.monotonic() + 60
    while True:  # each change applied from profile's feed reclassifies its customer
        shown = bank("tiers", "show", customer, "--output", "json")
        if (shown.exit_code == 0 and json.loads(shown.stdout).get("value_tier")) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    classification = _json(shown)
    assert classification["customer"] == f"customers/{customer}"
    assert classification["value_tier"] in names
    readable = bank("tiers", "show", customer)
    assert readable.exit_code == 0 and "value_tier" in readable.stdout

    unknown = bank("tiers", "show", "NO-SUCH-CUSTOMER")
    assert unknown.exit_code == 1 and "NOT_FOUND" in unknown.output


def test_customers_are_clustered_and_the_run_read_back(bank) -> None:  # type: ignore[no-untyped-def]
    run = _json(bank("clusters", "run", "--feature", "aum", "--feature", "age", "--k", "2", "--seed", "7",
                     "--impute", "--output", "json"))
    assert run["state"] == "OPERATION_STATE_SUCCEEDED" and run["cluster_count"] == 2
    clusters = run["clusters"]
    assert len(clusters) == 2
    assert sum(int(c["size"]) for c in clusters) == int(run["customer_count"]) >= CUSTOMERS
    assert abs(sum(c["share"] for c in clusters) - 1) < 1e-6
    assert {p["feature"] for p in clusters[0]["feature_profiles"]} == {"aum", "age"}

    table = bank("clusters", "show", run["name"].removeprefix("clusteringRuns/"))
    assert table.exit_code == 0, table.output
    assert "2 clusters" in table.stdout and "aum" in table.stdout and "Share" in table.stdout


def test_bad_clustering_and_lifetime_value_input_names_the_field_or_exits_2(bank) -> None:  # type: ignore[no-untyped-def]
    unknown = bank("clusters", "run", "--feature", "no_such_feature", "--k", "25")
    assert unknown.exit_code == 1 and "INVALID_ARGUMENT" in unknown.output
    assert "features" in unknown.output and "cluster_count" in unknown.output
    assert bank("clusters", "run").exit_code == 2  # --feature is required

    short = bank("clv", "fit", "--calibration-days", "30")
    assert short.exit_code == 1 and "INVALID_ARGUMENT" in short.output and "calibration_period" in short.output
    too_few = bank("clv", "fit", "--calibration-days", "180", "--output", "json")
    assert too_few.exit_code == 1 and "FAILED_PRECONDITION" in too_few.output  # 30 customers, fewer than 100
    no_model = bank("clv", "show", demo_data.customer_id(1, SEED))
    assert no_model.exit_code == 1 and "FAILED_PRECONDITION" in no_model.output
    assert bank("clv", "show", "any", "--discount-rate", "lots").exit_code == 2
    assert bank("clv", "model", "no-such-model").exit_code == 1
