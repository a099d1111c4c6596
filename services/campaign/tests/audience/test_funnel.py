"""The audience funnel on injected inputs: each reason in order, counts that add up, arbitration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_campaign.audience import funnel
from crm_campaign.audience.funnel import Candidate, Cap, OfferPlan, PastContact, Plan, Rival
from crm_campaign.campaigns.model import Channel, ChannelStrategy, FrequencyCapScope, QuietHours, TimeOfDay
from crm_campaign.dispatch.model import ChannelChoiceReason, SuppressionReason

R = SuppressionReason
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 18:00 in Shanghai
SMS, APP = int(Channel.SMS), int(Channel.MOBILE_APP)
DEPOSIT = OfferPlan("td-3y", priority=70, expected_value=Decimal(1200), product_code="TD-3Y", risk_level=1,
                    templates={SMS: ("sms-1", ""), APP: ("app-1", "Renew")})
FUND = OfferPlan("fund", priority=90, expected_value=Decimal(3000), product_code="FUND", risk_level=3,
                 templates={SMS: ("sms-2", "")}, eligibility_segment="segments/affluent")
PLAN = Plan(campaign_id="spring", segment="segments/maturing", channels=(SMS, APP),
            strategy=ChannelStrategy.PREFERENCE_AND_RESPONSE, offers=(DEPOSIT, FUND),
            caps=(Cap(2, timedelta(days=7), 0, FrequencyCapScope.ALL_CAMPAIGNS),))


def reachable(customer_id: str, **overrides: object) -> Candidate:
    values: dict[str, object] = {"customer_id": customer_id, "consented_channels": frozenset({SMS, APP}),
                                 "reachable_channels": frozenset({SMS, APP}), "unsuitable_offers": frozenset()}
    values.update(overrides)
    return Candidate(**values)  # type: ignore[arg-type]


def reasons(plan: Plan, *candidates: Candidate) -> dict[str, SuppressionReason | None]:
    result = funnel.run(plan, candidates, now=NOW)
    found: dict[str, SuppressionReason | None] = {s.customer_id: s.reason for s in result.suppressed}
    found.update({e.customer_id: None for e in result.eligible})
    return found


def test_each_check_suppresses_under_its_own_reason_and_the_counts_add_up() -> None:
    week_ago = NOW - timedelta(days=1)
    candidates = [
        reachable("ok"),
        reachable("holds-it", held_products=frozenset({"TD-3Y"})),
        reachable("dnc", do_not_contact=True),
        reachable("complaint", open_complaint=True, do_not_contact=False),
        reachable("no-consent", consented_channels=frozenset({int(Channel.EMAIL)})),
        reachable("risk-down", segments=frozenset({"segments/affluent"}), unsuitable_offers=None),
        reachable("capped", contacts=(PastContact("other", SMS, week_ago), PastContact("x", APP, week_ago))),
        reachable("unreachable", reachable_channels=frozenset()),
    ]
    plan = Plan(**{**PLAN.__dict__, "offers": (
        OfferPlan(**{**DEPOSIT.__dict__, "excluded_products": frozenset({"TD-3Y"})}), FUND)})
    found = reasons(plan, *candidates)
    assert found == {
        "ok": None, "holds-it": R.INELIGIBLE, "dnc": R.DO_NOT_CONTACT, "complaint": R.OPEN_COMPLAINT,
        "no-consent": R.NO_CONSENT, "risk-down": None, "capped": R.FREQUENCY_CAP,
        "unreachable": R.NO_REACHABLE_CHANNEL,
    }
    result = funnel.run(plan, candidates, now=NOW)
    assert sum(result.counts().values()) + len(result.eligible) == result.candidate_count == 8
    assert list(result.counts()) == list(funnel.ORDER), "one count per reason, zeros included, in check order"


def test_when_risk_cannot_be_asked_only_unchecked_products_are_offered() -> None:
    affluent = frozenset({"segments/affluent"})
    result = funnel.run(PLAN, [reachable("a", segments=affluent, unsuitable_offers=None)], now=NOW)
    assert [e.offer_id for e in result.eligible] == ["td-3y"], "the R3 fund is never offered unchecked"
    only_risky = Plan(**{**PLAN.__dict__, "offers": (FUND,)})
    assert reasons(only_risky, reachable("a", segments=affluent, unsuitable_offers=None)) == {
        "a": R.SUITABILITY_UNKNOWN}
    assert reasons(only_risky, reachable("a", segments=affluent, unsuitable_offers=frozenset({"fund"}))) == {
        "a": R.UNSUITABLE}


def test_an_open_complaint_is_ignored_for_exempt_campaign_types() -> None:
    exempt = Plan(**{**PLAN.__dict__, "suppress_open_complaints": False})
    assert reasons(exempt, reachable("c", open_complaint=True)) == {"c": None}


def test_a_campaign_scoped_cap_counts_only_this_campaigns_contacts() -> None:
    scoped = Plan(**{**PLAN.__dict__, "caps": (Cap(1, timedelta(days=7), 0, FrequencyCapScope.CAMPAIGN),)})
    elsewhere = reachable("e", contacts=(PastContact("other", SMS, NOW - timedelta(hours=1)),))
    here = reachable("h", contacts=(PastContact("spring", SMS, NOW - timedelta(hours=1)),))
    assert reasons(scoped, elsewhere, here) == {"e": None, "h": R.FREQUENCY_CAP}


def test_quiet_hours_delay_the_send_or_suppress_when_the_campaign_ends_first() -> None:
    evening = QuietHours(start=TimeOfDay(17), end=TimeOfDay(9), time_zone="Asia/Shanghai")
    quiet = Plan(**{**PLAN.__dict__, "quiet_hours": evening})
    [eligible] = funnel.run(quiet, [reachable("q")], now=NOW).eligible
    assert eligible.not_before_at == datetime(2026, 3, 3, 1, 0, tzinfo=UTC), "09:00 next morning in Shanghai"
    ending = Plan(**{**quiet.__dict__, "ends_at": NOW + timedelta(hours=2)})
    assert reasons(ending, reachable("q")) == {"q": R.QUIET_HOURS}


def test_quiet_hours_in_the_customers_zone_delay_each_zone_to_its_own_morning_in_one_run() -> None:
    # 10:00 UTC: 18:00 in Shanghai and 19:00 in Tokyo (quiet from 17:00), 10:00 in London (not quiet).
    evening = Plan(**{**PLAN.__dict__, "quiet_hours": QuietHours(start=TimeOfDay(17), end=TimeOfDay(9))})
    zones = {"sh-1": "Asia/Shanghai", "tk": "Asia/Tokyo", "sh-2": "Asia/Shanghai", "ldn": "Europe/London"}
    result = funnel.run(evening, [reachable(c, time_zone=zone) for c, zone in zones.items()], now=NOW)
    sends = {e.customer_id: e.not_before_at for e in result.eligible}
    assert sends == {"sh-1": datetime(2026, 3, 3, 1, 0, tzinfo=UTC), "sh-2": datetime(2026, 3, 3, 1, 0, tzinfo=UTC),
                     "tk": datetime(2026, 3, 3, 0, 0, tzinfo=UTC), "ldn": None}


def test_channel_choice_follows_preference_then_campaign_order() -> None:
    [preferred] = funnel.run(PLAN, [reachable("p", preferred_channel=APP)], now=NOW).eligible
    assert (preferred.channel, preferred.channel_reason) == (APP, ChannelChoiceReason.PREFERENCE)
    fixed = Plan(**{**PLAN.__dict__, "strategy": ChannelStrategy.FIXED_ORDER})
    [first] = funnel.run(fixed, [reachable("p", preferred_channel=APP)], now=NOW).eligible
    assert (first.channel, first.channel_reason, first.template_id) == (SMS, ChannelChoiceReason.FIXED_ORDER,
                                                                        "sms-1")


def test_three_managers_marketing_one_customer_get_one_offer_to_them() -> None:
    """Two other running campaigns (two relationship managers' offers) already queued for the
    customer: the best score wins, the losers learn who won."""
    weaker = Rival("rm-wang", "card", score=1_000.0, sent=False, dispatch_id="d-wang")
    stronger = Rival("rm-li", "gold", score=1_000_000.0, sent=False, dispatch_id="d-li")
    lost = funnel.run(PLAN, [reachable("shared", rivals=(weaker, stronger))], now=NOW)
    [loser] = lost.suppressed
    assert (loser.reason, loser.error.metadata) == (  # type: ignore[union-attr]
        R.ARBITRATION_LOST, {"winner_offer": "campaigns/rm-li/offers/gold"})
    assert lost.displaced == [] and lost.collisions == 1
    won = funnel.run(PLAN, [reachable("shared", rivals=(weaker,))], now=NOW)
    assert [e.offer_id for e in won.eligible] == ["td-3y"]
    assert won.displaced == [("d-wang", "campaigns/spring/offers/td-3y")], "the weaker queued offer is withdrawn"
    sent_already = Rival("rm-zhao", "loan", score=1.0, sent=True)
    assert reasons(PLAN, reachable("shared", rivals=(sent_already,))) == {"shared": R.ARBITRATION_LOST}


def test_max_contacts_keeps_the_best_scoring_customers() -> None:
    capped = Plan(**{**PLAN.__dict__, "max_contacts": 1})
    affluent = reachable("rich", segments=frozenset({"segments/affluent"}))
    assert reasons(capped, reachable("plain"), affluent) == {"rich": None, "plain": R.MAX_CONTACTS}
