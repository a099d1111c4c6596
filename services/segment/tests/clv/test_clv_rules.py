"""The CLV rules' invariants on generated input, and the errors bad input gets."""

from __future__ import annotations

import math
import multiprocessing
import random
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_segment.clv import rules
from crm_segment.clv.model import BgNbdParameters, CustomerSummary, GammaGammaParameters, TimeUnit, Transaction

START, END = date(2024, 1, 1), date(2024, 6, 30)
PERIOD = {"calibration_start": START, "calibration_end": END}
BGNBD = BgNbdParameters(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, customers=0)
GAMMA_GAMMA = GammaGammaParameters(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0, customers=0)

transactions_strategy = st.lists(st.builds(
    Transaction,
    customer_id=st.sampled_from(["a", "b", "c", "d"]),
    day=st.dates(min_value=START - timedelta(days=30), max_value=END + timedelta(days=30)),
    amount=st.floats(min_value=0, max_value=1000, allow_nan=False),
), max_size=40)


@st.composite
def customers(draw: st.DrawFn) -> CustomerSummary:
    age = draw(st.floats(min_value=0, max_value=100))
    frequency = draw(st.integers(min_value=0, max_value=60)) if age > 0 else 0
    recency = draw(st.floats(min_value=min(age, 1e-3), max_value=age)) if frequency else 0.0
    return CustomerSummary("c", frequency, recency, age, draw(st.floats(min_value=1, max_value=500)))


# Away from a = 1, where the conditional expectation's (a-1) cancels and loses its digits.
bgnbd_parameters = st.builds(
    BgNbdParameters, r=st.floats(0.05, 5), alpha=st.floats(0.5, 50),
    a=st.one_of(st.floats(0.1, 0.95), st.floats(1.05, 5)), b=st.floats(0.5, 10),
    log_likelihood=st.just(0.0), customers=st.just(0))


@given(transactions_strategy)
def test_summary_counts_customer_days_in_the_period(transactions: list[Transaction]) -> None:
    summaries = rules.summarise(transactions, unit=TimeUnit.DAYS, **PERIOD)
    by_customer: defaultdict[str, defaultdict[date, float]] = defaultdict(lambda: defaultdict(float))
    for t in transactions:
        if START <= t.day <= END:
            by_customer[t.customer_id][t.day] += t.amount
    assert [s.customer_id for s in summaries] == sorted(by_customer)
    for summary in summaries:
        days = sorted(by_customer[summary.customer_id])
        assert summary.frequency == len(days) - 1
        assert summary.recency == (days[-1] - days[0]).days
        assert summary.age == (END - days[0]).days
        assert 0 <= summary.recency <= summary.age
        repeat_spend = sum(by_customer[summary.customer_id][day] for day in days[1:])
        assert summary.monetary_value * summary.frequency == pytest.approx(repeat_spend)


@given(transactions_strategy, st.randoms(use_true_random=False))
def test_summary_ignores_order_and_scales_with_the_unit(transactions: list[Transaction], rng: random.Random) -> None:
    in_days = rules.summarise(transactions, unit=TimeUnit.DAYS, **PERIOD)
    shuffled = rng.sample(transactions, len(transactions))
    in_weeks = rules.summarise(shuffled, unit=TimeUnit.WEEKS, **PERIOD)
    assert [(d.customer_id, d.frequency) for d in in_days] == [(w.customer_id, w.frequency) for w in in_weeks]
    for d, w in zip(in_days, in_weeks, strict=True):
        assert (d.recency, d.age) == pytest.approx((w.recency * 7, w.age * 7))
        assert d.monetary_value == pytest.approx(w.monetary_value)


@settings(max_examples=200)
@given(bgnbd_parameters, customers())
def test_probability_alive_is_a_probability(params: BgNbdParameters, customer: CustomerSummary) -> None:
    alive = rules.probability_alive(params, customer)
    assert 0 <= alive <= 1
    if customer.frequency == 0:
        assert alive == 1  # the model only lets a customer drop out right after a purchase


@settings(max_examples=200)
@given(bgnbd_parameters, customers(), st.floats(0.1, 100), st.floats(0.1, 100))
def test_expected_purchases_grow_with_the_horizon(
    params: BgNbdParameters, customer: CustomerSummary, horizon: float, more: float,
) -> None:
    shorter = rules.expected_purchases(params, customer, horizon=horizon)
    longer = rules.expected_purchases(params, customer, horizon=horizon + more)
    assert math.isfinite(longer)
    assert 0 < shorter < longer


@settings(max_examples=100)
@given(customers(), st.floats(0, 0.5), st.floats(0.001, 0.5), st.integers(1, 24))
def test_clv_falls_as_the_discount_rate_rises(
    customer: CustomerSummary, rate: float, increase: float, periods: int,
) -> None:
    def value(discount_rate: float) -> float:
        [result] = rules.customer_values([customer], BGNBD, GAMMA_GAMMA, horizon=52, periods=periods,
                                         discount_rate=discount_rate)
        return result.clv

    assert 0 < value(rate + increase) < value(rate)
    [undiscounted] = rules.customer_values([customer], BGNBD, GAMMA_GAMMA, horizon=52, periods=periods,
                                           discount_rate=0)
    assert undiscounted.clv == pytest.approx(undiscounted.expected_purchases * undiscounted.expected_spend)


# --- bad input --------------------------------------------------------------------------------

