"""Customer lifetime value, the pure part: summarise transactions, fit BG/NBD and Gamma-Gamma by
maximum likelihood, and value each customer.

Every function is top-level and takes and returns picklable values, so the service can run it in
a spawn worker (`crmkit.operations`); none does I/O. Bad input raises ValueError naming the
parameter and the rule.

Formulas (x = frequency, t_x = recency, T = age, m_x = mean repeat transaction value):

- BG/NBD log-likelihood of a customer (Fader, Hardie & Lee 2005, eq. 6):
  lgamma(r+x) - lgamma(r) + r ln alpha + ln B(a, b+x) - ln B(a, b)
  + ln[(alpha+T)^-(r+x) + [x > 0] a / (b+x-1) (alpha+t_x)^-(r+x)], the last term by log-sum-exp.
- Expected transactions in (T, T+t] (eq. 10):
  (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
  * P(alive).
- P(alive) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).
- Gamma-Gamma log-likelihood of a repeat customer (Fader & Hardie 2013, eq. 3):
  lgamma(px+q) - lgamma(px) - lgamma(q) + q ln gamma + (px-1) ln m_x + px ln x
  - (px+q) ln(gamma + m_x x).
- Expected transaction value: (gamma + m_x x) p / (px + q - 1), the population mean p gamma / (q-1)
  for a customer without repeat transactions.
- CLV over a horizon H cut into n equal periods of length L = H/n, at discount rate d per period:
  E[M] * sum_{k=1..n} (E[Y(kL)] - E[Y((k-1)L)]) / (1+d)^k, i.e. each period's expected
  transactions times the expected spend, discounted from the end of that period.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt
from scipy import optimize, special  # type: ignore[import-untyped]  # no stubs: scipy-stubs is not in the lock

from crm_segment.clv.model import (
    BgNbdParameters,
    CustomerSummary,
    CustomerValue,
    GammaGammaParameters,
    TimeUnit,
    Transaction,
)

Array = npt.NDArray[np.float64]

# Below these the likelihood is too flat for the fitted parameters to mean anything.
MIN_BGNBD_CUSTOMERS = 10
MIN_GAMMA_GAMMA_CUSTOMERS = 10


# --- summary ----------------------------------------------------------------------------------


def summarise(
    transactions: Sequence[Transaction], *, calibration_start: date, calibration_end: date, unit: TimeUnit,
) -> list[CustomerSummary]:
    """One summary per customer with a transaction in [calibration_start, calibration_end],
    sorted by customer id. Transactions outside the period are ignored; several on one day count
    as one, worth their sum. Age runs to `calibration_end` itself, so a customer who first bought
    on the first day of a 1 January - 30 September period has T = 272 days = 38.86 weeks."""
    if not isinstance(unit, TimeUnit):
        raise ValueError("unit must be a TimeUnit")
    if calibration_end < calibration_start:
        raise ValueError("calibration_end must not be before calibration_start")
    daily: defaultdict[str, defaultdict[int, float]] = defaultdict(lambda: defaultdict(float))
    for index, transaction in enumerate(transactions):
        if not (math.isfinite(transaction.amount) and transaction.amount >= 0):
            raise ValueError(f"transactions[{index}].amount must be a finite number >= 0")
        if calibration_start <= transaction.day <= calibration_end:
            daily[transaction.customer_id][transaction.day.toordinal()] += transaction.amount
    end = calibration_end.toordinal()
    summaries = []
    for customer_id in sorted(daily):
        by_day = daily[customer_id]
        days = sorted(by_day)
        first, last = days[0], days[-1]
        repeat = [by_day[day] for day in days[1:]]
        summaries.append(CustomerSummary(
            customer_id=customer_id,
            frequency=len(repeat),
            recency=(last - first) / unit.days,
            age=(end - first) / unit.days,
            monetary_value=sum(repeat) / len(repeat) if repeat else 0.0,
        ))
    return summaries


def _columns(summaries: Sequence[CustomerSummary]) -> tuple[Array, Array, Array, Array]:
    """(frequency, recency, age, monetary value) as arrays, each summary checked."""
    x = np.fromiter((s.frequency for s in summaries), dtype=np.float64, count=len(summaries))
    t_x = np.fromiter((s.recency for s in summaries), dtype=np.float64, count=len(summaries))
    age = np.fromiter((s.age for s in summaries), dtype=np.float64, count=len(summaries))
    m = np.fromiter((s.monetary_value for s in summaries), dtype=np.float64, count=len(summaries))
    checks = [
        ((x >= 0) & (x == np.floor(x)), "frequency must be a whole number >= 0"),
        (np.isfinite(age) & (age >= 0), "age must be a finite number >= 0"),
        (np.isfinite(t_x) & (t_x >= 0) & (t_x <= age), "recency must be between 0 and age"),
        ((x == 0) | (t_x > 0), "recency must be > 0 when frequency > 0"),
        (np.isfinite(m) & (m >= 0), "monetary_value must be a finite number >= 0"),
    ]
    for valid, rule in checks:
        if not valid.all():
            raise ValueError(f"summaries[{int(np.argmin(valid))}].{rule}")
    return x, t_x, age, m


# --- BG/NBD -----------------------------------------------------------------------------------


def _bgnbd_log_likelihoods(log_params: Array, x: Array, t_x: Array, age: Array) -> Array:
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.betaln(a, b + x) - special.betaln(a, b)
    a3 = -(r + x) * np.log(alpha + age)
    # b + x - 1 may be negative when x = 0; the term is absent then, so take any safe value.
    a4 = np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x)
    return np.asarray(a1 + a2 + np.logaddexp(a3, np.where(repeat, a4, -np.inf)), dtype=np.float64)


def bgnbd_log_likelihood(params: BgNbdParameters, summaries: Sequence[CustomerSummary]) -> float:
    """The BG/NBD log-likelihood of `summaries` under `params`."""
    x, t_x, age, _ = _columns(summaries)
    log_params = np.log([params.r, params.alpha, params.a, params.b])
    return float(_bgnbd_log_likelihoods(log_params, x, t_x, age).sum())


def fit_bgnbd(summaries: Sequence[CustomerSummary]) -> BgNbdParameters:
    """BG/NBD parameters by maximum likelihood over all of `summaries`."""
    if len(summaries) < MIN_BGNBD_CUSTOMERS:
        raise ValueError(f"summaries must hold at least {MIN_BGNBD_CUSTOMERS} customers, got {len(summaries)}")
    x, t_x, age, _ = _columns(summaries)
    if not (x > 0).any():
        raise ValueError("summaries must include customers with repeat transactions (frequency > 0)")
    # Customers with the same (x, t_x, T) share a likelihood term: count them once, weighted.
    distinct, weights = np.unique(np.column_stack([x, t_x, age]), axis=0, return_counts=True)
    columns = (distinct[:, 0], distinct[:, 1], distinct[:, 2])

    def negative(log_params: Array) -> float:
        return -float(weights @ _bgnbd_log_likelihoods(log_params, *columns))

    log_params, log_likelihood = _maximise(negative, start=np.zeros(4), model="BG/NBD")
    r, alpha, a, b = np.exp(log_params)
    return BgNbdParameters(r=float(r), alpha=float(alpha), a=float(a), b=float(b),
                           log_likelihood=log_likelihood, customers=len(summaries))


def _maximise(negative: Callable[[Array], float], *, start: Array, model: str) -> tuple[Array, float]:
    """Minimise a negative log-likelihood over log-parameters (so every parameter stays > 0):
    L-BFGS-B for the way there, Nelder-Mead to settle the last decimals that its finite-difference
    gradient leaves. Returns (log-parameters, log-likelihood)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        rough = optimize.minimize(negative, start, method="L-BFGS-B")
        fine = optimize.minimize(negative, rough.x, method="Nelder-Mead",
                                 options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20_000, "maxfev": 20_000})
    if not (fine.success and np.isfinite(fine.fun) and np.all(np.abs(fine.x) < 30)):
        raise ValueError(f"summaries: the {model} likelihood has no finite maximum here ({fine.message})")
    return np.asarray(fine.x, dtype=np.float64), -float(fine.fun)


