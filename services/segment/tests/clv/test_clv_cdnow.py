"""BG/NBD and Gamma-Gamma on the CDNOW 1/10th sample reproduce the published fits.

References: Fader, Hardie & Lee (2005), "Counting your customers the easy way" (BG/NBD on weeks
1-39: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9,582.4); Fader & Hardie (2013), "The
Gamma-Gamma model of monetary value" (946 repeat customers: p = 6.25, q = 3.74, gamma = 15.44);
Fader & Hardie, "Implementing the BG/NBD model for customer base analysis in Excel" (a customer
with x = 2, t_x = 30.43, T = 38.86 is expected to buy 1.226 times in the next 39 weeks).
"""

from __future__ import annotations

from datetime import date

import pytest

from crm_segment.clv import rules
from crm_segment.clv.model import BgNbdParameters, CustomerSummary, GammaGammaParameters, TimeUnit, Transaction
from crmkit.testing import shared_data_dir

CALIBRATION = {"calibration_start": date(1997, 1, 1), "calibration_end": date(1997, 9, 30)}


@pytest.fixture(scope="module")
def summaries() -> list[CustomerSummary]:
    path = shared_data_dir("CDNOW_sample.txt") / "CDNOW_sample.txt"
    transactions = []
    for line in path.read_text().splitlines():
        # master id, sample id, yyyymmdd, number of CDs, dollars
        master_id, _, day, _, dollars = line.split()
        transactions.append(Transaction(master_id, date(int(day[:4]), int(day[4:6]), int(day[6:])), float(dollars)))
    return rules.summarise(transactions, unit=TimeUnit.WEEKS, **CALIBRATION)


@pytest.fixture(scope="module")
def bgnbd(summaries: list[CustomerSummary]) -> BgNbdParameters:
    return rules.fit_bgnbd(summaries)


@pytest.fixture(scope="module")
def gamma_gamma(summaries: list[CustomerSummary]) -> GammaGammaParameters:
    return rules.fit_gamma_gamma(summaries)


def test_the_calibration_summary_is_the_papers(summaries: list[CustomerSummary]) -> None:
    assert len(summaries) == 2357
    assert sum(s.frequency > 0 for s in summaries) == 946
    first_day_customer = next(s for s in summaries if s.customer_id == "00004")  # first bought on 1 January
    assert first_day_customer.age == pytest.approx(272 / 7)


def test_bgnbd_reproduces_the_published_parameters_and_likelihood(bgnbd: BgNbdParameters) -> None:
    assert bgnbd.r == pytest.approx(0.243, rel=0.01)
    assert bgnbd.alpha == pytest.approx(4.414, rel=0.01)
    assert bgnbd.a == pytest.approx(0.793, rel=0.01)
    assert bgnbd.b == pytest.approx(2.426, rel=0.01)
    assert bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert bgnbd.customers == 2357


def test_the_maximum_is_a_maximum(bgnbd: BgNbdParameters, summaries: list[CustomerSummary]) -> None:
    assert rules.bgnbd_log_likelihood(bgnbd, summaries) == pytest.approx(bgnbd.log_likelihood)
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.99, 1.01):
            moved = BgNbdParameters(**{**bgnbd.__dict__, name: getattr(bgnbd, name) * factor})
            assert rules.bgnbd_log_likelihood(moved, summaries) < bgnbd.log_likelihood


def test_conditional_expectation_matches_the_excel_note(bgnbd: BgNbdParameters) -> None:
    customer = CustomerSummary("c", frequency=2, recency=30.43, age=38.86, monetary_value=0.0)
    assert rules.expected_purchases(bgnbd, customer, horizon=39) == pytest.approx(1.226, abs=0.001)


def test_gamma_gamma_reproduces_the_published_parameters(gamma_gamma: GammaGammaParameters) -> None:
    # The note gives two decimals; the fit on these data agrees to within rounding.
    assert gamma_gamma.p == pytest.approx(6.25, rel=0.005)
    assert gamma_gamma.q == pytest.approx(3.74, rel=0.005)
    assert gamma_gamma.gamma == pytest.approx(15.44, rel=0.005)
    assert gamma_gamma.customers == 946


def test_expected_spend_is_positive_and_moves_towards_the_customers_own_mean_with_frequency(
    gamma_gamma: GammaGammaParameters,
) -> None:
    population_mean = gamma_gamma.p * gamma_gamma.gamma / (gamma_gamma.q - 1)
    for own_mean in (5.0, 120.0):
        spends = [rules.expected_spend(gamma_gamma, CustomerSummary("c", x, 1.0, 2.0, own_mean)) for x in range(1, 30)]
        assert all(s > 0 for s in spends)
        distances = [abs(s - own_mean) for s in spends]
        assert distances == sorted(distances, reverse=True)
        assert all(min(own_mean, population_mean) < s < max(own_mean, population_mean) for s in spends)
    assert rules.expected_spend(gamma_gamma, CustomerSummary("new", 0, 0.0, 2.0, 0.0)) == pytest.approx(
        population_mean)


def test_customer_values_over_the_validation_period(
    summaries: list[CustomerSummary], bgnbd: BgNbdParameters, gamma_gamma: GammaGammaParameters,
) -> None:
    values = rules.customer_values(summaries, bgnbd, gamma_gamma, horizon=39, periods=9, discount_rate=0.01)
    assert [v.customer_id for v in values] == [s.customer_id for s in summaries]
    assert all(0 <= v.probability_alive <= 1 and v.clv >= 0 for v in values)
    # Discounting only ever lowers the value below the undiscounted expected spend.
    assert all(v.clv <= v.expected_purchases * v.expected_spend + 1e-9 for v in values)
