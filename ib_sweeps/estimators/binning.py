"""Binning (discretisation) estimator of the information plane, in bits.

Each unit's activity is cut into bins; a layer's state T is the tuple of bin
codes. With X uniform over the n distinct inputs and T a deterministic function
of X, I(X;T) = H(T) and I(Y;T) = H(T) - H(T|Y) (Shwartz-Ziv & Tishby 2017,
"Opening the black box of deep neural networks via information", Sec. 3).

Two conventions, as in the two reference codes:

* ``n_bins`` edges over a fixed ``range`` (IDNNs code: ``linspace(-1, 1, 30)``).
  Codes are ``np.digitize(a, edges)``: values below the first edge share code 0,
  values at or above the last edge share code ``n_bins``. So a ReLU unit's
  values above ``range[1]`` are all lumped into that top bin.
* ``bin_size`` over the data's own range (Saxe et al. 2018 code:
  ``floor(a / 0.07)``): unbounded activations keep their whole range.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import Estimator, check_activity, check_pair
from ib_sweeps.types import Float, PositiveFloat

MAX_BINS = 1_000_000  # bin edges are an array; more than float32 activity can tell apart

DEFAULT_N_BINS = 30


class Binning(Estimator):
    """Plug-in entropies of binned activity.

    Parameters: ``n_bins`` (number of edges, >= 2; default 30) and ``range``
    (lo, hi), or ``bin_size`` (> 0) over the data range; not both (giving
    ``bin_size`` alone switches to the data-range convention).
    """

    method: Literal["binning"] = "binning"
    n_bins: int | None = Field(default=DEFAULT_N_BINS, ge=2, le=MAX_BINS, strict=True)
    range: tuple[Float, Float] = (-1.0, 1.0)
    bin_size: PositiveFloat | None = None

    @model_validator(mode="before")
    @classmethod
    def _bin_size_replaces_n_bins(cls, data):
        if isinstance(data, dict) and data.get("bin_size") is not None and "n_bins" not in data:
            data = {**data, "n_bins": None}
        return data

    @model_validator(mode="after")
    def _one_convention(self):
        if self.n_bins is not None and self.bin_size is not None:
            raise ValueError("bin_size: set either n_bins (fixed range) or bin_size (data range), not both")
        if self.range[0] >= self.range[1]:
            raise ValueError(f"range: must be [lo, hi] with lo < hi; got {list(self.range)}")
        if not np.isfinite(self.range[1] - self.range[0]):
            raise ValueError(f"range: got {list(self.range)}, whose width overflows; allowed: hi - lo below 1.8e308")
        return self

    def codes(self, activity: np.ndarray) -> np.ndarray:
        """Integer bin codes, same shape as ``activity``; equal to ``np.digitize`` for edges."""
        x = _as_float(activity)
        return self._codes_into(x, np.empty_like(x), np.empty(x.shape, np.intp), np.empty(x.shape, bool))

    def _codes_into(self, x, scratch, out, mask, wide=None):
        if self.bin_size is not None:  # in float64 like the reference floor(a / 0.07), whatever x's precision
            wide = np.empty(x.shape) if wide is None else wide  # float64 scratch
            np.floor(np.divide(x, np.float64(self.bin_size), out=wide), out=wide)
            np.copyto(out, wide, casting="unsafe")
            return out
        return _digitize_into(x, _grid(self.range[0], self.range[1], self.n_bins, x.dtype.name), scratch, out, mask)

    def state_ids(self, activity: np.ndarray) -> np.ndarray:
        """Dense ids (n,) of the binned states (rows) of ``activity`` (n, d)."""
        return self._layer_ids([activity])[0]

    def _unit_codes(self, activities) -> tuple[np.ndarray, np.ndarray]:
        """Codes (total units, n), one row per unit of every layer, and the layers' row bounds (reused buffers)."""
        n, widths = len(activities[0]), [a.shape[1] for a in activities]
        bounds = np.cumsum([0, *widths])
        x, f, i, b, k = (buf.reshape(bounds[-1], n) for buf in _workspace(bounds[-1] * n, _float_type(activities)))
        for a, start, stop in zip(activities, bounds[:-1], bounds[1:], strict=True):
            x[start:stop] = a.T  # each unit's values contiguous: fast per-unit reductions
        return self._codes_into(x, f, i, b, k), bounds

    def _layer_ids(self, activities) -> list[np.ndarray]:
        """State ids of each layer; all layers binned in one pass over reused buffers."""
        codes, bounds = self._unit_codes(activities)
        k = _workspace(codes.size, _float_type(activities))[4].reshape(codes.shape)  # row_keys' scratch
        return [
            discrete.dense_ids(discrete.row_keys(codes[start:stop].T, k[start:stop]))
            for start, stop in itertools.pairwise(bounds)
        ]

    def _planes(self, activities, labels) -> np.ndarray:
        """(n_layers, 2) (I(X;T), I(Y;T)) in bits; all layers binned in one pass, labels hashed once."""
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


