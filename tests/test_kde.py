"""KDE bounds against quadrature, closed forms and a brute-force reference."""

import tracemalloc

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp
from scipy.stats import norm

from ib_sweeps import estimators


def mixture_entropy_bits(centres, var):
    """h of the equal-weight 1-D Gaussian mixture, by quadrature (tolerance ~1e-8 bits)."""

    def f(x):
        return np.mean(norm.pdf(x, centres, np.sqrt(var)))

    lo, hi = centres.min() - 12 * np.sqrt(var), centres.max() + 12 * np.sqrt(var)
    return quad(lambda x: -f(x) * np.log(f(x)) if f(x) > 0 else 0.0, lo, hi, limit=500)[0] / np.log(2)


@pytest.mark.parametrize("var", [0.01, 0.1, 1.0])
def test_bounds_bracket_the_mixture_entropy(var):
    centres = np.array([-1.0, 0.0, 0.3, 2.0, 2.1])
    truth = mixture_entropy_bits(centres, var)
    upper = estimators.entropy(centres[:, None], method="kde_upper", noise_variance=var)
    lower = estimators.entropy(centres[:, None], method="kde_lower", noise_variance=var)
    assert lower - 1e-9 <= truth <= upper + 1e-9


def test_single_gaussian_and_separated_centres_are_exact():
    var, d = 0.05, 3
    h_noise = 0.5 * d * np.log2(2 * np.pi * np.e * var)  # entropy of N(0, var I_d), bits
    for method in ("kde_upper", "kde_lower"):
        assert estimators.entropy(np.zeros((1, d)), method=method, noise_variance=var) == pytest.approx(
            h_noise, abs=1e-12
        )
        far = np.eye(d) * 100.0  # 3 centres, 100 sigma apart: h = h_noise + log2(3)
        assert estimators.entropy(far, method=method, noise_variance=var) == pytest.approx(
            h_noise + np.log2(3), abs=1e-9
        )


def reference(a, y, scale):
    dist = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    h = -np.mean(logsumexp(-dist * scale, axis=1) - np.log(len(a)))
    h_y = 0.0
    for k in np.unique(y):
        m = y == k
        h_y += m.mean() * -np.mean(logsumexp(-dist[np.ix_(m, m)] * scale, axis=1) - np.log(m.sum()))
    return h / np.log(2), (h - h_y) / np.log(2)


@pytest.mark.parametrize(("method", "factor"), [("kde_upper", 2.0), ("kde_lower", 8.0)])
def test_matches_brute_force_across_blocks_and_classes(method, factor):
    rng = np.random.default_rng(1)
    a = np.tanh(rng.normal(size=(500, 4)))
    y = rng.integers(0, 3, 500)  # unsorted labels; blocks of 64 cut through classes
    est = estimators.get(method, noise_variance=0.02, block=64)
    assert est.information_plane(a, y) == pytest.approx(reference(a, y, 1 / (factor * 0.02)), abs=1e-9)


def test_invariants():
    rng = np.random.default_rng(2)
    a = np.tanh(rng.normal(size=(1024, 3)) * 2)
    y = (a[:, 0] > 0).astype(int)
    for method in ("kde_upper", "kde_lower"):
        ixt, iyt = estimators.information_plane(a, y, method=method, noise_variance=1e-3)
        assert 0 <= iyt <= 1 + 1e-9 and 0 <= ixt <= np.log2(1024) + 1e-9
        # With noise far below the spacing of the points every point is its own cluster and T determines
        # any labelling (I(Y;T) = H(Y) is then right); with noise spanning neighbours, shuffled labels give ~0.
        _, shuffled = estimators.information_plane(a, rng.permutation(y), method=method, noise_variance=0.1)
        assert shuffled < 0.05
    up = estimators.information_plane(a, y, method="kde_upper", noise_variance=1e-2)
    low = estimators.information_plane(a, y, method="kde_lower", noise_variance=1e-2)
    assert up[0] >= low[0]
    more_noise = estimators.information_plane(a, y, method="kde_upper", noise_variance=1.0)
    assert more_noise[0] < up[0]  # more noise, less information about X


@pytest.mark.slow
def test_ten_thousand_inputs_of_1024_units_in_under_2_gb():
    rng = np.random.default_rng(3)
    a = np.tanh(rng.normal(size=(10_000, 1024)).astype(np.float32))
    y = rng.integers(0, 10, 10_000)
    tracemalloc.start()
    ixt, _ = estimators.information_plane(a, y, method="kde_upper", noise_variance=0.1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 2**30, f"peak {peak / 2**30:.2f} GiB"
    assert 0 < ixt <= np.log2(10_000) + 1e-9
