"""Adaptive binning (Chelombiev et al. 2019) on hand-computed cases."""

import numpy as np
import pytest

from ib_sweeps import estimators

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
