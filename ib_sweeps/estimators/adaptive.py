"""Adaptive binning of the information plane, in bits.

Chelombiev, Houghton & O'Donnell (ICLR 2019), "Adaptive estimators show
information compression in deep neural networks": fixed bins over a fixed range
waste resolution on unbounded (ReLU) or saturating layers, so the bins adapt
to the activity being measured. Two strategies, ``n_bins`` bins each:

* ``quantile``: per unit, equal-mass bins: each holds about n / n_bins of the
  inputs (tied values always share a bin);
* ``layer_range``: equal-width bins spanning the layer's own [min, max] at the
  measured epoch (the maximum falls in the top bin).

Then, as for fixed binning, I(X;T) = H(T) and I(Y;T) = H(T) - H(T|Y) with
plug-in entropies of the binned rows (X uniform over the distinct inputs).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import Estimator, check_activity, check_pair
from ib_sweeps.estimators.binning import MAX_BINS


class AdaptiveBinning(Estimator):
    """Plug-in entropies of adaptively binned activity (``n_bins`` bins, ``strategy``)."""

    method: Literal["adaptive_binning"] = "adaptive_binning"
    n_bins: int = Field(default=30, ge=2, le=MAX_BINS, strict=True)
    strategy: Literal["quantile", "layer_range"] = "quantile"

    def codes(self, activity: np.ndarray) -> np.ndarray:
        """Integer bin codes 0..n_bins-1, same shape as ``activity`` (n, d)."""
        a = np.asarray(activity, dtype=np.float64)
        if self.strategy == "layer_range":
            lo, hi = a.min(), a.max()
            if hi == lo:
                return np.zeros(a.shape, dtype=np.int64)
            return np.minimum(((a - lo) * (self.n_bins / (hi - lo))).astype(np.int64), self.n_bins - 1)
        n = len(a)
        codes = np.empty(a.shape, dtype=np.int64)
        for j in range(a.shape[1]):  # rank of the first of equal values, so ties share a bin
            col = a[:, j]
            codes[:, j] = np.searchsorted(np.sort(col), col, side="left") * self.n_bins // n
        return codes

    def _plane(self, a, y):
        """(I(X;T), I(Y;T)) in bits; see the module docstring."""
        table = discrete.joint_counts(discrete.dense_ids(discrete.row_keys(self.codes(a))), discrete.dense_ids(y))
        h_t = discrete.entropy_of_counts(table.sum(axis=1))
        h_y = discrete.entropy_of_counts(table.sum(axis=0))
        return h_t, max(0.0, h_t + h_y - discrete.entropy_of_counts(table))

    def _group_information(self, activity, groups) -> float:
        """Plug-in I(G; bin(T)) in bits, as ``_plane``'s I(Y;T), in O(n) memory for any number of groups."""
        t = discrete.dense_ids(discrete.row_keys(self.codes(activity)))
        return discrete.mutual_information(t, discrete.dense_ids(groups))

    def entropy(self, samples) -> float:
        """Plug-in entropy H(bin(samples)) in bits; ``samples``: (n, d)."""
        a, _ = check_activity(samples)
        return discrete.entropy(discrete.dense_ids(discrete.row_keys(self.codes(a))))

    def mutual_information(self, a, b) -> float:
        """Plug-in I(bin(a); bin(b)) in bits; ``a``: (n, d_a), ``b``: (n, d_b)."""
        a, b = check_pair(a, b)
        ids = [discrete.dense_ids(discrete.row_keys(self.codes(x))) for x in (a, b)]
        return discrete.mutual_information(*ids)
