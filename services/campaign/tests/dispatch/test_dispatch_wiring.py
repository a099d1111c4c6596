"""The dispatcher as configured: a service started with the file adapter sends what is queued by itself;
adapter settings that cannot work stop the start with the variable's name."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from crm_campaign.app import SPEC, CampaignSettings
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.model import Planned
from crmkit.testing import eventually, running_service


async def test_a_service_with_the_file_adapter_sends_queued_dispatches_by_itself(
        campaign_database, running_campaign, queue_dispatches, tmp_path: Path) -> None:
    campaign, [offer] = await running_campaign()
    tag = uuid.uuid4().hex[:6]
    async with running_service(SPEC, database_url=campaign_database, dispatch_directory=str(tmp_path),
                               channel_adapters={"SMS": "file"}, templates={"SMS": ["sms-td-renewal-v2"]},
                               dispatch_poll_seconds=0.05, feedback_target="", segment_target="",
                               profile_target=""):
        await queue_dispatches(campaign.campaign_id, [
            Planned(customer_id=f"w{tag}-{n}", offer_id=offer.offer_id, channel=Channel.SMS,
                    template_id="sms-td-renewal-v2") for n in range(3)])

        def sent() -> int:
            path = tmp_path / "sms.jsonl"
            return sum(f"w{tag}-" in line for line in path.read_text().splitlines()) if path.exists() else 0

        await eventually(lambda: sent() == 3, what="the three dispatches in sms.jsonl")


@pytest.mark.parametrize(("settings", "named"), [
    ({"CRM_CAMPAIGN_CHANNEL_ADAPTERS": '{"SMS": "file"}'}, "CRM_CAMPAIGN_DISPATCH_DIRECTORY"),
    ({"CRM_CAMPAIGN_CHANNEL_ADAPTERS": '{"EMAIL": "webhook"}'}, "CRM_CAMPAIGN_WEBHOOK_SECRET"),
    ({"CRM_CAMPAIGN_CHANNEL_ADAPTERS": '{"SMS": "pigeon"}'}, "CRM_CAMPAIGN_CHANNEL_ADAPTERS"),
    ({"CRM_CAMPAIGN_TEMPLATES": '{"TELEX": ["t"]}'}, "unknown channel 'TELEX'"),
])
def test_adapter_settings_that_cannot_work_stop_the_start(monkeypatch, settings: dict[str, str], named: str) -> None:
    monkeypatch.setenv("CRM_CAMPAIGN_DATABASE_URL", "postgresql://localhost/x")
    monkeypatch.setenv("CRM_JWT_SECRET", "x" * 40)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=named):
        CampaignSettings()
