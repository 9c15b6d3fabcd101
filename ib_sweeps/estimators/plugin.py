"""Exact plug-in estimator for discrete activity (quantized networks), in bits.

Each distinct activity value of a unit is a symbol and a layer's state T is the
tuple of its units' values, compared exactly (no bins). X is uniform over the
n measured inputs and Y is the label, so (X, Y, T) has an empirical joint
distribution and

    I(X;T) = H(T)  (T is a function of X: one row per input),
    I(Y;T) = H(T) - H(T|Y),

are its exact plug-in values, not estimates of a density. For a quantized
network (``model.quantize_levels: k``; every hidden unit takes one of k
levels, and the softmax output is a function of the last hidden layer) these
are the true mutual informations of the network on its measured inputs: the
quantized-network extension proposed in the dissertation "Measuring mutual
information in neural networks" (2019, Ch. 2 "Extensions" and the project
proposal; not implemented there), where discrete layers "make calculating
mutual information straightforward". The ``binning`` estimator
with one bin per level gives the same numbers on the hidden layers; ``plugin``
needs no bin edges and is also exact on the softmax output.

On continuous activity every distinct value is its own symbol, so a
deterministic network's I(X;T) is H(X) wherever the inputs stay distinct (the
degenerate but exact value, Goldfeld et al. 2019); a trial therefore accepts
``plugin`` only for quantized networks (:mod:`ib_sweeps.config`). Pooled
estimates (W epochs) are plug-in values of the pooled rows, exact as well.
-0.0 and 0.0 are one symbol.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ib_sweeps.estimators import discrete
from ib_sweeps.estimators.base import Estimator, check_activity, check_pair


def state_ids(activity: np.ndarray) -> np.ndarray:
    """Dense ids (n,), equal exactly where rows of ``activity`` (n, d) are equal value for value."""
    a = np.asarray(activity)
    codes = np.empty(a.shape, dtype=np.int64)
    for j in range(a.shape[1]):  # per unit: its distinct values -> 0..m-1 (np.unique: -0.0 == 0.0)
        codes[:, j] = np.unique(a[:, j], return_inverse=True)[1].ravel()
    return discrete.dense_ids(discrete.row_keys(codes))


class PlugIn(Estimator):
    """Plug-in entropies of the exact activity values; no parameters beyond ``label`` and ``reducer``."""

    method: Literal["plugin"] = "plugin"

    def check_network(self, model, where: str) -> None:
        """Exact only for a quantized network (``model.quantize_levels``)."""
        if model.quantize_levels is None:
            raise ValueError(
                f"{where} (plugin): exact only for a quantized network, but model.quantize_levels is "
                "absent (every input would be its own state: I(X;T) = H(X)); allowed: set model.quantize_levels, "
                "or an estimator for continuous activity (binning, ...)"
            )

    def _planes(self, activities, labels) -> np.ndarray:
        """(n_layers, 2) (I(X;T), I(Y;T)) in bits of validated 2-D activities."""
        y = discrete.dense_ids(labels)
        h_y = discrete.entropy(y)
        out = np.empty((len(activities), 2))
        for row, a in zip(out, activities, strict=True):
            table = discrete.joint_counts(state_ids(a), y)
            h_t = discrete.entropy_of_counts(table.sum(axis=1))
            row[:] = h_t, max(0.0, h_t + h_y - discrete.entropy_of_counts(table))
        return out

    def _group_information(self, activity, groups) -> float:
        """Plug-in I(G;T) in bits, as ``_planes``' I(Y;T), in O(n) memory for any number of groups."""
        return discrete.mutual_information(state_ids(activity), discrete.dense_ids(groups))

    def entropy(self, samples) -> float:
        """Plug-in entropy H(T) in bits of the distinct rows of ``samples`` (n, d)."""
        a, _ = check_activity(samples)
        return discrete.entropy(state_ids(a))

    def mutual_information(self, a, b) -> float:
        """Plug-in I(A;B) in bits of paired discrete samples ``a`` (n, d_a), ``b`` (n, d_b)."""
        a, b = check_pair(a, b)
        return discrete.mutual_information(state_ids(a), state_ids(b))
