"""Confidence intervals the verdicts use (scipy.stats): Wilson, Welch, t, expanded bootstrap; their edge cases.

Seeds are few (5 is common), so the interval of a mean over seeds is the
Student t interval (:func:`t_mean`), not the percentile bootstrap
(:func:`bootstrap_mean`): at n = 5 the percentile bootstrap of a normal mean
covers about 84 % at a nominal 95 % (it uses the plug-in standard deviation,
too small by sqrt((n - 1)/n), and normal instead of t quantiles), the t
interval 95 %. A statistic that must be resampled (Spearman's rho of
condition means in ``estimator_agreement``) uses Hesterberg's expanded
percentile bootstrap: each resampled mean's deviation is scaled by
:func:`expansion`, which makes a bootstrapped mean as wide as its t interval.
Coverage measured by simulation: ``benchmarks/coverage.py`` and
``docs/explanation/claims.md``.
"""

from __future__ import annotations

import math

import numpy as np


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the fraction k/n (``(nan, nan)`` for n = 0)."""
    from scipy.stats import binomtest

    if n == 0:
        return math.nan, math.nan
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def welch(a, b, confidence: float = 0.90) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): Welch t interval of the difference of means.

    Needs two or more values in each sample (else the bounds are NaN); when
    both samples are constant the difference is exact and the interval is that point.
    """
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    if a.var() == 0 and b.var() == 0:
        return diff, diff, diff
    ci = ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=confidence)
    return diff, float(ci.low), float(ci.high)


def t_mean(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student t interval of the mean over ``values`` (seeds).

    NaN bounds for fewer than two values (one seed says nothing about the
    spread); a point for constant values (no spread to widen it).
    """
    from scipy.stats import ttest_1samp

    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else math.nan
    if len(v) < 2:
        return mean, math.nan, math.nan
    if np.all(v == v[0]):
        return mean, mean, mean
    ci = ttest_1samp(v, mean).confidence_interval(confidence_level=confidence)
    return mean, float(ci.low), float(ci.high)


def expansion(n: int, confidence: float = 0.95) -> float:
    """Factor that widens bootstrap deviations of a mean of ``n`` values to the t interval's width.

    ``sqrt(n / (n - 1)) * t_{n-1}(q) / z(q)``, q = (1 + confidence) / 2: the
    plug-in standard deviation's bias and the t quantile's excess over the
    normal one (Hesterberg 2015, "What teachers should know about the
    bootstrap", The American Statistician 69(4), the expanded percentile
    interval). 1.58 at n = 5, 1.10 at n = 20; NaN below n = 2.
    """
    from scipy.stats import norm, t

    if n < 2:
        return math.nan
    q = 0.5 + confidence / 2
    return float(math.sqrt(n / (n - 1)) * t.ppf(q, n - 1) / norm.ppf(q))


def bootstrap_mean(values, confidence: float = 0.95, seed: int = 0, n_resamples: int = 2000):
    """(mean, low, high): percentile bootstrap interval of the mean (a point for one or constant values).

    Not used by the verdicts or the report: it undercovers at a few seeds
    (see the module docstring); kept to measure that (``benchmarks/coverage.py``).
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) == 1 or np.all(v == v[0]):
        return mean, mean, mean
    ci = bootstrap(
        (v,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile", rng=seed
    ).confidence_interval
    return mean, float(ci.low), float(ci.high)
