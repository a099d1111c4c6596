"""Pure decisions about offers: what a valid offer of a given campaign is. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence

from crm_campaign import field_masks
from crm_campaign.campaigns import rules as campaign_rules
from crm_campaign.campaigns.model import Campaign, CampaignState, Channel
from crm_campaign.offers.model import Offer, ProductRiskLevel
from crm_campaign.propensity import rules as propensity_rules
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

OFFER_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
PRODUCT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_OFFERS_PER_CAMPAIGN = 20
DEFAULT_PRIORITY = 50
MAX_EXCLUDED_PRODUCTS = 50
MAX_TEMPLATE_ID = 128
MAX_HEADLINE = 100
MAX_CONVERSION_POINTS = 1_000_000
RISK_LEVELS = frozenset(ProductRiskLevel)

KnowsTemplate = Callable[[int, str], bool]

UPDATABLE_PATHS = frozenset({
    "display_name", "description", "product_code", "product_risk_level", "priority", "expected_value",
    "eligibility", "eligibility.segment", "eligibility.excluded_product_codes", "channels", "contents",
    "valid_period", "valid_period.start_time", "valid_period.end_time", "conversion_points", "offer_type",
})


def validate(offer: Offer, *, campaign: Campaign, reporting_currency: str, knows_template: KnowsTemplate,
             prefix: str = "offer.", violations: Violations | None = None) -> Violations:
    """Record every rule the offer breaks, each under the field path the caller used. Templates
    are adapter ids: `knows_template(channel, template_id)` says whether the channel's adapter has it."""
    v = violations or Violations()
    p = prefix
    if v.required(offer.offer_id, f"{p}offer_id"):
        v.pattern(offer.offer_id, f"{p}offer_id", OFFER_ID, "must be 1 to 63 characters from a-z 0-9 -, "
                                                            "starting with a letter")
    if v.required(offer.display_name, f"{p}display_name"):
        v.max_length(offer.display_name, f"{p}display_name", campaign_rules.MAX_DISPLAY_NAME)
        v.text(offer.display_name, f"{p}display_name")
    v.max_length(offer.description, f"{p}description", campaign_rules.MAX_DESCRIPTION)
    v.text(offer.description, f"{p}description", multiline=True)
    if v.required(offer.product_code, f"{p}product_code"):
        v.pattern(offer.product_code, f"{p}product_code", PRODUCT_CODE,
                  "must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    v.enum(offer.product_risk_level, f"{p}product_risk_level", RISK_LEVELS, "ProductRiskLevel",
           required="is required: PRODUCT_RISK_LEVEL_R1 to PRODUCT_RISK_LEVEL_R5")
    v.check(1 <= offer.priority <= 100, f"{p}priority", "must be from 1 to 100 (0 means 50)")
    if v.check(offer.expected_value is not None, f"{p}expected_value", "is required"):
        assert offer.expected_value is not None
        campaign_rules.validate_money(offer.expected_value, f"{p}expected_value", v,
                                      reporting_currency=reporting_currency)
    eligibility = offer.eligibility
    if eligibility.segment:
        v.pattern(eligibility.segment, f"{p}eligibility.segment", campaign_rules.SEGMENT_NAME,
                  "must be a resource name like segments/{segment_id}")
    codes = eligibility.excluded_product_codes
    v.check(len(codes) <= MAX_EXCLUDED_PRODUCTS, f"{p}eligibility.excluded_product_codes",
            "must name at most 50 product codes")
    for index, code in enumerate(codes):
        v.pattern(code, f"{p}eligibility.excluded_product_codes[{index}]", PRODUCT_CODE,
                  "must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    _validate_channels(offer, campaign, f"{p}channels", v)
    _validate_contents(offer, f"{p}contents", v, knows_template)
    campaign_rules.validate_interval(offer.valid_period, f"{p}valid_period", v)
    outer = campaign.active_period
    start, end = offer.valid_period.start_time, offer.valid_period.end_time
    within = "must lie within the campaign's active_period"
    if start is not None and outer.start_time is not None:
        v.check(start >= outer.start_time, f"{p}valid_period.start_time", within)
    if end is not None and outer.end_time is not None:
        v.check(end <= outer.end_time, f"{p}valid_period.end_time", within)
    v.check(0 <= offer.conversion_points <= MAX_CONVERSION_POINTS, f"{p}conversion_points",
            "must be from 0 to 1,000,000")
    if offer.offer_type:
        v.pattern(offer.offer_type, f"{p}offer_type", propensity_rules.OFFER_TYPE,
                  "must be 1 to 64 characters from a-z 0-9 -, starting with a letter")
    return v


def _validate_channels(offer: Offer, campaign: Campaign, field: str, v: Violations) -> None:
    v.check(len(set(offer.channels)) == len(offer.channels), field, "must not repeat a channel")
    allowed = set(campaign.contact_policy.channels)
    for index, channel in enumerate(offer.channels):
        if v.enum(channel, f"{field}[{index}]", campaign_rules.CHANNELS, "Channel",
                  required="is required: a known Channel"):
            v.check(channel in allowed, f"{field}[{index}]", "must be one of the campaign's channels")


def _validate_contents(offer: Offer, field: str, v: Violations, knows_template: KnowsTemplate) -> None:
    seen: set[int] = set()
    for index, content in enumerate(offer.contents):
        item = f"{field}[{index}]"
        known = v.enum(content.channel, f"{item}.channel", campaign_rules.CHANNELS, "Channel",
                       required="is required: a known Channel")
        if known:
            v.check(content.channel not in seen, f"{item}.channel", "has content already: one entry per channel")
            seen.add(content.channel)
        if known and content.channel in campaign_rules.MESSAGE_CHANNELS:
            v.required(content.template_id, f"{item}.template_id")
        if (v.max_length(content.template_id, f"{item}.template_id", MAX_TEMPLATE_ID)
                and v.text(content.template_id, f"{item}.template_id") and known and content.template_id):
            v.check(knows_template(content.channel, content.template_id), f"{item}.template_id",
                    f"is not a template of the {Channel(content.channel).name} channel's adapter")
        v.max_length(content.headline, f"{item}.headline", MAX_HEADLINE)
        v.text(content.headline, f"{item}.headline")


def normalise(offer: Offer) -> Offer:
    return dataclasses.replace(
        offer, display_name=" ".join(offer.display_name.split()), description=offer.description.strip(),
        priority=offer.priority or DEFAULT_PRIORITY)


def check_campaign_is_draft(campaign: Campaign) -> None:
    """Offers are part of what gets approved, so they change only while the campaign is a draft."""
    if campaign.state is not CampaignState.DRAFT:
        raise FailedPrecondition(
            f"offers change only while their campaign is DRAFT (it is {campaign.state.name})",
            reason="CAMPAIGN_NOT_DRAFT", metadata={"state": campaign.state.name})


def check_room_for_another(offer_count: int) -> None:
    if offer_count >= MAX_OFFERS_PER_CAMPAIGN:
        raise FailedPrecondition(f"a campaign has at most {MAX_OFFERS_PER_CAMPAIGN} offers",
                                 reason="TOO_MANY_OFFERS", metadata={"limit": str(MAX_OFFERS_PER_CAMPAIGN)})


def check_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    v.raise_if_any()


def apply(current: Offer, changes: Offer, paths: Iterable[str]) -> Offer:
    return normalise(field_masks.apply_paths(current, changes, paths))
