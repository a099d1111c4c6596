"""Next-best-action rules on injected facts: the campaign-level checks before the funnel (control
group, declined, channel, triggered campaigns, offer validity), rival campaigns' dispatches in
arbitration, and the ranking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_campaign.audience import rules as audience_rules
from crm_campaign.campaigns.model import (
    Campaign,
    CampaignState,
    CampaignType,
    Channel,
    ContactPolicy,
    ControlGroup,
    FrequencyCap,
    FrequencyCapScope,
    Interval,
    Money,
)
from crm_campaign.nba import rules
from crm_campaign.nba.model import CustomerFacts, Decision
from crm_campaign.offers.model import ChannelContent, Offer
from crmkit.errors import InvalidArgument, NotFound

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
APP = int(Channel.MOBILE_APP)
SEGMENT = "segments/maturing"


def campaign(campaign_id: str, **overrides: object) -> Campaign:
    values: dict[str, object] = {
        "campaign_id": campaign_id, "display_name": campaign_id, "type": CampaignType.BATCH,
        "state": CampaignState.RUNNING, "segment": SEGMENT,
        "contact_policy": ContactPolicy(channels=(int(Channel.SMS), APP)), "control_seed": 7}
    values.update(overrides)
    return Campaign(**values)  # type: ignore[arg-type]


def offer(campaign_id: str, offer_id: str, priority: int, **overrides: object) -> Offer:
    values: dict[str, object] = {
        "campaign_id": campaign_id, "offer_id": offer_id, "display_name": offer_id, "product_code": "TD-3Y",
        "product_risk_level": 1, "priority": priority, "expected_value": Money("CNY", Decimal(100)),
        "contents": (ChannelContent(APP, "app-1", "Renew"),)}
    values.update(overrides)
    return Offer(**values)  # type: ignore[arg-type]


def facts(**overrides: object) -> CustomerFacts:
    values: dict[str, object] = {"customer_id": "c-1", "known": True, "segments": frozenset({SEGMENT}),
                                 "consented_channels": frozenset({APP})}
    values.update(overrides)
    return CustomerFacts(**values)  # type: ignore[arg-type]


def decide(*campaigns: tuple[Campaign, list[Offer]], customer: CustomerFacts | None = None, max_actions: int = 0
           ) -> tuple[list[str], dict[str, str]]:
    running = [rules.running_campaign(c, offers) for c, offers in campaigns]
    actions, excluded = rules.decide(running, customer or facts(), {}, channel=APP, max_actions=max_actions, now=NOW)
    return [a.offer_id for a in actions], {e.offer_id: e.reason for e in excluded}


def test_a_held_out_customer_a_declined_campaign_and_another_channel_leave_all_its_offers_out() -> None:
    held_out = next(f"c-{n}" for n in range(1000) if audience_rules.in_control_group(
        seed=7, customer_id=f"c-{n}", holdout_percentage=Decimal(50)))
    half = campaign("half", control_group=ControlGroup(Decimal(50)))
    assert decide((half, [offer("half", "h", 50)]), customer=facts(customer_id=held_out)) == (
        [], {"h": rules.CONTROL_GROUP})
    assert decide((campaign("no"), [offer("no", "n", 50)]), customer=facts(declined_campaigns=frozenset({"no"}))) == (
        [], {"n": rules.DECLINED})
    sms = campaign("sms", contact_policy=ContactPolicy(channels=(int(Channel.SMS),)))
    assert decide((sms, [offer("sms", "s", 50)])) == ([], {"s": rules.NOT_ON_CHANNEL})


def test_triggered_campaigns_other_segments_and_offers_out_of_period_are_not_candidates() -> None:
    customer = facts()
    assert rules.in_audience(campaign("batch"), customer)
    assert not rules.in_audience(campaign("event", type=CampaignType.TRIGGERED), customer)  # not sent to them
    assert not rules.in_audience(campaign("other", segment="segments/other"), customer)
    assert rules.in_audience(campaign("walk-in", type=CampaignType.INBOUND, segment=""), customer)
    later = offer("c", "later", 90, valid_period=Interval(start_time=NOW + timedelta(days=1)))
    assert decide((campaign("c"), [later, offer("c", "now", 10)])) == (["now"], {})


def test_a_triggered_offer_the_customer_received_is_followed_up_with_why() -> None:
    """A triggered campaign is a candidate only for a customer it sent an offer to, and then only
    that offer; its own dispatch does not count against its cap, and the reason says when and how
    it went out. Consent, do-not-contact and the rest of the funnel still apply."""
    event = campaign("event", type=CampaignType.TRIGGERED, segment="",
                     contact_policy=ContactPolicy(channels=(int(Channel.SMS), APP), frequency_caps=(
                         FrequencyCap(1, timedelta(days=30), scope=FrequencyCapScope.CAMPAIGN),)))
    offers = [offer("event", "renew", 50), offer("event", "other", 90)]
    sent = NOW - timedelta(hours=1)
    received = facts(segments=frozenset(), triggered=(("event", "renew", int(Channel.SMS), sent),),
                     contacts=(("event", int(Channel.SMS), sent),))
    assert rules.in_audience(event, received)
    running = [rules.running_campaign(event, offers)]
    actions, excluded = rules.decide(running, received, {}, channel=APP, max_actions=0, now=NOW)
    assert [a.offer_id for a in actions] == ["renew"] and excluded == []
    [priority, why] = actions[0].reasons
    assert priority.code == "CAMPAIGN_PRIORITY" and why.code == rules.TRIGGERED_OFFER
    assert why.description.startswith(f"Sent by SMS on {sent.date().isoformat()}")
    # Another campaign's send still counts: a global cap reached elsewhere leaves it out.
    capped = campaign("event", type=CampaignType.TRIGGERED, segment="",
                      contact_policy=ContactPolicy(channels=(int(Channel.SMS), APP), frequency_caps=(
                          FrequencyCap(1, timedelta(days=30), scope=FrequencyCapScope.ALL_CAMPAIGNS),)))
    busy = facts(segments=frozenset(), triggered=received.triggered,
                 contacts=(("event", int(Channel.SMS), sent), ("batch", int(Channel.SMS), sent)))
    assert decide((capped, offers), customer=busy) == ([], {"renew": "FREQUENCY_CAP"})
    assert decide((event, offers), customer=facts(segments=frozenset(), do_not_contact=True,
                                                   triggered=received.triggered)) == ([], {"renew": "DO_NOT_CONTACT"})


def test_a_rivals_sent_offer_wins_arbitration_and_ranks_break_ties_by_campaign() -> None:
    sent_elsewhere = facts(dispatched=(("rival", "r", 1.0, True),))
    assert decide((campaign("mine"), [offer("mine", "m", 90)]), customer=sent_elsewhere) == (
        [], {"m": "ARBITRATION_LOST"})
    queued_weaker = facts(dispatched=(("rival", "r", 1.0, False),))
    assert decide((campaign("mine"), [offer("mine", "m", 90)]), customer=queued_weaker) == (["m"], {})
    assert decide((campaign("b"), [offer("b", "x", 50)]), (campaign("a"), [offer("a", "y", 50)]), max_actions=1) == (
        ["y"], {"x": "ARBITRATION_LOST"})


def test_validation_reports_every_field_and_responses_must_match_the_decision() -> None:
    from crmkit.resources import Purpose
    from crmkit.validation import Violations

    v = Violations()
    assert rules.validate(customer="customers/c-1", channel=APP, max_actions=3, purpose=Purpose("CUSTOMER_SERVICE"),
                          v=v) == "c-1"
    assert not v
    with pytest.raises(NotFound):
        rules.check_response(None, decision_id="d", customer_id="c-1", campaign_id="a", offer_id="y")
    decision = Decision(decision_id="d", customer_id="c-1", channel=APP, requester="app", actions=(), excluded=())
    with pytest.raises(InvalidArgument):
        rules.check_response(decision, decision_id="d", customer_id="c-1", campaign_id="a", offer_id="y")
    assert rules.decision_id_of("not-a-uuid") is None
