"""Pure offer rules: validation against the campaign, defaults, draft-only changes. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_campaign.campaigns.model import Campaign, CampaignState, CampaignType, Channel, ContactPolicy, Interval, Money
from crm_campaign.offers import rules
from crm_campaign.offers.model import ChannelContent, Offer, OfferEligibility
from crmkit.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CAMPAIGN = Campaign(campaign_id="spring", display_name="Spring", type=CampaignType.BATCH,
                    active_period=Interval(NOW, NOW + timedelta(days=30)),
                    contact_policy=ContactPolicy(channels=(Channel.SMS, Channel.BRANCH_COUNTER)))
# The templates the adapters know in these tests, by channel.
TEMPLATES = {Channel.SMS: {"sms-1", "x" * 129}, Channel.EMAIL: {"mail-1"}}


def knows_template(channel: int, template_id: str) -> bool:
    return template_id in TEMPLATES.get(Channel(channel), set())


def offer(**overrides: object) -> Offer:
    values: dict[str, object] = {
        "campaign_id": "spring", "offer_id": "td-3y", "display_name": "3-year deposit", "product_code": "TD-3Y",
        "product_risk_level": 1, "priority": 50, "expected_value": Money("CNY", Decimal("1200")),
    }
    values.update(overrides)
    return Offer(**values)  # type: ignore[arg-type]


def bad_fields(candidate: Offer) -> set[str]:
    try:
        rules.validate(candidate, campaign=CAMPAIGN, reporting_currency="CNY",
                       knows_template=knows_template).raise_if_any()
    except InvalidArgument as error:
        return {v.field for v in error.violations}
    return set()


def test_a_valid_offer_has_no_violations() -> None:
    assert bad_fields(offer()) == set()
    assert bad_fields(offer(channels=(Channel.SMS,), contents=(ChannelContent(Channel.SMS, "sms-1"),
                                                               ChannelContent(Channel.BRANCH_COUNTER, headline="Hi")),
                            valid_period=Interval(NOW, NOW + timedelta(days=30)),
                            eligibility=OfferEligibility("segments/no-card", ("CC-1",)))) == set()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"offer_id": "A"}, "offer.offer_id"),
    ({"product_risk_level": 0}, "offer.product_risk_level"),
    ({"priority": 0}, "offer.priority"),
    ({"expected_value": None}, "offer.expected_value"),
    ({"channels": (Channel.EMAIL,)}, "offer.channels[0]"),
    ({"channels": (99,)}, "offer.channels[0]"),
    ({"contents": (ChannelContent(Channel.EMAIL),)}, "offer.contents[0].template_id"),
    ({"contents": (ChannelContent(Channel.SMS, "x" * 129),)}, "offer.contents[0].template_id"),
    ({"contents": (ChannelContent(Channel.SMS, "mail-1"),)}, "offer.contents[0].template_id"),
    ({"valid_period": Interval(NOW - timedelta(seconds=1), None)}, "offer.valid_period.start_time"),
    ({"valid_period": Interval(None, NOW + timedelta(days=31))}, "offer.valid_period.end_time"),
    ({"conversion_points": -1}, "offer.conversion_points"),
])
def test_each_bad_field_is_named(overrides: dict[str, object], field: str) -> None:
    assert field in bad_fields(offer(**overrides))


def test_normalise_defaults_the_priority_and_trims_names() -> None:
    normal = rules.normalise(offer(priority=0, display_name="  3-year   deposit "))
    assert (normal.priority, normal.display_name) == (50, "3-year deposit")


def test_offers_change_only_in_a_draft_with_room_left() -> None:
    rules.check_campaign_is_draft(CAMPAIGN)
    with pytest.raises(FailedPrecondition) as error:
        rules.check_campaign_is_draft(Campaign(campaign_id="x", display_name="x", type=1,
                                               state=CampaignState.APPROVED))
    assert error.value.reason == "CAMPAIGN_NOT_DRAFT"
    rules.check_room_for_another(19)
    with pytest.raises(FailedPrecondition) as full:
        rules.check_room_for_another(20)
    assert full.value.reason == "TOO_MANY_OFFERS"


def test_update_masks_and_nested_paths() -> None:
    with pytest.raises(InvalidArgument):
        rules.check_mask(["offer_id"])
    current = offer(eligibility=OfferEligibility("segments/a", ("X",)))
    merged = rules.apply(current, offer(eligibility=OfferEligibility("segments/b", ())), ["eligibility.segment"])
    assert merged.eligibility == OfferEligibility("segments/b", ("X",))


def test_unknown_enum_numbers_are_named_as_such_not_as_missing() -> None:
    bad = offer(product_risk_level=7, channels=(Channel.SMS, 99), contents=(ChannelContent(98, "t"),))
    with pytest.raises(InvalidArgument) as error:
        rules.validate(bad, campaign=CAMPAIGN, reporting_currency="CNY", knows_template=knows_template).raise_if_any()
    assert {v.field: v.description for v in error.value.violations} == {
        "offer.product_risk_level": "7 is not a known ProductRiskLevel value",
        "offer.channels[1]": "99 is not a known Channel value",
        "offer.contents[0].channel": "98 is not a known Channel value",
    }


def test_a_template_its_channel_adapter_does_not_know_is_named_with_the_channel() -> None:
    unknown = offer(channels=(Channel.SMS,), contents=(ChannelContent(Channel.SMS, "sms-typo"),))
    with pytest.raises(InvalidArgument) as error:
        rules.validate(unknown, campaign=CAMPAIGN, reporting_currency="CNY",
                       knows_template=knows_template).raise_if_any()
    assert {v.field: v.description for v in error.value.violations} == {
        "offer.contents[0].template_id": "is not a template of the SMS channel's adapter"}
