"""Binning estimator against hand-computed cases and the reference np.unique(axis=0) method."""

from math import log2

import numpy as np
import pytest

from ib_sweeps import estimators
from ib_sweeps.estimators import discrete

EXACT = 1e-9  # tolerance for exact, discrete cases


def h(*p):
    """Entropy in bits of the given probabilities (hand computation helper)."""
    return -sum(q * log2(q) for q in p if q > 0)


def test_two_bins_hand_computed():
    # Edges linspace(-1, 1, 3) = [-1, 0, 1]: two inputs per bin -> H(T) = 1 bit.
    a = np.array([[-0.9], [-0.85], [0.5], [0.95]])
    ixt, iyt = estimators.information_plane(a, np.array([0, 1, 0, 1]), method="binning", n_bins=3)
    assert ixt == pytest.approx(1.0, abs=EXACT)
    assert iyt == pytest.approx(0.0, abs=EXACT)  # label independent of the bin
    _, iyt = estimators.information_plane(a, np.array([0, 0, 1, 1]), method="binning", n_bins=3)
    assert iyt == pytest.approx(1.0, abs=EXACT)  # bin determines the label


def test_unequal_groups_hand_computed():
    # bin_size 0.5: states A (3 inputs), B (3), C (1), D (1) over 2 units.
    a = np.array(
        [[0.1, 0.1], [0.2, 0.3], [0.4, 0.0], [0.6, 0.1], [0.7, 0.2], [0.9, 0.4], [0.1, 0.7], [0.6, 0.6]]
    )  # A A A B B B C D
    y = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    ixt, iyt = estimators.information_plane(a, y, method="binning", bin_size=0.5)
    h_t = h(3 / 8, 3 / 8, 1 / 8, 1 / 8)
    # y=0 (3 inputs): A A C; y=1 (5 inputs): A B B B D.
    h_t_given_y = 3 / 8 * h(2 / 3, 1 / 3) + 5 / 8 * h(1 / 5, 3 / 5, 1 / 5)
    assert ixt == pytest.approx(h_t, abs=EXACT)
    assert iyt == pytest.approx(h_t - h_t_given_y, abs=EXACT)


def test_edges_follow_np_digitize():
    est = estimators.get("binning", n_bins=30)
    edges = np.linspace(-1, 1, 30)
    a = np.concatenate([edges, [-1.5, 1.5, 0.0, 1.0, -1.0], np.random.default_rng(0).uniform(-1.2, 1.2, 500)])
    assert (est.codes(a) == np.digitize(a, edges)).all()
    assert est.codes(np.array([1.0, 5.0]))[0] == est.codes(np.array([1.0, 5.0]))[1]  # top bin holds all >= hi


def test_bin_size_keeps_relu_range():
    a = np.array([[0.0], [0.5], [1.5], [3.0]])  # above 1: clipped into one bin by a fixed range
    assert estimators.information_plane(a, np.zeros(4, int), method="binning", bin_size=0.07)[0] == pytest.approx(2.0)
    assert estimators.information_plane(a, np.zeros(4, int), method="binning")[0] == pytest.approx(1.5)


def reference_binning(a, y, codes):
    """The reference codes' method: np.unique(axis=0) over binned rows, per class for H(T|Y)."""

    def h_rows(rows):
        _, counts = np.unique(rows, axis=0, return_counts=True)
        p = counts / counts.sum()
        return -(p * np.log2(p)).sum()

    c = codes(a).astype(float)
    h_t = h_rows(c)
    h_t_y = sum(np.mean(y == k) * h_rows(c[y == k]) for k in np.unique(y))
    return h_t, h_t - h_t_y


@pytest.mark.parametrize(
    ("params", "units", "scale"),
    [({"n_bins": 30}, 5, 1.0), ({"n_bins": 10}, 3, 1.0), ({"bin_size": 0.07}, 4, 3.0), ({"n_bins": 30}, 40, 1.0)],
)
def test_matches_reference_method(params, units, scale):
    rng = np.random.default_rng(units)
    a = np.tanh(rng.normal(size=(2000, units))) * scale
    y = rng.integers(0, 3, 2000)
    est = estimators.get("binning", **params)
    ref = reference_binning(a, y, est.codes)
    assert est.information_plane(a, y) == pytest.approx(ref, abs=EXACT)


