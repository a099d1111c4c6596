"""Pure decisions about responses and conversions: what a valid one is, and attribution."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from crm_campaign.campaigns import rules as campaign_rules
from crm_campaign.campaigns.model import Campaign, CampaignState
from crm_campaign.engagement.model import Contact, Conversion, OfferResponse, ResponseType
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

# Clocks of channel applications drift: a time this far ahead of ours is still "now".
CLOCK_SKEW = timedelta(minutes=5)
MAX_SOURCE_REFERENCE = 128
LAUNCHED = frozenset({CampaignState.RUNNING, CampaignState.PAUSED, CampaignState.COMPLETED})


def validate_response(response: OfferResponse, *, now: datetime, v: Violations) -> None:
    p = "response."
    v.required(response.customer_id, f"{p}customer")
    v.required(response.offer_id, f"{p}offer")
    v.enum(response.channel, f"{p}channel", campaign_rules.CHANNELS, "Channel", required=True)
    v.enum(response.type, f"{p}type", {int(t) for t in ResponseType if t}, "ResponseType", required=True)
    if v.required(response.response_time, f"{p}response_time") and response.response_time is not None:
        v.check(response.response_time <= now + CLOCK_SKEW, f"{p}response_time", "must not be in the future")
    v.max_length(response.decision_id, f"{p}decision_id", 128)
    v.text(response.decision_id, f"{p}decision_id")


def validate_conversion(conversion: Conversion, *, now: datetime, reporting_currency: str, v: Violations) -> None:
    p = "conversion."
    v.required(conversion.customer_id, f"{p}customer")
    if v.required(conversion.conversion_time, f"{p}conversion_time") and conversion.conversion_time is not None:
        v.check(conversion.conversion_time <= now + CLOCK_SKEW, f"{p}conversion_time", "must not be in the future")
    if v.required(conversion.source_reference, f"{p}source_reference"):
        v.max_length(conversion.source_reference, f"{p}source_reference", MAX_SOURCE_REFERENCE)
        v.text(conversion.source_reference, f"{p}source_reference")
    v.check(bool(conversion.offer_id or conversion.product_code), f"{p}product_code",
            "is required when no offer is named")
    if conversion.value is not None:
        v.check(conversion.value.currency_code == reporting_currency, f"{p}value.currency_code",
                f"must be the reporting currency, {reporting_currency}")
        v.check(conversion.value.amount >= 0, f"{p}value", "must be zero or positive")
    if conversion.amount is not None:
        v.check(len(conversion.amount.currency_code) == 3, f"{p}amount.currency_code",
                "must be an ISO 4217 code")


def check_launched(campaign: Campaign) -> None:
    """Responses and results belong to campaigns that have reached customers."""
    if campaign.launched_at is None or campaign.state not in LAUNCHED | {CampaignState.CANCELLED}:
        raise FailedPrecondition(
            f"campaign {campaign.campaign_id} has not been launched (it is {campaign.state.name})",
            reason="CAMPAIGN_NOT_LAUNCHED", metadata={"state": campaign.state.name})


def attribute(conversion_time: datetime, contacts: Sequence[Contact], *, product_code: str = "",
              offer: tuple[str, str] | None = None) -> Contact | None:
    """The contact a purchase at `conversion_time` is attributed to: among contacts for the named
    offer (or else for the product), the latest one made at or before the purchase whose window
    still covers it. None when nothing matches."""
    matching = [c for c in contacts
                if (offer is not None and (c.campaign_id, c.offer_id) == offer)
                or (offer is None and c.product_code == product_code)]
    covering = [c for c in matching if c.contact_at <= conversion_time <= c.contact_at + c.window]
    return max(covering, key=lambda c: (c.contact_at, c.campaign_id, c.offer_id), default=None)
