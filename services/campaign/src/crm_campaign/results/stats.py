"""Interval estimates for campaign results. Pure arithmetic, no I/O.

The uplift of a campaign is the difference between two independent proportions (the target and
control groups' conversion rates). Its interval is Newcombe's hybrid score interval (method 10
of Newcombe 1998, Statistics in Medicine 17:873-890): each rate gets a Wilson score interval,
and the two are combined. Unlike the textbook Wald interval it stays inside [-1, 1] and keeps
its coverage for small groups and for rates near 0, which is where campaign conversion rates live.
"""

from __future__ import annotations

from math import sqrt
from statistics import NormalDist


def z_for(level: float) -> float:
    """The two-sided standard normal quantile for a confidence `level` (1.959964 for 0.95)."""
    if not 0 < level < 1:
        raise ValueError("the confidence level must lie strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion, without continuity correction."""
    if trials <= 0:
        raise ValueError("a proportion needs at least one trial")
    if not 0 <= successes <= trials:
        raise ValueError("successes must lie between 0 and the number of trials")
    z = z_for(level)
    p = successes / trials
    centre = 2 * trials * p + z * z
    spread = z * sqrt(4 * trials * p * (1 - p) + z * z)
    denominator = 2 * (trials + z * z)
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def newcombe_interval(successes_1: int, trials_1: int, successes_2: int, trials_2: int,
                      level: float = 0.95) -> tuple[float, float]:
    """Interval of p1 - p2 (Newcombe's hybrid score method)."""
    p1, p2 = successes_1 / trials_1, successes_2 / trials_2
    low_1, high_1 = wilson_interval(successes_1, trials_1, level)
    low_2, high_2 = wilson_interval(successes_2, trials_2, level)
    difference = p1 - p2
    return (difference - sqrt((p1 - low_1) ** 2 + (high_2 - p2) ** 2),
            difference + sqrt((high_1 - p1) ** 2 + (p2 - low_2) ** 2))
