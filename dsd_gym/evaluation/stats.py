"""Means and 95 % confidence intervals over seeds (Student t).

The interval of a mean over ``n`` seeds is ``mean ± t(0.975, n − 1) · s / √n`` with ``s`` the sample
standard deviation (ddof = 1): the seeds are independent replications, and ``n`` is small (a handful
of seeds), which is where the normal quantile 1.96 would be too narrow. One seed has no interval.

>>> round(t_quantile_975(4), 4)
2.7764
>>> mean_ci([10.0, 12.0, 14.0])
(12.0, 4.968...)

A ratio of means over paired seeds (a policy and a reference on the same seeds, common random
numbers) has the delta-method interval ``R ± t(0.975, n − 1) · s_d / (√n · ȳ)``, with ``R = x̄ / ȳ`` and
``s_d`` the sample standard deviation of ``d_i = x_i − R·y_i``: the pairing cancels what the seeds
share (the workload, the acceptance paths), so it is much narrower than the two means' intervals.

>>> ratio_ci([11.0, 12.0, 13.0], [10.0, 12.0, 14.0])
(1.0, 0.207...)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence


def _two_sided_cdf(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df``: the closed forms of Abramowitz & Stegun 26.7.3-4."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # 2/π (θ + sin θ cos θ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + ... up to cos^(df−3)θ))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(3, df - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + s * math.cos(theta) * total)
    term = total = 1.0  # sin θ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ... up to cos^(df−2)θ)
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


@functools.lru_cache(maxsize=256)
def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (bisection on the exact CDF).

    What ``scipy.stats.t.ppf(0.975, df)`` returns, without scipy as a dependency for one number.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1; got {df}")
    low, high = 0.0, 64.0  # t(0.975, 1) = 12.7 is the largest
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if _two_sided_cdf(mid, df) < 0.95:
            low = mid
        else:
            high = mid
    return high


def mean_ci(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, half-width of the 95 % interval); (None, None) for no values, (mean, None) for one."""
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t_quantile_975(n - 1) * math.sqrt(var / n)


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """The mean of the values that exist (a seed may have no completed request); None if none does."""
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def ratio_ci(values: Sequence[float], references: Sequence[float]) -> tuple[float | None, float | None]:
    """(ratio of means, half-width of its 95 % interval) over paired seeds: ``values[i]`` and
    ``references[i]`` ran on the same seed. (None, None) without pairs or with a zero reference mean;
    (ratio, None) for one pair."""
    n = len(values)
    if n != len(references):
        raise ValueError(f"paired seeds: {n} values against {len(references)} references")
    reference = math.fsum(references) / n if n else 0.0
    if reference <= 0.0:
        return None, None
    ratio = math.fsum(values) / n / reference
    if n == 1:
        return ratio, None
    residuals = [v - ratio * r for v, r in zip(values, references, strict=True)]
    var = math.fsum(d * d for d in residuals) / (n - 1)  # the residuals' mean is 0 by construction
    return ratio, t_quantile_975(n - 1) * math.sqrt(var / n) / reference


def capped_geomean(ratios: Sequence[float]) -> float:
    """exp(mean log min(r, 1)): the geometric mean of ratios capped at 1, so a gain on one scenario
    does not pay for a shortfall on another (the score of a floor; ``wc_dnn.floor``, ``pick``)."""
    if not ratios or min(ratios) <= 0.0:
        raise ValueError(f"capped_geomean needs positive ratios, got {list(ratios)}")
    return math.exp(math.fsum(math.log(min(r, 1.0)) for r in ratios) / len(ratios))
