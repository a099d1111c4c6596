"""The one offer-scoring function (audience.scoring) and the funnel's arbitration with it: a
model's probability replaces the observed response rate when the customer could be scored,
chooses the channel when the model reads it, and names the model on the decision."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_campaign.audience import funnel
from crm_campaign.audience.funnel import Candidate, OfferPlan, Plan, Rival
from crm_campaign.audience.rules import with_rates
from crm_campaign.audience.scoring import ANY_CHANNEL, Propensity, choose_channel, offer_score
from crm_campaign.campaigns.model import Channel, ChannelStrategy
from crm_campaign.dispatch.model import ChannelChoiceReason, SuppressionReason
from crm_campaign.rates.rules import ObservedRates, Prior, Tally, observed

NOW = datetime(2026, 12, 7, 10, tzinfo=UTC)
SMS, APP = int(Channel.SMS), int(Channel.MOBILE_APP)
BOTH = {SMS: ("sms-1", "h"), APP: ("app-1", "h")}
PREFERENCE = int(ChannelStrategy.PREFERENCE_AND_RESPONSE)
LOAN_MODEL = "propensityModels/loan/versions/3"


def offer(offer_id: str, *, value: int, offer_type: str = "", rate: float = 1.0) -> OfferPlan:
    return OfferPlan(offer_id=offer_id, priority=50, expected_value=Decimal(value), product_code="P", risk_level=1,
                     templates=BOTH, offer_type=offer_type, response_rate=rate)


def candidate(**fields: object) -> Candidate:
    return Candidate(customer_id="c1", consented_channels=frozenset({SMS, APP}),
                     reachable_channels=frozenset({SMS, APP}), unsuitable_offers=frozenset(), **fields)  # type: ignore[arg-type]


def plan(*offers: OfferPlan, strategy: int = PREFERENCE) -> Plan:
    return Plan(campaign_id="k", segment="segments/s", channels=(SMS, APP), strategy=strategy, offers=offers)


def test_without_a_model_the_observed_rate_scores_and_no_model_is_named() -> None:
    scored = offer_score(priority=50, expected_value=Decimal(100), response_rate=0.25, propensity=None,
                         channels=[SMS, APP], strategy=PREFERENCE, preferred=0)
    assert (scored.score, scored.probability, scored.model) == (50 * 100 * 0.25, 0.25, "")
    assert (scored.channel, scored.channel_reason) == (SMS, int(ChannelChoiceReason.FIXED_ORDER))


def test_a_model_reading_the_channel_chooses_it_and_gives_its_probability() -> None:
    loan = Propensity(LOAN_MODEL, {SMS: 0.1, APP: 0.6})
    scored = offer_score(priority=50, expected_value=Decimal(100), response_rate=1.0, propensity=loan,
                         channels=[SMS, APP], strategy=PREFERENCE, preferred=0)
    assert (scored.channel, scored.channel_reason) == (APP, int(ChannelChoiceReason.RESPONSE_PROPENSITY))
    assert (scored.score, scored.probability, scored.model) == (50 * 100 * 0.6, 0.6, LOAN_MODEL)
    # The customer's preference still comes first, scored at that channel's probability.
    preferred = offer_score(priority=50, expected_value=Decimal(100), response_rate=1.0, propensity=loan,
                            channels=[SMS, APP], strategy=PREFERENCE, preferred=SMS)
    assert (preferred.channel, preferred.probability) == (SMS, 0.1)
    # Unspecified is preference and response, as the contract says.
    assert choose_channel([SMS, APP], strategy=int(ChannelStrategy.UNSPECIFIED), preferred=APP) == (
        APP, int(ChannelChoiceReason.PREFERENCE))
    # A fixed channel order is kept whatever the model says.
    assert choose_channel([SMS, APP], strategy=int(ChannelStrategy.FIXED_ORDER), preferred=0,
                          propensity=loan) == (SMS, int(ChannelChoiceReason.FIXED_ORDER))


def test_a_model_not_reading_the_channel_scores_the_customer_once() -> None:
    deposit = Propensity("propensityModels/dep/versions/1", {ANY_CHANNEL: 0.3})
    scored = offer_score(priority=10, expected_value=Decimal(10), response_rate=1.0, propensity=deposit,
                         channels=[SMS, APP], strategy=PREFERENCE, preferred=0)
    assert (scored.channel, scored.channel_reason, scored.probability) == (
        SMS, int(ChannelChoiceReason.FIXED_ORDER), 0.3)


def test_the_funnel_picks_the_offer_the_model_expects_more_from_and_names_the_model() -> None:
    rules = plan(offer("deposit", value=100, offer_type="dep"), offer("loan", value=80, offer_type="loan"))
    fallback = funnel.run(rules, [candidate()], now=NOW)
    assert [(e.offer_id, e.propensity_model) for e in fallback.eligible] == [("deposit", "")]

    scored = candidate(propensities={"dep": Propensity("propensityModels/dep/versions/1", {ANY_CHANNEL: 0.1}),
                                     "loan": Propensity(LOAN_MODEL, {SMS: 0.2, APP: 0.7})})
    [chosen] = funnel.run(rules, [scored], now=NOW).eligible
    assert (chosen.offer_id, chosen.channel, chosen.propensity_model) == ("loan", APP, LOAN_MODEL)
    assert chosen.channel_reason == int(ChannelChoiceReason.RESPONSE_PROPENSITY)
    assert chosen.score == 50 * 80 * 0.7 and chosen.probability == 0.7


def test_a_rivals_stored_score_is_beaten_or_not_by_the_models_score() -> None:
    rules = plan(offer("loan", value=80, offer_type="loan"))
    rival = (Rival("other", "deposit", 50 * 100 * 0.2, sent=False, dispatch_id="d1"),)
    likely = candidate(rivals=rival, propensities={"loan": Propensity(LOAN_MODEL, {SMS: 0.3, APP: 0.6})})
    won = funnel.run(rules, [likely], now=NOW)
    assert [e.offer_id for e in won.eligible] == ["loan"] and won.displaced == [("d1", "campaigns/k/offers/loan")]
    unlikely = candidate(rivals=rival, propensities={"loan": Propensity(LOAN_MODEL, {SMS: 0.1, APP: 0.2})})
    lost = funnel.run(rules, [unlikely], now=NOW)
    assert [s.reason for s in lost.suppressed] == [SuppressionReason.ARBITRATION_LOST]
    # Another offer type's model does not score this offer: the observed rate does (1 here).
    stranger = candidate(rivals=rival, propensities={"card": Propensity("propensityModels/card/versions/1",
                                                                        {ANY_CHANNEL: 0.01})})
    assert [e.propensity_model for e in funnel.run(rules, [stranger], now=NOW).eligible] == [""]


def test_without_preference_or_a_channel_model_the_best_observed_channel_rate_chooses() -> None:
    rates = {SMS: 0.02, APP: 0.08}
    assert choose_channel([SMS, APP], strategy=PREFERENCE, preferred=0, channel_rates=rates) == (
        APP, int(ChannelChoiceReason.OBSERVED_RESPONSE_RATE))
    # The customer's preference comes first, a model reading the channel next, a fixed order always.
    assert choose_channel([SMS, APP], strategy=PREFERENCE, preferred=SMS, channel_rates=rates) == (
        SMS, int(ChannelChoiceReason.PREFERENCE))
    assert choose_channel([SMS, APP], strategy=PREFERENCE, preferred=0, channel_rates=rates,
                          propensity=Propensity(LOAN_MODEL, {SMS: 0.5, APP: 0.1})) == (
        SMS, int(ChannelChoiceReason.RESPONSE_PROPENSITY))
    assert choose_channel([SMS, APP], strategy=int(ChannelStrategy.FIXED_ORDER), preferred=0,
                          channel_rates=rates) == (SMS, int(ChannelChoiceReason.FIXED_ORDER))
    # Nothing observed: the campaign's order, said so.
    assert choose_channel([SMS, APP], strategy=PREFERENCE, preferred=0, channel_rates={}) == (
        SMS, int(ChannelChoiceReason.FIXED_ORDER))


def test_offers_without_models_rank_by_their_observed_response_history() -> None:
    history = observed([Tally("k", "good", "", SMS, 100, 30), Tally("k", "poor", "", SMS, 100, 2)], Prior())
    rules = with_rates(plan(offer("good", value=100), offer("poor", value=200)), history)
    [chosen] = funnel.run(rules, [candidate()], now=NOW).eligible
    good_rate = history.offer_rate("k", "good", "")
    assert (chosen.offer_id, chosen.probability, chosen.propensity_model) == ("good", good_rate, "")
    assert chosen.score == pytest.approx(50 * 100 * good_rate)
    # Without the history both sit at the default rate and the more valuable offer wins.
    [unmeasured] = funnel.run(with_rates(rules, ObservedRates()), [candidate()], now=NOW).eligible
    assert (unmeasured.offer_id, unmeasured.probability) == ("poor", 0.05)


def test_a_model_scored_offer_and_an_unscored_one_compare_as_probabilities() -> None:
    """The model's 30 % against an offer twice as valuable with no model, at the default 5 %: the
    model's offer wins (it expects 1500 against 500); with the old fallback of 1 it lost."""
    rules = with_rates(plan(offer("loan", value=100, offer_type="loan"), offer("card", value=200)), ObservedRates())
    scored = candidate(propensities={"loan": Propensity(LOAN_MODEL, {ANY_CHANNEL: 0.3})})
    [chosen] = funnel.run(rules, [scored], now=NOW).eligible
    assert (chosen.offer_id, chosen.score, chosen.propensity_model) == ("loan", pytest.approx(50 * 100 * 0.3),
                                                                        LOAN_MODEL)
    card = funnel.score_of(rules, rules.offers[1], scored, [SMS, APP])
    assert (card.probability, card.score) == (0.05, pytest.approx(50 * 200 * 0.05))


def test_the_offer_types_channel_rates_reach_the_funnels_channel_choice() -> None:
    history = observed([Tally("old", "o1", "loan", SMS, 200, 2), Tally("old", "o1", "loan", APP, 200, 40)], Prior())
    [chosen] = funnel.run(with_rates(plan(offer("new", value=100, offer_type="loan")), history), [candidate()],
                          now=NOW).eligible
    assert (chosen.channel, chosen.channel_reason) == (APP, int(ChannelChoiceReason.OBSERVED_RESPONSE_RATE))
    assert chosen.probability == pytest.approx(history.type_rate("loan")), "a new offer starts at its type's rate"