def _alive_odds_log(params: BgNbdParameters, x: Array, t_x: Array, age: Array) -> Array:
    """ln of the odds of having dropped out: ln[a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)], -inf at x = 0."""
    repeat = x > 0
    log_odds = (math.log(params.a) - np.log(np.where(repeat, params.b + x - 1, 1.0))
                + (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + t_x)))
    return np.asarray(np.where(repeat, log_odds, -np.inf), dtype=np.float64)


def _probability_alive(params: BgNbdParameters, x: Array, t_x: Array, age: Array) -> Array:
    return np.asarray(special.expit(-_alive_odds_log(params, x, t_x, age)), dtype=np.float64)


def _expected_purchases(params: BgNbdParameters, x: Array, t_x: Array, age: Array, t: float) -> Array:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if t == 0:
        return np.zeros_like(x)
    shape = r + x
    z = t / (alpha + age + t)
    decay = np.exp(shape * (np.log(alpha + age) - np.log(alpha + age + t)))
    c = a + b + x - 1

    def scaled(c: Array) -> Array:
        return np.asarray(c * (1 - decay * special.hyp2f1(shape, b + x, c, z)), dtype=np.float64)

    # 2F1 has a pole at c = 0 (x = 0 and a + b = 1) that the factor c cancels: the product is
    # smooth in c, so take the mean of its values just either side there.
    at_pole = np.abs(c) < 1e-9
    product = scaled(np.where(at_pole, 1e-6, c))
    product = np.where(at_pole, (product + scaled(np.full_like(c, -1e-6))) / 2, product)
    return np.asarray(product / (a - 1) * _probability_alive(params, x, t_x, age), dtype=np.float64)


