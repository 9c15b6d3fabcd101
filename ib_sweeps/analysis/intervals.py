"""Confidence intervals (Wilson, Welch, t, bootstrap), kept here for compatibility.

They live with the claims that use them: :mod:`ib_sweeps.claims.intervals`.
"""

from ib_sweeps.claims.intervals import bootstrap_mean, expansion, t_mean, welch, wilson

__all__ = ["bootstrap_mean", "expansion", "t_mean", "welch", "wilson"]
