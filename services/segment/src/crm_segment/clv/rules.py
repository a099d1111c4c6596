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
from collections.abc import Callable, Mapping, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt
from scipy import optimize, special  # type: ignore[import-untyped]  # no stubs: scipy-stubs is not in the lock

from crm_segment.clv.model import (
    BgNbdParameters,
    CustomerSummary,
    CustomerValue,
    DaySummary,
    FitJob,
    FitResult,
    FitSettings,
    GammaGammaParameters,
    HoldoutResult,
    TimeUnit,
    Transaction,
)
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

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


def fit_bgnbd(summaries: Sequence[CustomerSummary], *, penalizer: float = 0.0) -> BgNbdParameters:
    """BG/NBD parameters by maximum likelihood over all of `summaries`; `penalizer` > 0 adds an
    L2 penalty `penalizer * sum(parameter^2)` to the negative log-likelihood."""
    if len(summaries) < MIN_BGNBD_CUSTOMERS:
        raise ValueError(f"summaries must hold at least {MIN_BGNBD_CUSTOMERS} customers, got {len(summaries)}")
    x, t_x, age, _ = _columns(summaries)
    if not (x > 0).any():
        raise ValueError("summaries must include customers with repeat transactions (frequency > 0)")
    # Customers with the same (x, t_x, T) share a likelihood term: count them once, weighted.
    distinct, weights = np.unique(np.column_stack([x, t_x, age]), axis=0, return_counts=True)
    columns = (distinct[:, 0], distinct[:, 1], distinct[:, 2])

    def negative(log_params: Array) -> float:
        return -float(weights @ _bgnbd_log_likelihoods(log_params, *columns)) + _penalty(log_params, penalizer)

    log_params, _ = _maximise(negative, start=np.zeros(4), model="BG/NBD")
    log_likelihood = float(weights @ _bgnbd_log_likelihoods(log_params, *columns))
    r, alpha, a, b = np.exp(log_params)
    return BgNbdParameters(r=float(r), alpha=float(alpha), a=float(a), b=float(b),
                           log_likelihood=log_likelihood, customers=len(summaries))


def _penalty(log_params: Array, penalizer: float) -> float:
    return penalizer * float(np.sum(np.exp(log_params) ** 2)) if penalizer else 0.0


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


def fit_gamma_gamma(summaries: Sequence[CustomerSummary], *, penalizer: float = 0.0) -> GammaGammaParameters:
    """Gamma-Gamma parameters by maximum likelihood over the customers with repeat transactions
    worth more than 0 (the others carry no spend a Gamma can describe); `customers` counts those."""
    x, _, _, m = _columns(summaries)
    used = (x > 0) & (m > 0)
    if int(used.sum()) < MIN_GAMMA_GAMMA_CUSTOMERS:
        raise ValueError(f"summaries must hold at least {MIN_GAMMA_GAMMA_CUSTOMERS} customers with repeat "
                         f"transactions worth more than 0, got {int(used.sum())}")
    x, m = x[used], m[used]

    def negative(log_params: Array) -> float:
        return -float(_gamma_gamma_log_likelihoods(log_params, x, m).sum()) + _penalty(log_params, penalizer)

    log_params, _ = _maximise(negative, start=np.zeros(3), model="Gamma-Gamma")
    log_likelihood = float(_gamma_gamma_log_likelihoods(log_params, x, m).sum())
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


# --- the service's decisions ------------------------------------------------------------------

DAYS_PER_MONTH = 365.25 / 12
MAX_DISPLAY_NAME = 100
MIN_CALIBRATION_DAYS = 180
MIN_HOLDOUT_DAYS, MAX_HOLDOUT_DAYS = 30, 730
MIN_HORIZON_DAYS, MAX_HORIZON_DAYS = 30, 3650
DEFAULT_HORIZON_DAYS = 365
DEFAULT_DISCOUNT_RATE = 0.08
# The horizon the classification's `expected_lifetime_value` (and the potential tier) use.
CLASSIFICATION_HORIZON_DAYS = 3 * 365


def summary_of(day_summary: DaySummary, *, end: date, unit: TimeUnit) -> CustomerSummary:
    """The model's summary of a customer from their per-day totals up to `end` (what `summarise`
    makes from the transactions themselves)."""
    s = day_summary
    repeat = s.days - 1
    return CustomerSummary(
        customer_id=s.customer_id, frequency=repeat,
        recency=(s.last_day - s.first_day).days / unit.days, age=(end - s.first_day).days / unit.days,
        monetary_value=(s.total - s.first_amount) / repeat if repeat else 0.0)


def fit(job: FitJob) -> FitResult:
    """Both models on the job's summaries: a top-level function for a spawn worker. A fit that
    cannot be made raises FailedPrecondition (the operation fails with it)."""
    try:
        bgnbd = fit_bgnbd(job.summaries, penalizer=job.penalizer)
        gamma_gamma = fit_gamma_gamma(job.summaries, penalizer=job.penalizer)
    except ValueError as error:
        raise FailedPrecondition(f"the lifetime-value model cannot be fitted: {error}",
                                 reason="LTV_FIT_FAILED") from None
    repeat = [s for s in job.summaries if s.frequency > 0 and s.monetary_value > 0]
    x = np.array([s.frequency for s in repeat], dtype=np.float64)
    m = np.array([s.monetary_value for s in repeat], dtype=np.float64)
    correlation = float(np.corrcoef(x, m)[0, 1]) if len(repeat) > 1 and x.std() > 0 and m.std() > 0 else 0.0
    return FitResult(bgnbd=bgnbd, gamma_gamma=gamma_gamma, frequency_value_correlation=correlation)


