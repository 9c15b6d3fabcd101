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
plug-in entropies of the binned rows (X uniform over the distinct inputs). All
layers of a measured epoch are binned in one vectorised pass.
"""

from __future__ import annotations

import itertools
import threading
from typing import Literal

import numpy as np
from pydantic import Field

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import Estimator, check_activity, check_pair
from ib_sweeps.estimators.binning import MAX_BINS

# Up to this many bins, quantile codes are counts of cut values below each value (n_bins - 1
# vectorised comparisons, int8 codes); beyond it, the per-unit rank search is cheaper.
_MAX_COMPARED_BINS = 64


class AdaptiveBinning(Estimator):
    """Plug-in entropies of adaptively binned activity (``n_bins`` bins, ``strategy``)."""

    method: Literal["adaptive_binning"] = "adaptive_binning"
    n_bins: int = Field(default=30, ge=2, le=MAX_BINS, strict=True)
    strategy: Literal["quantile", "layer_range"] = "quantile"

    def codes(self, activity: np.ndarray) -> np.ndarray:
        """Integer bin codes 0..n_bins-1, same shape as ``activity`` (n, d)."""
        return self._unit_codes([np.asarray(activity)])[0].T.astype(np.int64)

    def state_ids(self, activity: np.ndarray) -> np.ndarray:
        """Dense ids (n,) of the binned states (rows) of ``activity`` (n, d)."""
        return self._layer_ids([activity])[0]

    def _unit_codes(self, activities) -> tuple[np.ndarray, np.ndarray]:
        """Codes (total units, n), one row per unit of every layer, and the layers' row bounds."""
        n, bounds = len(activities[0]), np.cumsum([0, *[a.shape[1] for a in activities]])
        # Quantile codes only compare values, so float32 activity is ranked as it is (widening is exact).
        keep32 = self.strategy == "quantile" and all(a.dtype == np.float32 for a in activities)
        x = _scratch("values", (bounds[-1], n), np.float32 if keep32 else np.float64)
        for a, start, stop in zip(activities, bounds[:-1], bounds[1:], strict=True):
            x[start:stop] = a.T  # each unit's values contiguous
        if self.strategy == "layer_range":
            return _layer_range_codes(x, bounds, self.n_bins), bounds
        return _quantile_codes(x, self.n_bins), bounds

    def _layer_ids(self, activities) -> list[np.ndarray]:
        """State ids (n,) of each layer; all layers binned in one vectorised pass."""
        codes, bounds = self._unit_codes(activities)
        keys = _scratch("keys", codes.shape, np.float64)  # row_keys' scratch, one block per layer
        return [
            discrete.dense_ids(discrete.row_keys(codes[start:stop].T, keys[start:stop]))
            for start, stop in itertools.pairwise(bounds)
        ]

    def _planes(self, activities, labels) -> np.ndarray:
        """(n_layers, 2) (I(X;T), I(Y;T)) in bits; see the module docstring. Labels are hashed once."""
        return discrete.planes(self._layer_ids(activities), labels)

    def _group_information(self, activity, groups) -> float:
        """Plug-in I(G; bin(T)) in bits, as ``_planes``' I(Y;T), in O(n) memory for any number of groups."""
        return discrete.mutual_information(self.state_ids(activity), discrete.dense_ids(groups))

    def entropy(self, samples) -> float:
        """Plug-in entropy H(bin(samples)) in bits; ``samples``: (n, d)."""
        a, _ = check_activity(samples)
        return discrete.entropy(self.state_ids(a))

    def mutual_information(self, a, b) -> float:
        """Plug-in I(bin(a); bin(b)) in bits; ``a``: (n, d_a), ``b``: (n, d_b)."""
        a, b = check_pair(a, b)
        return discrete.mutual_information(self.state_ids(a), self.state_ids(b))


def _quantile_codes(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Codes (units, n) ``rank * n_bins // n`` of ``x`` (units, n), rank = how many of the unit's values are lower.

    So tied values share a rank (that of the first of them) and a bin. As
    code >= k iff rank >= m_k = ceil(k n / n_bins) iff the m_k-th smallest value
    is below x, the code is the number of those n_bins - 1 cut values below x.
    """
    n = x.shape[1]
    ordered = _scratch("ordered", x.shape, x.dtype)
    np.copyto(ordered, x)
    ordered.sort(axis=1)
    if n_bins > _MAX_COMPARED_BINS:
        ranks = np.stack([np.searchsorted(s, v, side="left") for s, v in zip(ordered, x, strict=True)])
        return ranks * n_bins // n
    m = -(-np.arange(1, n_bins) * n // n_bins)  # ceil(k n / n_bins), k = 1..n_bins-1
    cuts = ordered[:, m - 1]
    codes, above = _scratch("codes", x.shape, np.int8), _scratch("above", x.shape, bool)
    codes.fill(0)
    for k in range(n_bins - 1):
        np.greater(x, cuts[:, k : k + 1], out=above)
        codes += above.view(np.int8)
    return codes


def _layer_range_codes(x: np.ndarray, bounds: np.ndarray, n_bins: int) -> np.ndarray:
    """Codes (units, n) of float64 ``x`` (units, n), overwritten: equal-width bins over each layer's [min, max].

    Layer l holds rows ``bounds[l]:bounds[l + 1]``; a constant layer is all code 0 (scale 0). The
    float64 operations are those of the per-layer formula, so the codes are the same.
    """
    lo = np.minimum.reduceat(x.min(axis=1), bounds[:-1])
    hi = np.maximum.reduceat(x.max(axis=1), bounds[:-1])
    span = hi - lo
    scale = np.divide(n_bins, span, out=np.zeros_like(span), where=span > 0)
    widths = np.diff(bounds)
    x -= np.repeat(lo, widths)[:, None]
    x *= np.repeat(scale, widths)[:, None]
    codes = _scratch("codes", x.shape, np.int64)
    np.copyto(codes, x, casting="unsafe")  # truncation, as astype
    return np.minimum(codes, n_bins - 1, out=codes)


_local = threading.local()


def _scratch(name: str, shape: tuple[int, int], dtype) -> np.ndarray:
    """A per-thread buffer of ``shape`` and ``dtype``, reused across calls: fresh large arrays page-fault."""
    size, key = shape[0] * shape[1], f"{name}_{np.dtype(dtype).name}"
    buffers = _local.__dict__.setdefault("buffers", {})
    if key not in buffers or buffers[key].size < size:
        buffers[key] = np.empty(size, dtype)
    return buffers[key][:size].reshape(shape)
