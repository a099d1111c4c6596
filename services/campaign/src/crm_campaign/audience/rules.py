"""Pure audience decisions: the control-group split, when a build may run, the funnel's plan."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from crm_campaign.audience.funnel import Cap, OfferPlan, Plan
from crm_campaign.campaigns.model import Campaign, CampaignState, CampaignType
from crm_campaign.offers.model import Offer
from crm_campaign.rates.rules import ObservedRates
from crmkit.errors import FailedPrecondition

# A cap without a period counts contacts over a day.
DEFAULT_CAP_PERIOD = timedelta(days=1)

_SCALE = 2 ** 64


def in_control_group(*, seed: int, customer_id: str, holdout_percentage: Decimal) -> bool:
    """Whether the customer is held out: a uniform draw in [0, 1) from a hash of the campaign's
    stored seed and the customer id, below the hold-out share. Random across campaigns (each has
    its own seed), the same for the same seed and customer: a rebuild reproduces the split."""
    if holdout_percentage <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    draw = Decimal(int.from_bytes(digest[:8], "big")) / _SCALE
    return draw < holdout_percentage / 100


def check_buildable(campaign: Campaign, *, dry_run: bool) -> None:
    """A dry run counts in any state but closed; a real build reserves customers, so only for a
    running batch campaign."""
    if campaign.state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
        raise FailedPrecondition(f"campaign {campaign.campaign_id} is {campaign.state.name}: nothing to build",
                                 reason="CAMPAIGN_CLOSED", metadata={"state": campaign.state.name})
    if dry_run:
        return
    if campaign.type != CampaignType.BATCH:
        raise FailedPrecondition("only batch campaigns build audiences (triggered and inbound ones contact "
                                 "customers one at a time)", reason="NOT_A_BATCH_CAMPAIGN")
    if campaign.state is not CampaignState.RUNNING:
        raise FailedPrecondition(f"a real build needs a RUNNING campaign (it is {campaign.state.name}); "
                                 "use dry_run to count", reason="CAMPAIGN_NOT_RUNNING",
                                 metadata={"state": campaign.state.name})


def plan_of(campaign: Campaign, offers: Sequence[Offer], *, suppress_open_complaints: bool,
            rates: ObservedRates | None = None) -> Plan:
    """The campaign and its offers as the funnel sees them, with the observed response rates
    (none given: nothing observed, every offer at the bank-wide default)."""
    channels = campaign.contact_policy.channels
    quiet = campaign.contact_policy.quiet_hours
    return with_rates(Plan(
        campaign_id=campaign.campaign_id, segment=campaign.segment, channels=tuple(channels),
        strategy=campaign.contact_policy.channel_strategy,
        offers=tuple(OfferPlan(
            offer_id=o.offer_id, priority=o.priority,
            expected_value=o.expected_value.amount if o.expected_value else Decimal(0),
            product_code=o.product_code, risk_level=o.product_risk_level,
            templates={ch: _content(o, ch) for ch in (o.channels or channels)},
            eligibility_segment=o.eligibility.segment,
            excluded_products=frozenset(o.eligibility.excluded_product_codes), offer_type=o.offer_type)
            for o in offers),
        caps=tuple(Cap(cap.max_contacts, cap.period or DEFAULT_CAP_PERIOD, cap.channel, cap.scope)
                   for cap in campaign.contact_policy.frequency_caps),
        quiet_hours=quiet, ends_at=campaign.active_period.end_time, max_contacts=campaign.max_contacts,
        suppress_open_complaints=suppress_open_complaints), rates or ObservedRates())


def with_rates(plan: Plan, rates: ObservedRates) -> Plan:
    """The plan with each offer's smoothed response rate and its type's rates by channel."""
    return dataclasses.replace(plan, offers=tuple(dataclasses.replace(
        o, response_rate=rates.offer_rate(plan.campaign_id, o.offer_id, o.offer_type),
        channel_rates=rates.channel_rates(o.offer_type, o.templates)) for o in plan.offers))


def _content(offer: Offer, channel: int) -> tuple[str, str]:
    for content in offer.contents:
        if content.channel == channel:
            return content.template_id, content.headline or offer.display_name
    return "", offer.display_name


def cap_horizon(plan: Plan) -> timedelta:
    """How far back contacts matter: the longest cap period."""
    return max((cap.period for cap in plan.caps), default=timedelta(0))
