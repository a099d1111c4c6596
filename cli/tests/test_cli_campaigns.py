"""`crm campaigns` against real profile, segment, feedback and campaign processes: a marketer creates a
campaign on a materialised segment, submits it, cannot approve it themself, a second marketer
approves it, the dry run shows the funnel over the segment's members, it is launched, paused, and its
results read; offers are created from a file and listed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _offer_file(folder: Path, offer_id: str) -> Path:
    path = folder / f"{offer_id}.json"
    path.write_text(json.dumps({
        "offer_id": offer_id, "display_name": "3-year time deposit", "product_code": "TD-3Y-CNY",
        "product_risk_level": "PRODUCT_RISK_LEVEL_R1", "priority": 70,
        "expected_value": {"currency_code": "CNY", "units": "1200"},
        "contents": [{"channel": "CHANNEL_SMS", "template_id": "sms-td-renewal"},
                     {"channel": "CHANNEL_MOBILE_APP", "template_id": "app-td-banner", "headline": "2.60 %"}],
    }), encoding="utf-8")
    return path


def test_a_campaign_from_draft_through_a_second_persons_approval_to_its_funnel_and_launch(
        crm_all, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    segment_id = f"all-{tag}"
    _json(crm_all("segments", "create", segment_id, "true", "--display-name", "Everyone", "--real-time",
                  "--output", "json"))
    loaded = _json(crm_all("demo", "load", "--customers", "20", "--seed", "23", "--output", "json"))
    assert loaded["failures"] == []
    campaign_id = f"renewal-{tag}"
    created = _json(crm_all("campaigns", "create", campaign_id, "--display-name", "Deposit renewal",
                            "--description", "Renew maturing deposits", "--segment", segment_id,
                            "--channel", "sms", "--channel", "mobile_app", "--holdout", "10", "--days", "30",
                            "--output", "json"))
    assert created["state"] == "CAMPAIGN_STATE_DRAFT"
    no_offer = crm_all("campaigns", "submit", campaign_id)
    assert no_offer.exit_code == 1 and "CAMPAIGN_INCOMPLETE" in no_offer.output
    offer = _json(crm_all("offers", "create", campaign_id, str(_offer_file(tmp_path, f"td-{tag}")),
                          "--output", "json"))
    assert offer["name"].startswith(f"campaigns/{campaign_id}/")
    assert _json(crm_all("campaigns", "submit", campaign_id, "--output", "json"))["state"] == \
        "CAMPAIGN_STATE_PENDING_APPROVAL"
    own = crm_all("campaigns", "approve", campaign_id)
    assert own.exit_code == 1 and "SELF_APPROVAL" in own.output
    approved = _json(crm_all("campaigns", "approve", campaign_id, "--as", "mkt-2001", "--comment", "ok",
                             "--output", "json"))
    assert approved["state"] == "CAMPAIGN_STATE_APPROVED"
    assert approved["approval_history"][0]["reviewer"] == "mkt-2001"

    # The funnel's candidates are campaign's segment_member read model, fed by MembershipChange
    # events on segment's feed; segment does not publish them for this segment yet (materialised
    # members do not reach campaign), so only the funnel's arithmetic is checked here.
    funnel = _json(crm_all("campaigns", "dry-run", campaign_id, "--output", "json"))
    suppressed = sum(int(s.get("count", 0)) for s in funnel.get("suppression_counts", []))
    assert funnel["candidate_count"] - suppressed == funnel["eligible_count"]
    assert funnel["eligible_count"] == funnel["target_count"] + funnel["control_count"]
    assert sum(int(v["count"]) for v in funnel.get("daily_volumes", [])) == funnel["target_count"]
    table = crm_all("campaigns", "dry-run", campaign_id)
    assert table.exit_code == 0 and "candidates" in table.stdout and "target" in table.stdout

    assert _json(crm_all("campaigns", "launch", campaign_id, "--output", "json"))["state"] == "CAMPAIGN_STATE_RUNNING"
    assert _json(crm_all("campaigns", "pause", campaign_id, "--reason", "rate review", "--output", "json")
                 )["state"] == "CAMPAIGN_STATE_PAUSED"
    listed = crm_all("campaigns", "list")
    assert listed.exit_code == 0 and campaign_id in listed.stdout
    results = crm_all("campaigns", "results", campaign_id)
    assert results.exit_code == 0 and "overall" in results.stdout and "Uplift" in results.stdout


def test_a_refused_campaign_exits_1_and_bad_arguments_exit_2(crm_all, tmp_path: Path) -> None:
    refused = crm_all("campaigns", "create", f"x-{uuid.uuid4().hex[:6]}", "--segment", "s1")
    assert refused.exit_code == 1 and "INVALID_ARGUMENT" in refused.output and "display_name" in refused.output
    assert crm_all("campaigns", "create").exit_code == 2
    broken = tmp_path / "offer.json"
    broken.write_text("{not json", encoding="utf-8")
    assert crm_all("offers", "create", "any", str(broken)).exit_code == 2


def test_offers_are_created_from_a_file_and_listed(crm_all, tmp_path: Path) -> None:
    campaign_id = f"offers-{uuid.uuid4().hex[:8]}"
    _json(crm_all("campaigns", "create", campaign_id, "--display-name", "Offers", "--segment", "s1",
                  "--channel", "sms", "--output", "json"))
    offer_id = f"td-3y-{uuid.uuid4().hex[:6]}"
    created = crm_all("offers", "create", campaign_id, str(_offer_file(tmp_path, offer_id)))
    assert created.exit_code == 0 and offer_id in created.stdout, created.output
    listed = _json(crm_all("offers", "list", campaign_id, "--output", "json"))
    assert [o["offer_id"] for o in listed] == [offer_id]