def values_over(summaries: Sequence[CustomerSummary], result: FitResult, *, unit: TimeUnit, horizon_days: int,
                annual_discount_rate: float) -> list[CustomerValue]:
    """Each customer's value over `horizon_days` from the end of their summary, discounted
    monthly at `annual_discount_rate` (the contract's CustomerLifetimeValue)."""
    periods = max(1, round(horizon_days / DAYS_PER_MONTH))
    monthly = (1 + annual_discount_rate) ** (1 / 12) - 1
    return customer_values(summaries, result.bgnbd, result.gamma_gamma, horizon=horizon_days / unit.days,
                           periods=periods, discount_rate=monthly)


def holdout(summaries: Sequence[CustomerSummary], actual: Mapping[str, int], result: FitResult, *,
            holdout_days: int, unit: TimeUnit) -> HoldoutResult:
    """Predicted against actual repeat transactions of the calibration customers in the holdout."""
    x, t_x, age, _ = _columns(summaries)
    predicted = _expected_purchases(result.bgnbd, x, t_x, age, holdout_days / unit.days)
    made = np.array([actual.get(s.customer_id, 0) for s in summaries], dtype=np.float64)
    return HoldoutResult(predicted=float(predicted.sum()), actual=int(made.sum()),
                         mean_absolute_error=float(np.abs(predicted - made).mean()) if len(made) else 0.0)


def check_fit(*, display_name: str, calibration: tuple[date | None, date | None],
              holdout: tuple[date | None, date | None] | None, unit_days: int | None, population_segment_id: str,
              penalizer: float, horizon_days: float | None, annual_discount_rate: float | None, today: date,
              violations: Violations) -> FitSettings:
    """A fit request's settings; every bad field is added to `violations` (the caller raises)."""
    v = violations
    if v.check(1 <= len(display_name) <= MAX_DISPLAY_NAME, "display_name",
               f"is required: 1 to {MAX_DISPLAY_NAME} characters"):
        v.text(display_name, "display_name")
    start, end = calibration
    calibration_given = v.check(start is not None and end is not None, "calibration_period",
                                "is required with both start_time and end_time")
    if not calibration_given:
        start = end = today
    assert start is not None and end is not None
    v.check(not calibration_given or (end - start).days >= MIN_CALIBRATION_DAYS, "calibration_period",
            f"must be at least {MIN_CALIBRATION_DAYS} days long")
    v.check(end <= today, "calibration_period.end_time", "must not be in the future")
    holdout_start = holdout_end = None
    if holdout is not None:
        holdout_start, holdout_end = holdout
        if v.check(holdout_start is not None and holdout_end is not None, "holdout_period",
                   "must have both start_time and end_time when set"):
            assert holdout_start is not None and holdout_end is not None
            v.check(not calibration_given or holdout_start == end, "holdout_period.start_time",
                    "must be calibration_period.end_time")
            v.check(MIN_HOLDOUT_DAYS <= (holdout_end - holdout_start).days <= MAX_HOLDOUT_DAYS, "holdout_period",
                    f"must be {MIN_HOLDOUT_DAYS} to {MAX_HOLDOUT_DAYS} days long")
            v.check(holdout_end <= today, "holdout_period.end_time", "must not be in the future")
    v.check(unit_days in (None, 1, 7), "time_unit", "must be 1 day or 7 days")
    v.check(0 <= penalizer <= 1 and math.isfinite(penalizer), "penalizer_coefficient", "must be 0 to 1")
    horizon = check_horizon(horizon_days, "horizon", v) or DEFAULT_HORIZON_DAYS
    rate = check_discount_rate(annual_discount_rate, "annual_discount_rate", v)
    return FitSettings(display_name=display_name, calibration_start=start, calibration_end=end,
                       holdout_start=holdout_start, holdout_end=holdout_end,
                       unit=TimeUnit.DAYS if unit_days == 1 else TimeUnit.WEEKS,
                       population_segment_id=population_segment_id, penalizer=penalizer, horizon_days=horizon,
                       annual_discount_rate=DEFAULT_DISCOUNT_RATE if rate is None else rate)


def check_horizon(days: float | None, field: str, v: Violations) -> int | None:
    """A horizon in whole days (None when unset)."""
    if days is None:
        return None
    if v.check(days == int(days) and MIN_HORIZON_DAYS <= days <= MAX_HORIZON_DAYS, field,
               f"must be {MIN_HORIZON_DAYS} to {MAX_HORIZON_DAYS} whole days"):
        return int(days)
    return None


def check_discount_rate(rate: float | None, field: str, v: Violations) -> float | None:
    if rate is None:
        return None
    return rate if v.check(math.isfinite(rate) and 0 <= rate <= 1, field, "must be a fraction 0 to 1") else None
