"""The example files the README's walkthrough uses stay valid: an offer `crm offers create` reads,
whose templates are the ones `crm run` gives campaign."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format

from crm.campaign.v1 import campaign_pb2
from crm_cli.platform import LOCAL_CAMPAIGN_TEMPLATES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_walkthrough_offer_parses_and_names_templates_crm_run_knows() -> None:
    offer = json_format.Parse((EXAMPLES / "td-renewal-offer.json").read_text(), campaign_pb2.Offer())
    assert offer.display_name and offer.product_code and offer.expected_value.units > 0
    for content in offer.contents:
        channel = campaign_pb2.Channel.Name(content.channel).removeprefix("CHANNEL_")
        assert content.template_id in LOCAL_CAMPAIGN_TEMPLATES[channel]
