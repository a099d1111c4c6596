"""Observed response rates (rates.rules): smoothing with the Beta prior, the hierarchy offer ->
offer type -> bank-wide default, and channel rates by offer type."""

from __future__ import annotations

import pytest

from crm_campaign.rates.rules import Counts, ObservedRates, Prior, Tally, best_channel, observed, smoothed

SMS, APP, EMAIL = 1, 2, 3
PRIOR = Prior(rate=0.05, weight=20)


def tally(offer_id: str, channel: int, contacts: int, accepted: int, *, offer_type: str = "loan",
          campaign_id: str = "k1") -> Tally:
    return Tally(campaign_id=campaign_id, offer_id=offer_id, offer_type=offer_type, channel=channel,
                 contacts=contacts, accepted=accepted)


def test_smoothing_is_the_beta_posterior_mean() -> None:
    assert smoothed(Counts(0, 0), centre=0.05, weight=20) == pytest.approx(0.05), "no data: the centre"
    assert smoothed(Counts(3, 0), centre=0.05, weight=20) == pytest.approx(1 / 23), "0 of 3 is not 0"
    assert smoothed(Counts(3, 3), centre=0.05, weight=20) == pytest.approx(4 / 23), "3 of 3 is far from 1"
    # A large sample outweighs the prior.
    assert smoothed(Counts(10_000, 3_000), centre=0.05, weight=20) == pytest.approx(0.2996, abs=1e-4)


def test_an_offer_shrinks_to_its_type_and_the_type_to_the_bank_wide_default() -> None:
    rates = observed([tally("a", SMS, 180, 36), tally("a", APP, 20, 4), tally("b", SMS, 3, 0)], PRIOR)
    assert rates.type_rate("loan") == pytest.approx((40 + 1) / (203 + 20))
    type_rate = rates.type_rate("loan")
    assert rates.offer_rate("k1", "a", "loan") == pytest.approx((40 + 20 * type_rate) / (200 + 20))
    assert rates.offer_rate("k1", "b", "loan") == pytest.approx((0 + 20 * type_rate) / (3 + 20))
    assert rates.offer_rate("k1", "new", "loan") == pytest.approx(type_rate), "a new offer starts at its type's"
    assert rates.offer_rate("k1", "new", "card") == pytest.approx(0.05), "a new type starts at the default"
    # The same offer id in another campaign is another offer.
    assert rates.offer_rate("k2", "a", "loan") == pytest.approx(type_rate)


def test_an_offer_without_a_type_shrinks_to_the_default_and_is_pooled_with_no_other() -> None:
    rates = observed([tally("x", SMS, 100, 50, offer_type=""), tally("y", SMS, 100, 0, offer_type="")], PRIOR)
    assert rates.offer_rate("k1", "x", "") == pytest.approx((50 + 1) / 120)
    assert rates.offer_rate("k1", "y", "") == pytest.approx(1 / 120)
    assert rates.channel_rates("", [SMS, APP]) == {}, "no type, no like offers to choose a channel by"


def test_channel_rates_of_a_type_and_the_best_channel() -> None:
    rates = observed([tally("a", SMS, 400, 8), tally("b", APP, 100, 20)], PRIOR)
    by_channel = rates.channel_rates("loan", [SMS, APP, EMAIL])
    centre = rates.type_rate("loan")
    assert by_channel[SMS] == pytest.approx((8 + 20 * centre) / 420)
    assert by_channel[APP] == pytest.approx((20 + 20 * centre) / 120)
    assert by_channel[EMAIL] == pytest.approx(centre), "a channel never used sits at the type's rate"
    assert best_channel([SMS, APP, EMAIL], by_channel) == APP
    assert rates.channel_rates("loan", [EMAIL]) == {}, "nothing observed on these channels: no choice by rate"
    assert rates.channel_rates("card", [SMS, APP]) == {}
    assert best_channel([SMS, APP], {}) is None
    assert best_channel([APP, SMS], {SMS: 0.1, APP: 0.1}) == APP, "a tie keeps the campaign's order"


def test_no_observations_give_the_default_everywhere() -> None:
    empty = ObservedRates()
    assert empty.offer_rate("k", "o", "loan") == empty.type_rate("loan") == 0.05


@pytest.mark.parametrize(("rate", "weight"), [(0.0, 20), (1.0, 20), (0.05, 0)])
def test_a_prior_outside_its_range_is_refused(rate: float, weight: float) -> None:
    with pytest.raises(ValueError, match=r"prior weight|default response rate"):
        Prior(rate=rate, weight=weight)