def probability_alive(params: BgNbdParameters, summary: CustomerSummary) -> float:
    """P(the customer is still active at the end of the calibration period)."""
    x, t_x, age, _ = _columns([summary])
    return float(_probability_alive(params, x, t_x, age)[0])


def expected_purchases(params: BgNbdParameters, summary: CustomerSummary, *, horizon: float) -> float:
    """Expected transactions in (T, T + horizon], horizon in the summary's time unit."""
    _check_horizon(horizon)
    x, t_x, age, _ = _columns([summary])
    return float(_expected_purchases(params, x, t_x, age, horizon)[0])


def _check_horizon(horizon: float) -> None:
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError("horizon must be a finite number > 0")


# --- Gamma-Gamma ------------------------------------------------------------------------------


def _gamma_gamma_log_likelihoods(log_params: Array, x: Array, m: Array) -> Array:
    p, q, gamma = np.exp(log_params)
    px = p * x
    return np.asarray(
        special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(gamma)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(gamma + m * x),
        dtype=np.float64)


def fit_gamma_gamma(summaries: Sequence[CustomerSummary]) -> GammaGammaParameters:
    """Gamma-Gamma parameters by maximum likelihood over the customers with repeat transactions
    worth more than 0 (the others carry no spend a Gamma can describe); `customers` counts those."""
    x, _, _, m = _columns(summaries)
    used = (x > 0) & (m > 0)
    if int(used.sum()) < MIN_GAMMA_GAMMA_CUSTOMERS:
        raise ValueError(f"summaries must hold at least {MIN_GAMMA_GAMMA_CUSTOMERS} customers with repeat "
                         f"transactions worth more than 0, got {int(used.sum())}")
    x, m = x[used], m[used]

    def negative(log_params: Array) -> float:
        return -float(_gamma_gamma_log_likelihoods(log_params, x, m).sum())

    log_params, log_likelihood = _maximise(negative, start=np.zeros(3), model="Gamma-Gamma")
    p, q, gamma = np.exp(log_params)
    return GammaGammaParameters(p=float(p), q=float(q), gamma=float(gamma), log_likelihood=log_likelihood,
                                customers=int(used.sum()))


def _expected_spend(params: GammaGammaParameters, x: Array, m: Array) -> Array:
    if params.q <= 1:
        raise ValueError("gamma_gamma.q must be > 1: the mean transaction value is infinite otherwise")
    return np.asarray((params.gamma + m * x) * params.p / (params.p * x + params.q - 1), dtype=np.float64)


def expected_spend(params: GammaGammaParameters, summary: CustomerSummary) -> float:
    """The customer's expected value per transaction."""
    x, _, _, m = _columns([summary])
    return float(_expected_spend(params, x, m)[0])


# --- value ------------------------------------------------------------------------------------


def customer_values(
    summaries: Sequence[CustomerSummary], bgnbd: BgNbdParameters, gamma_gamma: GammaGammaParameters, *,
    horizon: float, periods: int, discount_rate: float,
) -> list[CustomerValue]:
    """Each customer's expected transactions over `horizon`, P(alive), expected spend per
    transaction and CLV: the horizon cut into `periods` equal periods, discounted at
    `discount_rate` per period (formula in the module docstring)."""
    _check_horizon(horizon)
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise ValueError("periods must be a whole number >= 1")
    if not (math.isfinite(discount_rate) and discount_rate >= 0):
        raise ValueError("discount_rate must be a finite number >= 0")
    x, t_x, age, m = _columns(summaries)
    spend = _expected_spend(gamma_gamma, x, m)
    cumulative = [_expected_purchases(bgnbd, x, t_x, age, horizon * k / periods) for k in range(periods + 1)]
    discounted = np.zeros_like(x)
    for k in range(1, periods + 1):
        discounted += (cumulative[k] - cumulative[k - 1]) / (1 + discount_rate) ** k
    alive = _probability_alive(bgnbd, x, t_x, age)
    return [
        CustomerValue(customer_id=s.customer_id, expected_purchases=float(cumulative[-1][i]),
                      probability_alive=float(alive[i]), expected_spend=float(spend[i]),
                      clv=float(spend[i] * discounted[i]))
        for i, s in enumerate(summaries)
    ]
