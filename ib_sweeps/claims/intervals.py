"""Confidence intervals the verdicts use (scipy.stats): Wilson, Welch, bootstrap; their edge cases."""

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


def bootstrap_mean(values, confidence: float = 0.95, seed: int = 0, n_resamples: int = 2000):
    """(mean, low, high): percentile bootstrap interval of the mean (a point for one or constant values)."""
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
