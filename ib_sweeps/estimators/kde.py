"""KDE (pairwise-distance) bounds on the entropy of a Gaussian mixture, in bits.

Each layer's activity is taken as the centres of a mixture of n Gaussians with
covariance ``noise_variance`` * I (the "noisy" representation T = h(X) + Z of
Saxe et al. 2018, following Kolchinsky & Tracey 2017, "Estimating mixture
entropy with pairwise distances", and Kolchinsky, Tracey & Wolpert 2019).
With D_ij = ||t_i - t_j||^2 and sigma^2 the variance:

* upper (KL):          H(T) <= H(T|X) - (1/n) sum_i log (1/n) sum_j exp(-D_ij / (2 sigma^2))
* lower (Bhattacharyya): H(T) >= H(T|X) - (1/n) sum_i log (1/n) sum_j exp(-D_ij / (8 sigma^2)),
  i.e. the KL form at 4 sigma^2 plus (d/2) log(1/4)

with H(T|X) = (d/2) log(2 pi e sigma^2), the entropy of the added noise.
I(X;T) = H(T) - H(T|X); I(Y;T) = H(T) - sum_y p(y) H(T|Y=y), each class term the
same bound over that class's centres (as in the Saxe et al. code). H(T|X)
cancels in both, so neither depends on it.

Distances are computed once per layer in row blocks (memory ~ block x n floats),
each block of the symmetric matrix is used for its rows and its columns, and
the class-conditional sums come from the same blocks (inputs sorted by class).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ib_sweeps.estimators.base import Estimator, check_activity
from ib_sweeps.types import PositiveFloat

LN2 = np.log(2.0)


def kernel_row_sums(t: np.ndarray, scale: float, groups: np.ndarray | None = None, block: int = 1024):
    """Row sums of K_ij = exp(-scale * ||t_i - t_j||^2), all j and same-group j.

    ``t``: (n, d) float64, rows sorted by ``groups`` (int (n,), or None for one
    group). Returns (total (n,), within_group (n,)). Memory: two block x n arrays.
    """
    n = len(t)
    groups = np.zeros(n, dtype=np.int64) if groups is None else groups
    bounds = np.flatnonzero(np.diff(groups)) + 1
    starts, stops = np.concatenate(([0], bounds)), np.concatenate((bounds, [n]))
    sq = np.einsum("ij,ij->i", t, t)
    total, within = np.zeros(n), np.zeros(n)
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        for c0 in range(r0, n, block):  # upper triangle of blocks: symmetric kernel
            c1 = min(c0 + block, n)
            k = t[r0:r1] @ t[c0:c1].T
            k *= 2.0
            k -= sq[r0:r1, None]
            k -= sq[None, c0:c1]
            np.minimum(k, 0.0, out=k)  # -D_ij, clipped: rounding can make it slightly positive
            k *= scale
            np.exp(k, out=k)
            _accumulate(k, r0, c0, total, within, starts, stops, mirror=c0 != r0)
    return total, within


def _accumulate(k, r0, c0, total, within, starts, stops, mirror: bool):
    r1, c1 = r0 + k.shape[0], c0 + k.shape[1]
    total[r0:r1] += k.sum(axis=1)
    if mirror:
        total[c0:c1] += k.sum(axis=0)
    lo = np.searchsorted(stops, max(r0, c0), side="right")  # only groups meeting both the rows and the columns
    hi = np.searchsorted(starts, min(r1, c1), side="left")
    for s, e in zip(starts[lo:hi], stops[lo:hi], strict=True):  # same-group rectangle of this block
        rs, re, cs, ce = max(s, r0), min(e, r1), max(s, c0), min(e, c1)
        if rs < re and cs < ce:
            sub = k[rs - r0 : re - r0, cs - c0 : ce - c0]
            within[rs:re] += sub.sum(axis=1)
            if mirror:
                within[cs:ce] += sub.sum(axis=0)


class _KDE(Estimator):
    noise_variance: PositiveFloat = 1e-3  # Saxe et al.: 1e-3 for the 12-bit net, 1e-1 for MNIST
    block: int = Field(default=1024, ge=16, strict=True)  # rows per distance block (memory ~ 16 * block * n bytes)

    def _scale(self) -> float:
        raise NotImplementedError

    def _plane(self, a, y):
        """(I(X;T), I(Y;T)) in bits of the noisy layer T = activity + N(0, noise_variance I)."""
        order = np.argsort(y, kind="stable")
        t, y = np.asarray(a, dtype=np.float64)[order], y[order]
        total, within = kernel_row_sums(t, self._scale(), y, self.block)
        counts = np.bincount(np.unique(y, return_inverse=True)[1].ravel())
        n_class = np.repeat(counts[counts > 0], counts[counts > 0])
        h_t = -np.mean(np.log(total / len(t)))  # H(T) - H(T|X), nats
        h_t_given_y = -np.mean(np.log(within / n_class))  # H(T|Y) - H(T|X), nats
        return float(max(0.0, h_t) / LN2), float(max(0.0, h_t - h_t_given_y) / LN2)

    def entropy(self, samples) -> float:
        """The bound on h(T + Z) in bits for centres ``samples`` (n, d), Z ~ N(0, noise_variance I)."""
        a, _ = check_activity(samples)
        d = a.shape[1]
        total, _ = kernel_row_sums(np.asarray(a, dtype=np.float64), self._scale(), None, self.block)
        h_noise = 0.5 * d * np.log(2 * np.pi * np.e * self.noise_variance)
        return float((h_noise - np.mean(np.log(total / len(a))) + self._offset(d)) / LN2)

    def _offset(self, d: int) -> float:
        return 0.0


class KDEUpper(_KDE):
    """Kolchinsky & Tracey KL upper bound (Saxe et al.'s ``kde_upper``)."""

    method: Literal["kde_upper"] = "kde_upper"

    def _scale(self) -> float:
        return 1.0 / (2.0 * self.noise_variance)


class KDELower(_KDE):
    """Kolchinsky & Tracey Bhattacharyya lower bound (Saxe et al.'s ``kde_lower``)."""

    method: Literal["kde_lower"] = "kde_lower"

    def _scale(self) -> float:
        return 1.0 / (8.0 * self.noise_variance)
