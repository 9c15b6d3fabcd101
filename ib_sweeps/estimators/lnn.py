"""Local-Gaussian ("lnn") entropy and mutual-information estimators, in bits.

Gao, Oh & Viswanath (2016), "Breaking the bandwidth barrier: Geometrical
adaptive entropy estimation", NIPS. For each sample x_i a Gaussian is fitted by
local likelihood (Hjort & Jones 1996; degree-2 log-polynomial) with a Gaussian
kernel whose bandwidth h_i is the distance to the k-th nearest neighbour. With
z_j = (x_j - x_i) / h_i and w_j = exp(-|z_j|^2 / 2) over all j != i, the
closed-form solution evaluated at x_i is

    f(x_i) = S0 / ((n - 1) (2 pi)^(d/2) h_i^d |Sigma|^(1/2)) * exp(-mu' Sigma^-1 mu / 2),
    S0 = sum_j w_j,  mu = sum_j w_j z_j / S0,  Sigma = sum_j w_j z_j z_j' / S0 - mu mu',

and h = -(1/n) sum_i ln f(x_i) + B, converted to bits. ``mutual_information``
is the paper's 3H estimator I(A;B) = h(A) + h(B) - h(A,B), clipped at 0.

Decisions (measured accuracy: docs/explanation/estimators.md and docs/results.md):

* All other samples enter the local fit with their kernel weights, as in the
  paper; no truncation to the nearest neighbours. A truncation to ~30 neighbours
  (the authors' reference code) is harmless in 1-D but breaks the estimator from
  about 3-D on: the kernel is then far wider than the truncation radius, the fit
  only sees a ball and its bias is no longer that of the paper (0.7 bits at 5-D).
* Bias correction B = E[ln f(X) - ln p(X)] (so h is -mean ln f + B), which the
  paper shows tends to a constant B_{k,d} independent of the density as n grows.
  It is measured by Monte Carlo on standard-normal samples of the same size n
  (``bias_correction``: fixed seed, 2**14 points unless n < 256, cached per
  (k, d, n)), so it also absorbs the finite-sample bias, which dominates in
  high d (10-D, n = 256: -0.17 nats; n >= 4096: under 0.03 nats for d <= 10).
  In 1-3 D the values agree, within Monte Carlo error (~0.008 nats), with
  B_{k,d} simulated directly in the Poisson-process limit of the paper's proof
  (``tests/test_lnn.py`` checks d = 2).
* Sigma is symmetric positive semi-definite by construction; its eigenvalues (in
  the frame centred at x_i and scaled by h_i, where an isotropic neighbourhood
  gives Sigma ~ I) are floored at 1e-10, so a degenerate local covariance (data
  on a lower-dimensional set, exact ties) yields a large finite density instead
  of a failure (h_i is likewise floored at 1e-100 x the data range). Small k
  is unstable: with k < 5 in 1-D, a few points whose neighbours lie on one side
  give huge mu' Sigma^-1 mu; the default is k = 5.
* Ties are broken by a tiny Gaussian jitter (``jitter`` x the mean absolute
  value, from ``seed``), as in ``ksg``; results are deterministic given the seed.

``information_plane``: I(X;T) is, as in ``ksg``, the entropy of the distinct
activity rows (T is a function of X, one row per input). I(Y;T) = h(T) -
sum_y p(y) h(T | Y = y) with lnn entropies, after dropping columns that are
constant over all inputs (they change no mutual information), clipped to
[0, H(Y)]. As in ``ksg``, classes with a single input are left out (with their
input), and k is capped at n_y - 1 within a class of n_y inputs. A class with
fewer than d + 2 inputs has a rank-deficient local covariance: the eigenvalue
floor makes its h(T | y) very low, only partly offset by a calibration at the
same (k, d, n_y), so such classes (and the pooled I(X;T) over windows of
W < d + 2 epochs) read as nearly fully informative: lnn cannot resolve them.

Cost: the k-th neighbour distances come from ``scipy.spatial.cKDTree``
(O(n log n)); the weighted moments over all pairs cost O(n^2 d^2) time (in
chunks of about 2**18 numbers of memory) plus an O(d^3) eigendecomposition per
sample. The first call for a new (k, d, n) also pays for the calibration,
ceil(2**14 / n) (at most 64) estimates of that size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.spatial import cKDTree

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import MAX_NEIGHBOURS, JitteredEstimator, check_activity, check_pair

LN2 = np.log(2.0)
EIGEN_FLOOR = 1e-10  # smallest local-covariance eigenvalue, in units of h_i^2
CALIBRATION_POINTS = 2**14
CALIBRATION_SEED = 2016
_CHUNK = 2**18  # numbers per (rows, n, d) block of scaled differences


class LNN(JitteredEstimator):
    """Local-Gaussian entropy (Gao, Oh & Viswanath 2016) and its 3H mutual information."""

    method: Literal["lnn"] = "lnn"
    k: int = Field(default=5, ge=1, le=MAX_NEIGHBOURS, strict=True)

    def _check_size(self, x: np.ndarray) -> None:
        if len(x) < min_samples(self.k, x.shape[1]):
            raise ValueError(
                f"need at least max(k + 1, d + 2) = {min_samples(self.k, x.shape[1])} samples; got {len(x)}"
            )

    def entropy(self, samples) -> float:
        """Differential entropy h in bits of ``samples`` (n, d)."""
        x, _ = check_activity(samples)
        self._check_size(x)
        return entropy_nats(self._jittered(x, np.random.default_rng(self.seed)), self.k) / LN2

    def mutual_information(self, a, b) -> float:
        """3H estimate h(A) + h(B) - h(A,B) of I(A;B) in bits for ``a`` (n, d_a) and ``b`` (n, d_b), clipped at 0."""
        a, b = check_pair(a, b)
        self._check_size(np.hstack([a, b]))
        rng = np.random.default_rng(self.seed)
        a, b = self._jittered(a, rng), self._jittered(b, rng)
        mi = entropy_nats(a, self.k) + entropy_nats(b, self.k) - entropy_nats(np.hstack([a, b]), self.k)
        return float(max(0.0, mi) / LN2)

    def _plane(self, a, y):
        """(I(X;T), I(Y;T)) in bits; see the module docstring."""
        bits = (np.ascontiguousarray(a, dtype=np.float64) + 0.0).view(np.int64)  # + 0.0 maps -0.0 to 0.0
        h_t = discrete.entropy(discrete.dense_ids(discrete.row_keys(bits)))  # distinct rows, exactly
        if h_t == 0.0:  # constant activity carries no information
            return 0.0, 0.0
        varying = a[:, np.ptp(a, axis=0) > 0]
        t = self._jittered(varying, np.random.default_rng(self.seed))
        return h_t, self._label_information(t, y)

    def _label_information(self, t: np.ndarray, y: np.ndarray) -> float:
        """I(Y;T) = h(T) - sum_y p(y) h(T | y) in bits; single-input classes are left out."""
        labels, counts = np.unique(y, return_counts=True)
        labels, counts = labels[counts > 1], counts[counts > 1]
        if len(labels) < 2:
            return 0.0
        keep = np.isin(y, labels)
        t, y = t[keep], y[keep]
        parts = zip(labels, counts, strict=True)
        conditional = sum(c * entropy_nats(t[y == label], min(self.k, c - 1)) for label, c in parts)
        mi = (entropy_nats(t, self.k) - conditional / len(t)) / LN2
        return float(np.clip(mi, 0.0, discrete.entropy_of_counts(counts)))


def min_samples(k: int, d: int) -> int:
    """Fewest samples with a k-th neighbour and a full-rank local covariance in d dimensions."""
    return max(k + 1, d + 2)


def entropy_nats(x: np.ndarray, k: int) -> float:
    """lnn differential entropy in nats of float samples ``x`` (n, d), n > k (see ``min_samples``)."""
    n, d = x.shape
    return float(-np.mean(log_density(x, k)) + bias_correction(k, d, n))


@lru_cache(maxsize=512)
def bias_correction(k: int, d: int, n: int) -> float:
    """B = E[ln f(X) - ln p(X)] in nats for n standard-normal samples in d dimensions.

    Averaged over ceil(2**14 / n) samples (at most 64) drawn with a fixed seed,
    so it is a deterministic function of (k, d, n).
    """
    rng = np.random.default_rng(CALIBRATION_SEED)
    repeats = min(64, -(-CALIBRATION_POINTS // n))
    gaps = []
    for _ in range(repeats):
        x = rng.standard_normal((n, d))
        log_p = -0.5 * np.einsum("nd,nd->n", x, x) - 0.5 * d * np.log(2 * np.pi)
        gaps.append(np.mean(log_density(x, k) - log_p))
    return float(np.mean(gaps))


def log_density(x: np.ndarray, k: int) -> np.ndarray:
    """ln f(x_i) (n,) of the local-Gaussian fit at each sample, from all the other samples."""
    n, d = x.shape
    h = cKDTree(x).query(x, k=k + 1)[0][:, k]  # the 0-th neighbour is the point itself
    h = np.maximum(h, 1e-100 * max(float(np.ptp(x)), 1.0))  # exact ties (jitter = 0): huge, finite z
    out = np.empty(n)
    rows = max(1, _CHUNK // (n * d))
    for start in range(0, n, rows):
        i = np.arange(start, min(n, start + rows))
        z = (x[None, :, :] - x[i, None, :]) / h[i, None, None]  # (rows, n, d), centred at x_i, scaled by h_i
        w = np.exp(-0.5 * np.einsum("rnd,rnd->rn", z, z))
        w[np.arange(len(i)), i] = 0.0  # leave x_i out
        s0 = w.sum(axis=1)
        mu = np.einsum("rn,rnd->rd", w, z) / s0[:, None]
        sigma = np.matmul(z.transpose(0, 2, 1), w[:, :, None] * z) / s0[:, None, None]
        sigma -= mu[:, :, None] * mu[:, None, :]
        eigval, eigvec = np.linalg.eigh(sigma)
        eigval = np.maximum(eigval, EIGEN_FLOOR)
        quad = np.sum(np.einsum("rdj,rd->rj", eigvec, mu) ** 2 / eigval, axis=1)
        out[i] = (
            np.log(s0 / (n - 1))
            - 0.5 * d * np.log(2 * np.pi)
            - d * np.log(h[i])
            - 0.5 * np.sum(np.log(eigval), axis=1)
            - 0.5 * quad
        )
    return out
