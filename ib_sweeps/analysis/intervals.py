"""Confidence intervals (Wilson, Welch, bootstrap): they live with the claims that use them, :mod:`ib_sweeps.claims.intervals`."""  # noqa: E501

from ib_sweeps.claims.intervals import bootstrap_mean, welch, wilson

__all__ = ["bootstrap_mean", "welch", "wilson"]