def test_row_ids_overflow_fallback_is_exact():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 1000, size=(500, 12))  # 1000**12 > 2**62: byte-wise path
    codes[250:] = codes[:250]  # every row appears twice
    keys = discrete.row_keys(codes)
    assert len(np.unique(keys)) == len(np.unique(codes, axis=0))
    assert (keys[250:] == keys[:250]).all()


@pytest.mark.parametrize("n_edges", [2, 3, 7, 30, 1000])
def test_uniform_digitize_is_exact_at_edges(n_edges):
    from ib_sweeps.estimators.binning import digitize_uniform

    edges = np.linspace(-0.3, 2.7, n_edges)
    rng = np.random.default_rng(n_edges)
    a = np.concatenate([edges, np.nextafter(edges, 9), np.nextafter(edges, -9), rng.uniform(-1, 4, 10_000), [1e300]])
    assert (digitize_uniform(a, edges) == np.digitize(a, edges)).all()


def test_invariants():
    rng = np.random.default_rng(3)
    a = np.tanh(rng.normal(size=(4096, 3)))
    y = (a[:, 0] > 0).astype(int)
    ixt, iyt = estimators.information_plane(a, y, method="binning")
    assert 0 <= iyt <= discrete.entropy(discrete.dense_ids(y)) + EXACT
    assert 0 <= ixt <= log2(4096) + EXACT
    one_unit = a[:, :1]
    _, shuffled = estimators.information_plane(one_unit, rng.permutation(y), method="binning", n_bins=10)
    states = len(np.unique(estimators.get("binning", n_bins=10).codes(one_unit)))
    bias = (states - 1) / (2 * 4096 * np.log(2))  # Miller-Madow: expected plug-in bias under independence
    assert shuffled < 3 * bias
    assert estimators.information_plane(np.full((100, 4), 0.3), np.arange(100) % 2) == (0.0, 0.0)


def test_entropy_and_mutual_information():
    x = np.repeat(np.array([[0.1], [0.6]]), [3, 1], axis=0)
    assert estimators.entropy(x, method="binning", bin_size=0.5) == pytest.approx(h(3 / 4, 1 / 4), abs=EXACT)
    a = np.array([[0.1], [0.1], [0.6], [0.6]])
    assert estimators.mutual_information(a, a, method="binning", bin_size=0.5) == pytest.approx(1.0, abs=EXACT)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("lo", "hi", "n_edges"), [(-1, 1, 30), (0, 1, 11), (-0.3, 2.7, 7), (-1, 1, 1000)])
def test_float32_and_float64_codes_equal_np_digitize(dtype, lo, hi, n_edges):
    edges = np.linspace(lo, hi, n_edges)
    rng = np.random.default_rng(n_edges)
    near = np.concatenate([edges, np.nextafter(edges, 9), np.nextafter(edges, -9)]).astype(dtype)
    near32 = edges.astype(np.float32)  # float32 neighbours of every edge, both sides
    near = np.concatenate([near, near32, np.nextafter(near32, 9), np.nextafter(near32, -9)]).astype(dtype)
    a = np.concatenate([near, rng.uniform(lo - 1, hi + 1, 20_000), [1e30, -1e30, 0.0, -0.0]]).astype(dtype)
    est = estimators.get("binning", n_bins=n_edges, range=[float(lo), float(hi)])
    assert (est.codes(a) == np.digitize(a, edges)).all()  # np.digitize compares in float64


def test_bin_size_divides_in_float64_like_the_reference():
    rng = np.random.default_rng(9)
    a = np.concatenate([np.arange(-50, 50) * np.float32(0.07), rng.uniform(-3, 3, 10_000)]).astype(np.float32)
    est = estimators.get("binning", bin_size=0.07)
    assert (est.codes(a) == np.floor(a.astype(np.float64) / 0.07)).all()
