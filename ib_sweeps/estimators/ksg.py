"""k-nearest-neighbour estimators, in bits: KSG and its continuous-discrete form.

* ``mutual_information(a, b)``: Kraskov, Stögbauer & Grassberger (2004),
  "Estimating mutual information", algorithm 1, with the max-norm:
  I = psi(k) + psi(n) - < psi(n_a + 1) + psi(n_b + 1) >, where eps_i is the
  distance to the k-th neighbour in the joint space and n_a, n_b count the
  points strictly closer than eps_i in each marginal space.
* I(Y;T) of ``information_plane``: Ross (2014), "Mutual information between
  discrete and continuous data sets": I = psi(n) - < psi(N_y) > + psi(k) - < psi(m) >,
  with the k-th neighbour searched among the same label and m counting all points
  within that distance (as scikit-learn's ``mutual_info_classif``).
* I(X;T) of ``information_plane``: with one row per input, T is a function of X
  and I(X;T) = H(T), the entropy of the distinct activity rows (log2 n when all
  differ). A kNN estimate adds nothing here: for a deterministic network
  I(X;T) is either this or infinite (Goldfeld et al. 2019).
* pooled estimates (``pooled_information_plane``, W epochs): I(X;T) is the
  Ross estimate with the input as the discrete variable (k capped at W - 1
  within an input's W rows), clipped at log2 n; W = 1 stays the entropy above.
* ``entropy``: Kozachenko-Leonenko with the max-norm, h = psi(n) - psi(k) + d < log(2 eps) >.

All neighbour searches use ``scipy.spatial.cKDTree``: O(n log n). Ties (exactly
equal values, e.g. saturated units) break the estimators, so a tiny Gaussian
jitter (``jitter`` x the mean absolute value, from ``seed``) is added first, as
scikit-learn does; results are deterministic given the seed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.spatial import cKDTree
from scipy.special import digamma

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import MAX_NEIGHBOURS, JitteredEstimator, check_activity, check_pair

LN2 = np.log(2.0)


class KSG(JitteredEstimator):
    """KSG (continuous pairs) and Ross (continuous-discrete) kNN estimators."""

    method: Literal["ksg"] = "ksg"
    k: int = Field(default=3, ge=1, le=MAX_NEIGHBOURS, strict=True)

    def _plane(self, a, y):
        """(I(X;T), I(Y;T)) in bits; see the module docstring."""
        bits = (np.ascontiguousarray(a, dtype=np.float64) + 0.0).view(np.int64)  # + 0.0 maps -0.0 to 0.0
        h_t = discrete.entropy(discrete.dense_ids(discrete.row_keys(bits)))  # distinct rows, exactly
        if h_t == 0.0:  # constant activity carries no information
            return 0.0, 0.0
        t = self._jittered(a, np.random.default_rng(self.seed))
        return h_t, max(0.0, _ross(t, y, self.k)) / LN2

    def mutual_information(self, a, b) -> float:
        """KSG estimate of I(A;B) in bits for continuous ``a`` (n, d_a) and ``b`` (n, d_b), clipped at 0."""
        a, b = check_pair(a, b)
        if len(a) <= self.k:
            raise ValueError(f"need more than k = {self.k} samples; got {len(a)}")
        rng = np.random.default_rng(self.seed)
        a, b = self._jittered(a, rng), self._jittered(b, rng)
        eps = cKDTree(np.hstack([a, b])).query(np.hstack([a, b]), k=self.k + 1, p=np.inf)[0][:, -1]
        radius = np.nextafter(eps, 0)  # strictly closer than eps
        n_a = cKDTree(a).query_ball_point(a, radius, p=np.inf, return_length=True) - 1
        n_b = cKDTree(b).query_ball_point(b, radius, p=np.inf, return_length=True) - 1
        mi = digamma(self.k) + digamma(len(a)) - np.mean(digamma(n_a + 1) + digamma(n_b + 1))
        return float(max(0.0, mi) / LN2)

    def entropy(self, samples) -> float:
        """Kozachenko-Leonenko differential entropy h in bits (max-norm) of ``samples`` (n, d)."""
        x, _ = check_activity(samples)
        if len(x) <= self.k:
            raise ValueError(f"need more than k = {self.k} samples; got {len(x)}")
        x = self._jittered(x, np.random.default_rng(self.seed))
        eps = cKDTree(x).query(x, k=self.k + 1, p=np.inf)[0][:, -1]
        h = digamma(len(x)) - digamma(self.k) + x.shape[1] * np.mean(np.log(2 * eps))
        return float(h / LN2)


def _ross(t: np.ndarray, y: np.ndarray, k: int) -> float:
    """Ross (2014) I(T;Y) in nats for continuous ``t`` (n, d) and int labels ``y``; singleton labels are skipped."""
    n = len(t)
    radius, k_used, n_label = np.zeros(n), np.zeros(n), np.zeros(n)
    order = np.argsort(y, kind="stable")  # each label's rows in their original order: O(n log n) for many labels
    bounds = np.flatnonzero(np.diff(y[order])) + 1
    for rows in np.split(order, bounds):
        count = len(rows)
        n_label[rows] = count
        if count > 1:
            kk = min(k, count - 1)
            d = cKDTree(t[rows]).query(t[rows], k=kk + 1, p=np.inf)[0][:, -1]
            radius[rows], k_used[rows] = np.nextafter(d, 0), kk
    keep = n_label > 1
    if not keep.any():
        return 0.0
    m = cKDTree(t).query_ball_point(t[keep], radius[keep], p=np.inf, return_length=True)
    n_kept = int(keep.sum())
    return float(
        digamma(n_kept) + np.mean(digamma(k_used[keep])) - np.mean(digamma(n_label[keep])) - np.mean(digamma(m))
    )
