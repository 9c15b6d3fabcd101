"""kNN estimators against closed forms (tolerances for n = 3000, k = 3: ~3 standard errors)."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from ib_sweeps import estimators

N = 3000


def gaussian_pair(rho, n=N, seed=0):
    return np.random.default_rng(seed).multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_bivariate_gaussian(rho):
    x = gaussian_pair(rho)
    truth = -0.5 * np.log2(1 - rho**2)
    assert estimators.mutual_information(x[:, :1], x[:, 1:], method="ksg") == pytest.approx(truth, abs=0.06)


def test_additive_gaussian_channel_in_three_dimensions():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, 3))
    y = x + 0.5 * rng.normal(size=(N, 3))  # I = (3/2) log2(1 + 1/0.25) per the Gaussian channel
    truth = 1.5 * np.log2(1 + 1 / 0.25)
    assert estimators.mutual_information(x, y, method="ksg") == pytest.approx(truth, abs=0.25)


def test_monotone_transforms_leave_ksg_nearly_unchanged():
    x = gaussian_pair(0.7)
    plain = estimators.mutual_information(x[:, :1], x[:, 1:], method="ksg")
    warped = estimators.mutual_information(np.exp(x[:, :1]), x[:, 1:] ** 3, method="ksg")
    assert warped == pytest.approx(plain, abs=0.1)


def test_ross_continuous_discrete_against_quadrature():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, N)
    t = (2 * y - 1)[:, None] + rng.normal(size=(N, 1))  # T | Y ~ N(+-1, 1)

    def f(v):
        return 0.5 * norm.pdf(v, -1) + 0.5 * norm.pdf(v, 1)

    truth = quad(lambda v: -f(v) * np.log2(f(v)), -12, 12)[0] - 0.5 * np.log2(2 * np.pi * np.e)
    ixt, iyt = estimators.information_plane(t, y, method="ksg")
    assert iyt == pytest.approx(truth, abs=0.05)
    assert ixt == pytest.approx(np.log2(N))  # distinct rows: T determines X
    _, shuffled = estimators.information_plane(t, rng.permutation(y), method="ksg")
    assert shuffled < 0.02


def test_entropy_of_a_gaussian():
    x = np.random.default_rng(3).normal(size=(N, 2)) * 2.0
    truth = 0.5 * 2 * np.log2(2 * np.pi * np.e * 4.0)
    assert estimators.entropy(x, method="ksg") == pytest.approx(truth, abs=0.08)


def test_seed_makes_it_deterministic_and_ties_are_broken():
    x = np.round(gaussian_pair(0.5), 1)  # heavy ties
    a = estimators.mutual_information(x[:, :1], x[:, 1:], method="ksg", seed=4)
    assert a == estimators.mutual_information(x[:, :1], x[:, 1:], method="ksg", seed=4)
    assert np.isfinite(a) and a > 0.1