def digitize_uniform(a: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.digitize(a, edges)`` for evenly spaced ``edges`` (from ``np.linspace``), by arithmetic.

    A float guess of the bin, biased to be never too high, is corrected by one
    comparison with the true edge above it, so the result is exact.
    """
    x = _as_float(a)
    grid = _grid(float(edges[0]), float(edges[-1]), len(edges), x.dtype.name)
    return _digitize_into(x, grid, np.empty_like(x), np.empty(x.shape, np.intp), np.empty(x.shape, bool))


def _float_type(activities) -> np.dtype:
    return np.result_type(*[_as_float(a[:0]).dtype for a in activities])


def _as_float(a) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


# The arithmetic bin position is off by ~1e-5 bins at most (float32 rounding of
# the position and of the edges); biasing it down by far more than that makes
# the guess never too high, so one upward correction against the true edges
# makes it exact.
_GUESS_BIAS = 1e-3


@functools.lru_cache(maxsize=64)
def _grid(lo: float, hi: float, n: int, dtype_name: str):
    """(edges, upper, scale, offset) for ``np.linspace(lo, hi, n)`` and inputs of ``dtype_name``.

    ``upper[c]`` is ``edges[c]`` (the lower boundary of code c + 1) rounded up to the
    input precision: for x of that precision, x >= edge iff x >= ceil(edge), so
    comparing in x's own precision gives float64 ``np.digitize``'s answers.
    """
    dtype = np.dtype(dtype_name)
    edges = np.linspace(lo, hi, n)
    upper = edges.astype(dtype)
    low = upper < edges
    upper[low] = np.nextafter(upper[low], dtype.type(np.inf))
    upper = np.concatenate((upper, [np.inf])).astype(dtype)
    scale = (n - 1) / (edges[-1] - edges[0])
    return edges, upper, dtype.type(scale), dtype.type(1 - edges[0] * scale - _GUESS_BIAS)


def _digitize_into(x, grid, scratch, out, mask):
    edges, upper, scale, offset = grid
    if (len(edges) + 1) * np.finfo(x.dtype).eps * 32 >= _GUESS_BIAS:  # too many edges for x's precision
        out[...] = np.digitize(x, edges)
        return out
    np.multiply(x, scale, out=scratch)
    scratch += offset
    np.clip(scratch, 0, len(edges), out=scratch)
    np.copyto(out, scratch, casting="unsafe")  # truncation == floor, as scratch >= 0
    np.take(upper, out, out=scratch)
    np.greater_equal(x, scratch, out=mask)
    out += mask
    return out


_local = threading.local()


def _workspace(size: int, dtype) -> tuple[np.ndarray, ...]:
    """Per-thread scratch buffers (x, f, i, b, k), reused across calls: fresh large arrays page-fault."""
    key = f"buf_{np.dtype(dtype).name}"
    buf = getattr(_local, key, None)
    if buf is None or buf[0].size < size:
        kinds = (dtype, dtype, np.intp, bool, np.float64)
        buf = tuple(np.empty(size, kind) for kind in kinds)
        setattr(_local, key, buf)
    return tuple(v[:size] for v in buf)
