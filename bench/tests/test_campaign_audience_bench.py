"""The campaign-audience benchmark is registered, sizes itself from its variable, runs campaign
with no peer (so its R1 offers need no risk) and no dispatcher, and its campaign's offers need no
suitability check. Quick: no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bench import campaign_audience
from bench.harness import REGISTRY
from crm_campaign.campaigns.model import Channel


def test_the_audience_benchmark_is_registered_and_sized_by_its_variable(monkeypatch) -> None:
    assert REGISTRY["campaign-audience"].module == "bench.campaign_audience"
    monkeypatch.delenv(campaign_audience.CUSTOMERS_VARIABLE, raising=False)
    assert campaign_audience.customer_count() == campaign_audience.DEFAULT_CUSTOMERS == 1_000_000
    monkeypatch.setenv(campaign_audience.CUSTOMERS_VARIABLE, "100000")
    assert campaign_audience.customer_count() == 100_000
    monkeypatch.setenv(campaign_audience.CUSTOMERS_VARIABLE, "10")
    with pytest.raises(ValueError, match=campaign_audience.CUSTOMERS_VARIABLE):
        campaign_audience.customer_count()


def test_campaign_runs_without_peers_or_dispatcher_with_templates_for_both_channels() -> None:
    env = campaign_audience.service_env("postgresql://db", 7001, "secret")
    assert env["CRM_CAMPAIGN_RISK_TARGET"] == env["CRM_CAMPAIGN_SEGMENT_TARGET"] == ""
    assert env["CRM_CAMPAIGN_PROFILE_TARGET"] == env["CRM_CAMPAIGN_FEEDBACK_TARGET"] == ""
    assert env["CRM_CAMPAIGN_DISPATCHER_ENABLED"] == "false"
    assert set(json.loads(env["CRM_CAMPAIGN_TEMPLATES"])) == {Channel.SMS.name, Channel.MOBILE_APP.name}


def test_the_campaign_under_test_needs_no_suitability_check_and_has_no_contact_limit() -> None:
    campaign, offers = campaign_audience.campaign_under_test(datetime.now(UTC))
    assert campaign.max_contacts == 0 and campaign.contact_policy.quiet_hours.start.hours == 21
    assert {offer.product_risk_level for offer in offers} == {1}, "R1: no suitability check, so no risk needed"
    assert len(campaign.contact_policy.frequency_caps) == 1
