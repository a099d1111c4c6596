"""The campaign-trigger benchmark is registered, sizes itself from its variable, and its campaign
settings follow profile only and send SMS through the file adapter. Quick: no database."""

from __future__ import annotations

import json

from bench import campaign_trigger
from bench.harness import REGISTRY


def test_the_trigger_benchmark_is_registered_and_sized_by_its_variable(monkeypatch) -> None:
    assert REGISTRY["campaign-trigger"].module == "bench.campaign_trigger"
    monkeypatch.delenv(campaign_trigger.CHANGES_VARIABLE, raising=False)
    assert campaign_trigger.change_count() == campaign_trigger.DEFAULT_CHANGES
    monkeypatch.setenv(campaign_trigger.CHANGES_VARIABLE, "40")
    assert campaign_trigger.change_count() == 40
    assert len({campaign_trigger.customer_id(i) for i in range(500)}) == 500


def test_campaign_follows_profile_only_and_writes_sms_to_files() -> None:
    env = campaign_trigger.campaign_env("postgresql://db", 7001, "secret", 7000, "outbound")
    assert env["CRM_CAMPAIGN_PROFILE_TARGET"] == "127.0.0.1:7000"
    assert env["CRM_CAMPAIGN_SEGMENT_TARGET"] == env["CRM_CAMPAIGN_FEEDBACK_TARGET"] == ""
    assert json.loads(env["CRM_CAMPAIGN_CHANNEL_ADAPTERS"]) == {"SMS": "file"}
    assert env["CRM_CAMPAIGN_DISPATCH_DIRECTORY"] == "outbound"