REPEATER = CustomerSummary("r", frequency=3, recency=20.0, age=30.0, monetary_value=25.0)
NEWCOMER = CustomerSummary("n", frequency=0, recency=0.0, age=30.0, monetary_value=0.0)


def test_fits_need_enough_customers() -> None:
    with pytest.raises(ValueError, match="summaries must hold at least 10 customers"):
        rules.fit_bgnbd([REPEATER] * 9)
    with pytest.raises(ValueError, match="summaries must include customers with repeat transactions"):
        rules.fit_bgnbd([NEWCOMER] * 20)
    with pytest.raises(ValueError, match="summaries must hold at least 10 customers with repeat transactions"):
        rules.fit_gamma_gamma([REPEATER] * 9 + [NEWCOMER] * 20 + [replace(REPEATER, monetary_value=0.0)])


@pytest.mark.parametrize(("summary", "rule"), [
    (replace(REPEATER, recency=31.0), r"summaries\[3\]\.recency must be between 0 and age"),
    (replace(REPEATER, recency=0.0), r"summaries\[3\]\.recency must be > 0 when frequency > 0"),
    (replace(REPEATER, frequency=-1), r"summaries\[3\]\.frequency must be a whole number >= 0"),
    (replace(REPEATER, age=math.inf), r"summaries\[3\]\.age must be a finite number >= 0"),
    (replace(REPEATER, monetary_value=math.nan), r"summaries\[3\]\.monetary_value must be a finite number >= 0"),
])
def test_a_bad_summary_is_named(summary: CustomerSummary, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        rules.fit_bgnbd([REPEATER] * 3 + [summary] + [REPEATER] * 10)


@pytest.mark.parametrize(("arguments", "rule"), [
    ({"horizon": 0}, "horizon must be a finite number > 0"),
    ({"horizon": -5}, "horizon must be a finite number > 0"),
    ({"horizon": math.nan}, "horizon must be a finite number > 0"),
    ({"periods": 0}, "periods must be a whole number >= 1"),
    ({"periods": 2.5}, "periods must be a whole number >= 1"),
    ({"discount_rate": -0.01}, "discount_rate must be a finite number >= 0"),
    ({"discount_rate": math.inf}, "discount_rate must be a finite number >= 0"),
])
def test_bad_valuation_arguments_are_named(arguments: dict[str, float], rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        rules.customer_values([REPEATER], BGNBD, GAMMA_GAMMA, **{"horizon": 52, "periods": 12, "discount_rate": 0.01,
                                                                 **arguments})
    if "horizon" in arguments:
        with pytest.raises(ValueError, match=rule):
            rules.expected_purchases(BGNBD, REPEATER, horizon=arguments["horizon"])


def test_an_infinite_mean_spend_is_refused() -> None:
    with pytest.raises(ValueError, match=r"gamma_gamma\.q must be > 1"):
        rules.expected_spend(replace(GAMMA_GAMMA, q=0.9), REPEATER)


def test_bad_transactions_and_periods_are_named() -> None:
    with pytest.raises(ValueError, match=r"transactions\[1\]\.amount must be a finite number >= 0"):
        rules.summarise([Transaction("a", START, 1.0), Transaction("a", START, -1.0)], unit=TimeUnit.DAYS, **PERIOD)
    with pytest.raises(ValueError, match="calibration_end must not be before calibration_start"):
        rules.summarise([], calibration_start=END, calibration_end=START, unit=TimeUnit.DAYS)
    with pytest.raises(ValueError, match="unit must be a TimeUnit"):
        rules.summarise([], unit=7, **PERIOD)  # type: ignore[arg-type]


def test_expected_purchases_are_continuous_where_the_hypergeometric_has_a_pole() -> None:
    # x = 0 and a + b = 1 put 2F1's third argument at 0; the expectation itself is smooth there.
    newcomer = CustomerSummary("n", frequency=0, recency=0.0, age=0.0, monetary_value=0.0)
    at_pole = rules.expected_purchases(BgNbdParameters(0.05, 1.0, 0.5, 0.5, 0.0, 0), newcomer, horizon=1)
    beside = rules.expected_purchases(BgNbdParameters(0.05, 1.0, 0.5 + 1e-7, 0.5, 0.0, 0), newcomer, horizon=1)
    assert at_pole == pytest.approx(beside, rel=1e-6)


def simulated_customers(count: int, rng: random.Random) -> list[CustomerSummary]:
    """Customers drawn from the BG/NBD process itself (Poisson purchases while alive, a coin after
    each purchase for dropping out), with CDNOW-like parameters."""
    customers = []
    for i in range(count):
        rate, dropout, age = rng.gammavariate(0.25, 1 / 4.4), rng.betavariate(0.8, 2.4), rng.uniform(27, 39)
        purchases = []
        now = rng.expovariate(rate)
        while now < age and (not purchases or rng.random() > dropout):
            purchases.append(now)
            now += rng.expovariate(rate)
        customers.append(CustomerSummary(str(i), len(purchases), purchases[-1] if purchases else 0.0, age,
                                         rng.uniform(10, 50) if purchases else 0.0))
    return customers


def test_the_fit_runs_in_a_spawn_worker() -> None:
    # The service hands these functions to spawn workers: arguments, function and result must pickle.
    summaries = simulated_customers(500, random.Random(7))
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        in_worker = pool.submit(rules.fit_bgnbd, summaries).result(timeout=120)
    assert in_worker == rules.fit_bgnbd(summaries)
