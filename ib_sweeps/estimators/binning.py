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

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import Estimator, check_activity
from ib_sweeps.types import Float, PositiveFloat

DEFAULT_N_BINS = 30


class Binning(Estimator):
    """Plug-in entropies of binned activity.

    Parameters: ``n_bins`` (number of edges, >= 2; default 30) and ``range``
    (lo, hi), or ``bin_size`` (> 0) over the data range; not both (giving
    ``bin_size`` alone switches to the data-range convention).
    """

    method: Literal["binning"] = "binning"
    n_bins: int | None = Field(default=DEFAULT_N_BINS, ge=2, strict=True)
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
        return self

    def codes(self, activity: np.ndarray) -> np.ndarray:
        """Integer bin codes, same shape as ``activity``."""
        if self.bin_size is not None:
            return np.floor(activity / self.bin_size).astype(np.int64)
        edges = np.linspace(self.range[0], self.range[1], self.n_bins)
        return np.searchsorted(edges, activity, side="right")  # == np.digitize

    def information_plane(self, activity, labels):
        """(I(X;T), I(Y;T)) in bits; see the module docstring."""
        a, y = check_activity(activity, labels)
        t = discrete.row_ids(self.codes(a))
        return discrete.entropy_of_ids(t), discrete.mutual_information_of_ids(t, y)

    def entropy(self, samples) -> float:
        """Plug-in entropy H(bin(samples)) in bits; ``samples``: (n, d)."""
        a, _ = check_activity(samples)
        return discrete.entropy_of_ids(discrete.row_ids(self.codes(a)))

    def mutual_information(self, a, b) -> float:
        """Plug-in I(bin(a); bin(b)) in bits; ``a``: (n, d_a), ``b``: (n, d_b)."""
        a, _ = check_activity(a)
        b, _ = check_activity(b)
        if len(a) != len(b):
            raise ValueError(f"a has {len(a)} rows but b has {len(b)}")
        ta, tb = discrete.row_ids(self.codes(a)), discrete.row_ids(self.codes(b))
        return discrete.mutual_information_of_ids(ta, tb)
