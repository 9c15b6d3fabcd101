"""Adaptive binning (Chelombiev et al. 2019) on hand-computed cases."""

import numpy as np
import pytest

from ib_sweeps import estimators
from ib_sweeps.estimators import discrete

EXACT = 1e-9


def test_quantile_bins_hold_equal_mass_and_keep_ties():
    # Ranks of first occurrence: 0 0 0 3 4 5 6 7 -> bins (rank * 2 // 8): 0 0 0 0 1 1 1 1 -> H = 1 bit.
    a = np.array([[0.0], [0.0], [0.0], [1.0], [2.0], [3.0], [4.0], [50.0]])
    est = estimators.get("adaptive_binning", n_bins=2)
    assert est.codes(a).ravel().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    ixt, iyt = est.information_plane(a, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert ixt == pytest.approx(1.0, abs=EXACT) and iyt == pytest.approx(1.0, abs=EXACT)


def test_layer_range_bins_span_the_layer():
    # Range [0, 10] in 5 bins of width 2: 0 -> 0, 1 -> 0, 2.5 -> 1, 10 -> 4 (the maximum is in the top bin).
    a = np.array([[0.0], [1.0], [2.5], [10.0]])
    est = estimators.get("adaptive_binning", n_bins=5, strategy="layer_range")
    assert est.codes(a).ravel().tolist() == [0, 0, 1, 4]
    assert est.information_plane(a, np.array([0, 0, 1, 1]))[0] == pytest.approx(1.5, abs=EXACT)


def test_relu_layer_is_resolved_where_a_fixed_range_clips():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(size=(4096, 3)) * 5, 0)  # mostly above 1
    y = rng.integers(0, 2, 4096)
    fixed, _ = estimators.information_plane(relu, y, method="binning")  # [-1, 1]: everything > 1 in one bin
    adaptive, _ = estimators.information_plane(relu, y, method="adaptive_binning")
    assert adaptive > fixed + 3


def reference_codes(activity, n_bins, strategy):
    """The per-column codes of the first implementation, verbatim."""
    a = np.asarray(activity, dtype=np.float64)
    if strategy == "layer_range":
        lo, hi = a.min(), a.max()
        if hi == lo:
            return np.zeros(a.shape, dtype=np.int64)
        return np.minimum(((a - lo) * (n_bins / (hi - lo))).astype(np.int64), n_bins - 1)
    n = len(a)
    codes = np.empty(a.shape, dtype=np.int64)
    for j in range(a.shape[1]):  # rank of the first of equal values, so ties share a bin
        col = a[:, j]
        codes[:, j] = np.searchsorted(np.sort(col), col, side="left") * n_bins // n
    return codes


def reference_plane(codes, y):
    """The per-layer plane of the first implementation, verbatim."""
    table = discrete.joint_counts(discrete.dense_ids(discrete.row_keys(codes)), discrete.dense_ids(y))
    h_t = discrete.entropy_of_counts(table.sum(axis=1))
    h_y = discrete.entropy_of_counts(table.sum(axis=0))
    return h_t, max(0.0, h_t + h_y - discrete.entropy_of_counts(table))


def tied_layers(rng, n, widths, dtype):
    """Activity with ties: rounded tanh, ReLU zeros, a constant unit, -0.0 beside 0.0, repeated rows."""
    layers = []
    for i, w in enumerate(widths):
        z = rng.normal(size=(n, w)) * 3
        a = [np.round(np.tanh(z), 2), np.maximum(z, 0), np.round(z, 1), z][i % 4]
        a[:, 0] = 0.5 if i == 1 else a[:, 0]  # a constant unit
        a[: n // 4] = a[n // 4 : n // 2]  # repeated rows: fewer states than inputs
        layers.append(a.astype(dtype))
    layers.append(np.full((n, 2), -1.25, dtype))  # a constant layer
    return layers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strategy", ["quantile", "layer_range"])
@pytest.mark.parametrize(
    ("n", "widths", "n_bins"),
    [(4096, (10, 7, 5, 4, 3, 2), 30), (97, (3, 12, 1), 7), (5, (4, 2), 30), (300, (2, 3), 400)],
)
def test_vectorised_pass_equals_the_per_column_implementation_bit_for_bit(dtype, strategy, n, widths, n_bins):
    rng = np.random.default_rng(n + n_bins)
    layers, y = tied_layers(rng, n, widths, dtype), rng.integers(-1, 3, n)
    est = estimators.get("adaptive_binning", n_bins=n_bins, strategy=strategy)
    codes = [reference_codes(a, n_bins, strategy) for a in layers]
    for a, c in zip(layers, codes, strict=True):
        assert np.array_equal(est.codes(a), c)
    planes = est.information_planes(layers, y)
    assert planes.tolist() == [list(reference_plane(c, y)) for c in codes]  # the same float bits
    ids = [discrete.dense_ids(discrete.row_keys(c)) for c in codes]
    assert est.entropy(layers[0]) == discrete.entropy(ids[0])
    assert est.mutual_information(layers[0], layers[1]) == discrete.mutual_information(ids[0], ids[1])
