"""`crm segments` against real profile and segment processes: the demo bank loaded into profile
reaches segment's read model through the feed; a segment is validated, created, previewed,
materialised, listed and explained from the command line, and bad rules exit 1 naming the place."""

from __future__ import annotations

import json
import time
import uuid

import pytest

pytestmark = pytest.mark.slow


def _json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_analyst_defines_previews_materialises_and_explains_a_segment(crm_platform) -> None:
    loaded = _json(crm_platform("demo", "load", "--customers", "30", "--seed", "11", "--output", "json"))
    assert loaded["failures"] == []
    rule = '"TERM_DEPOSIT" in product_categories'
    deadline = time.monotonic() + 60
    while True:  # the read model follows profile's feed: wait until every customer arrived
        preview = _json(crm_platform("segments", "preview", "true", "--output", "json"))
        if preview["total_customers"] >= 30 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert preview["total_customers"] >= 30

    checked = crm_platform("segments", "validate", rule)
    assert checked.exit_code == 0 and "product_categories" in checked.stdout

    term = _json(crm_platform("segments", "preview", rule, "--sample", "3", "--output", "json"))
    assert 0 < term["count"] < term["total_customers"], "some customers hold a term deposit, not all"

    segment_id = f"td-{uuid.uuid4().hex[:8]}"
    created = _json(crm_platform("segments", "create", segment_id, rule, "--display-name", "Term depositors",
                                 "--output", "json"))
    assert created["segment_id"] == segment_id
    done = _json(crm_platform("segments", "materialise", segment_id, "--output", "json"))
    assert done["state"] == "SUCCEEDED"

    members = _json(crm_platform("segments", "members", segment_id, "--limit", "1000", "--output", "json"))
    assert members["total_size"] == term["count"] == len(members["members"])
    member = members["members"][0]["customer"].removeprefix("customers/")
    why = _json(crm_platform("segments", "explain", segment_id, member, "--output", "json"))
    assert why["member"] is True and why["clauses"][0]["held"] == "CLAUSE_OUTCOME_HELD"

    table = crm_platform("segments", "list")
    assert table.exit_code == 0 and segment_id in table.stdout


def test_a_broken_rule_exits_1_with_line_column_and_reason(crm_platform) -> None:
    result = crm_platform("segments", "validate", "aum >> 3")
    assert result.exit_code == 1
    assert "1:" in result.stdout and "ERROR" in result.stdout
    refused = crm_platform("segments", "create", "broken", "no_such_feature > 1", "--display-name", "Broken")
    assert refused.exit_code == 1 and "INVALID_ARGUMENT" in refused.output
    both = crm_platform("segments", "validate", "true", "--rule-file", __file__)
    assert both.exit_code == 2
