"""The uplift interval against values worked out by hand and published ones."""

from __future__ import annotations

from math import sqrt

import pytest

from crm_campaign.results.stats import newcombe_interval, wilson_interval, z_for

Z95 = 1.959963984540054


def test_the_95_percent_quantile() -> None:
    assert z_for(0.95) == pytest.approx(Z95, abs=1e-12)
    assert z_for(0.90) == pytest.approx(1.644853627, abs=1e-9)


def test_wilson_interval_worked_by_hand() -> None:
    # 56/70: p = 0.8, z^2 = 3.841459; centre 2*56 + z^2 = 115.841459; spread z*sqrt(4*70*0.8*0.2 + z^2)
    # = 1.959964 * sqrt(48.641459) = 13.669562; denominator 2*(70 + z^2) = 147.682918.
    low, high = wilson_interval(56, 70)
    assert (low, high) == pytest.approx(((115.841459 - 13.669562) / 147.682918, (115.841459 + 13.669562) / 147.682918),
                                        abs=1e-6)
    assert (low, high) == pytest.approx((0.69183, 0.87695), abs=1e-5)


def test_wilson_interval_at_the_edges_stays_inside_0_and_1() -> None:
    # 0/10: centre = z^2, spread = z*sqrt(z^2) = z^2, so the low end is exactly 0; high = 2z^2 / 2(10 + z^2).
    assert wilson_interval(0, 10) == pytest.approx((0.0, Z95 ** 2 / (10 + Z95 ** 2)), abs=1e-12)
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + Z95 ** 2), 1.0), abs=1e-12)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II example: 56/70 - 48/80 = 0.2000,
    # method 10 (hybrid score): 0.0524 to 0.3339.
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_newcombe_worked_by_hand_for_campaign_sized_rates() -> None:
    # 60/1000 target vs 3/100 control, z^2 = 3.841459.
    # 60/1000: centre 120 + z^2 = 123.841459; spread z*sqrt(225.6 + z^2) = 29.688212; denominator 2007.682918.
    # 3/100: centre 6 + z^2 = 9.841459; spread z*sqrt(11.64 + z^2) = 7.711769; denominator 207.682918.
    low_1, high_1 = wilson_interval(60, 1000)
    low_2, high_2 = wilson_interval(3, 100)
    assert (low_1, high_1) == pytest.approx(((123.841459 - 29.688212) / 2007.682918,
                                             (123.841459 + 29.688212) / 2007.682918), abs=1e-8)
    assert (low_2, high_2) == pytest.approx(((9.841459 - 7.711769) / 207.682918,
                                             (9.841459 + 7.711769) / 207.682918), abs=1e-8)
    expected = (0.03 - sqrt((0.06 - low_1) ** 2 + (high_2 - 0.03) ** 2),
                0.03 + sqrt((high_1 - 0.06) ** 2 + (0.03 - low_2) ** 2))
    assert newcombe_interval(60, 1000, 3, 100) == pytest.approx(expected, abs=1e-12)
    # 0.03 -/+ sqrt(0.013104^2 + 0.054519^2) and sqrt(0.016471^2 + 0.019745^2): the interval spans 0.
    assert newcombe_interval(60, 1000, 3, 100) == pytest.approx((-0.026072, 0.055713), abs=1e-6)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="between 0 and the number of trials"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        z_for(1.0)
