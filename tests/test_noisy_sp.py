"""noisy_sp (Goldfeld et al. 2019) against quadrature, closed forms and a brute-force reference."""

import tracemalloc

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp
from scipy.stats import norm

from ib_sweeps import config, estimators
from ib_sweeps.estimators.noisy_sp import NoisySP


def mixture_entropy_bits(centres, sd):
    """h of the equal-weight 1-D Gaussian mixture, by quadrature (tolerance ~1e-8 bits)."""

    def f(x):
        return np.mean(norm.pdf(x, centres, sd))

    lo, hi = centres.min() - 12 * sd, centres.max() + 12 * sd
    integrand = lambda x: -f(x) * np.log(f(x)) if f(x) > 0 else 0.0  # noqa: E731
    return quad(integrand, lo, hi, limit=1000, points=np.sort(centres))[0] / np.log(2)


def gaussian_entropy_bits(sd, d=1):
    return 0.5 * d * np.log2(2 * np.pi * np.e * sd**2)


def test_entropy_matches_quadrature_and_error_shrinks_with_n_mc():
    centres, sigma = np.array([-1.0, 0.0, 0.3, 2.0, 2.1]), 0.5  # overlapping components: MC error is not zero
    truth = mixture_entropy_bits(centres, sigma)
    runs = {
        n_mc: np.array([NoisySP(sigma=sigma, n_mc=n_mc, seed=s).entropy(centres[:, None]) for s in range(30)])
        for n_mc in (10, 1000)
    }
    std = {n_mc: r.std(ddof=1) for n_mc, r in runs.items()}
    for n_mc, r in runs.items():
        # Unbiased Monte Carlo: the mean of 30 seeds is within 4 standard errors of the truth.
        assert abs(r.mean() - truth) < 4 * std[n_mc] / np.sqrt(30)
    # Error std ~ 1/sqrt(n * n_mc): 100x the draws, 10x smaller (measured 0.096 -> 0.0098 bits); a 30-seed
    # std is itself uncertain by ~13%, so the ratio is only asserted to within [6, 16].
    assert 6 < std[10] / std[1000] < 16
    assert std[1000] < 0.02 and np.abs(runs[1000] - truth).max() < 0.05


def test_single_and_separated_centres_are_exact():
    sigma, d = 0.05, 3
    h_noise = gaussian_entropy_bits(sigma, d)
    est = NoisySP(sigma=sigma, n_mc=7)
    assert est.entropy(np.zeros((1, d))) == pytest.approx(h_noise, abs=1e-12)
    # 4 centres 2000 sigma apart: h = h_noise + log2(4) for every draw, as E||z||^2 = d is used exactly.
    assert est.entropy(np.eye(4, d) * 100.0) == pytest.approx(h_noise + 2.0, abs=1e-9)


def test_first_layer_conditional_entropy_is_the_noise_entropy():
    # Array level: h(T|X) = (d/2) log2(2 pi e sigma^2) exactly, so I(X;T) = h(T) - that with the same draws.
    rng = np.random.default_rng(0)
    a = np.tanh(rng.normal(size=(300, 4)))
    one_class = np.zeros(300, dtype=np.int64)  # same row order, hence the same Monte Carlo points
    est = NoisySP(sigma=0.2, n_mc=5)
    ixt, iyt = est.information_plane(a, one_class)
    assert ixt == pytest.approx(est.entropy(a) - gaussian_entropy_bits(0.2, 4), abs=1e-9)
    assert iyt == 0.0
    y = rng.integers(0, 3, 300)
    assert est.information_plane_conditional(a[:, None, :], y) == est.information_plane(a, y)  # n_cond = 1


def reference(samples, labels, sigma, n_mc, seed):
    """Direct (I(X;T), I(Y;T), h(T)) in bits with the estimator's draws (labels sorted): dense, no expansion."""
    n_in, n_cond, d = samples.shape
    c = samples.reshape(-1, d)
    point_input = np.repeat(np.arange(n_in), n_mc)
    offsets = np.random.default_rng([seed, 1]).integers(n_cond, size=n_in)
    own = point_input * n_cond + (offsets[point_input] + np.tile(np.arange(n_mc), n_in)) % n_cond
    z = np.random.default_rng(seed).standard_normal((len(own), d))
    t = c[own] + sigma * z
    log_k = -((t[:, None, :] - c[None]) ** 2).sum(-1) / (2 * sigma**2) + (z**2).sum(-1)[:, None] / 2
    col_input, col_class = np.repeat(np.arange(n_in), n_cond), np.repeat(labels, n_cond)

    def mixture(mask):  # log of the mean kernel over the masked centres
        return logsumexp(np.where(mask, log_k, -np.inf), axis=1) - np.log(mask.sum(axis=1))

    l_all = mixture(np.ones_like(log_k, dtype=bool))
    l_x = mixture(col_input[None] == point_input[:, None])
    l_y = mixture(col_class[None] == labels[point_input][:, None])
    h = gaussian_entropy_bits(sigma, d) - np.mean(l_all) / np.log(2)
    return np.mean(l_x - l_all) / np.log(2), np.mean(l_y - l_all) / np.log(2), h


@pytest.mark.parametrize("n_cond", [1, 3])
def test_matches_brute_force_across_blocks_and_classes(n_cond):
    rng = np.random.default_rng(1)
    y = np.sort(rng.integers(0, 3, 40))  # sorted: the estimator keeps the order, so the draws line up
    samples = np.tanh(rng.normal(size=(40, 1, 3)) + 0.3 * rng.normal(size=(40, n_cond, 3)))
    ixt, iyt, h = reference(samples, y, 0.3, 6, seed=2)
    for block in (16, 50, 4096):  # blocks of 2 or 8 inputs cut through classes; 4096 is one block
        est = NoisySP(sigma=0.3, n_mc=6, seed=2, block=block)
        assert est.information_plane_conditional(samples, y) == pytest.approx((ixt, iyt), abs=1e-9)
        if n_cond == 1:
            assert est.information_plane(samples[:, 0], y) == pytest.approx((ixt, iyt), abs=1e-9)
            assert est.entropy(samples[:, 0]) == pytest.approx(h, abs=1e-9)  # sorted labels: same draws


def test_single_neuron_compression_is_clustering():
    # Goldfeld et al.'s example: X uniform on {-3,-1,1,3}, S = tanh(wX - 2w), T = S + N(0, 0.1^2). As w grows
    # -3, -1 and 1 merge at -1 while 3 goes to +1: I(X;T) rises, then falls to H(1/4, 3/4) = 0.811 bits.
    x, sigma = np.array([-3.0, -1.0, 1.0, 3.0]), 0.1
    y = np.array([0, 0, 0, 1])
    est = NoisySP(sigma=sigma, n_mc=2000)
    ws = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0]
    values = []
    for w in ws:
        s = np.tanh(w * x - 2 * w)
        truth = mixture_entropy_bits(s, sigma) - gaussian_entropy_bits(sigma)
        ixt, iyt = est.information_plane(s[:, None], y)
        # The 4 rows ARE P_S (no plug-in error): only Monte Carlo error, std <= 0.011 bits over seeds
        # measured at n_mc = 2000 (largest at w = 0.1, where all four components overlap): 4.5 std.
        assert ixt == pytest.approx(truth, abs=0.05)
        assert 0.0 <= iyt <= ixt + 0.05
        values.append(ixt)
    peak = int(np.argmax(values))
    assert 0 < peak < len(ws) - 1 and values[peak] > 1.5  # rise (truth: 1.15 -> 1.53 bits at w = 0.5) ...
    assert values[-1] == pytest.approx(0.8113, abs=1e-3)  # ... then fall to H(1/4): three inputs merged


@pytest.mark.parametrize("spacing", [1.0, 2.0])
def test_conditional_samples_against_closed_form(spacing):
    # samples[i] ~ N(mu_i, tau^2): T | X = x_i ~ N(mu_i, tau^2 + sigma^2), I(X;T) = h(mixture) - h(N) by quadrature.
    rng = np.random.default_rng(3)
    sigma = tau = 0.1
    sd = np.hypot(sigma, tau)
    mu = np.arange(4) * spacing * sd  # neighbours 1 or 2 noise widths apart: partly overlapping
    samples = mu[:, None, None] + tau * rng.normal(size=(4, 128, 1))
    truth = mixture_entropy_bits(mu, sd) - gaussian_entropy_bits(sd)
    ixt, _ = NoisySP(sigma=sigma, n_mc=64).information_plane_conditional(samples, np.arange(4) % 2)
    # Measured over sample sets and seeds: error mean <= 0.03, std <= 0.05 bits (plug-in error of 128
    # samples per input dominates): 3 std.
    assert ixt == pytest.approx(truth, abs=0.15)


def test_conditional_samples_limits():
    rng = np.random.default_rng(4)
    noise = 0.1 * rng.normal(size=(8, 64, 2))
    y = np.arange(8) % 2
    est = NoisySP(sigma=0.1, n_mc=16)
    # Far-apart inputs: the mixture over all samples is 1/8 of each input's own mixture at its points, so the
    # common-random-number estimate is log2(8) and H(Y) = 1 bit exactly.
    far = noise + 100 * np.arange(8)[:, None, None]
    assert est.information_plane_conditional(far, y) == pytest.approx((3.0, 1.0), abs=1e-9)
    # Identical inputs: I = 0; the plug-in estimate is biased up (each point's own input holds 1/64 of the
    # centres, not 1/512): measured 0.007 bits here.
    ixt, iyt = est.information_plane_conditional(noise, y)
    assert isinstance(ixt, float) and isinstance(iyt, float)
    assert ixt < 0.03 and iyt < 0.03
    const = np.ones((5, 4, 3))
    assert est.information_plane_conditional(const, np.arange(5) % 2) == (0.0, 0.0)


def test_shuffled_labels_and_determinism():
    rng = np.random.default_rng(5)
    a = np.tanh(rng.normal(size=(512, 3)))
    y = (a[:, 0] > 0).astype(int)
    est = NoisySP(sigma=0.3)
    ixt, iyt = est.information_plane(a, y)
    assert iyt > 0.5  # the label is a function of the first unit
    # Noise spanning neighbours: shuffled labels carry ~nothing (measured 0.022 bits; 0.014-0.030 for other draws).
    assert est.information_plane(a, rng.permutation(y))[1] < 0.06
    assert est.information_plane(a, y) == (ixt, iyt)  # same seed, same numbers
    other = NoisySP(sigma=0.3, seed=1).information_plane(a, y)
    assert other != (ixt, iyt) and other == pytest.approx((ixt, iyt), abs=0.05)


@pytest.mark.slow
def test_memory_is_bounded_by_blocks():
    a = np.random.default_rng(6).normal(size=(2000, 5))
    tracemalloc.start()
    NoisySP(n_mc=10, block=64).information_plane(a, np.zeros(2000, dtype=np.int64))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6  # one (64, 2000) float64 block is 1 MB; the (20000, 2000) exponent matrix would be 320 MB


def test_errors_and_registration():
    est = estimators.get("noisy_sp", sigma=0.1)
    with pytest.raises(NotImplementedError, match="no such channel"):
        est.mutual_information(np.zeros((4, 1)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="n_inputs, n_cond, n_units"):
        est.information_plane_conditional(np.zeros((4, 2)), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="NaN or inf"):
        est.information_plane_conditional(np.full((4, 2, 1), np.nan), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="3 entries but activity has 4 rows"):
        est.information_plane_conditional(np.zeros((4, 2, 1)), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="sigma"):
        estimators.get("noisy_sp", sigma=0.0)
    # In a trial it measures a noisy network through that network's noise (tests/test_noisy_nets.py).
    cfg = config.validate({"model": {"noise_std": 0.1}, "estimators": [{"method": "noisy_sp", "sigma": 0.1}]})
    assert cfg.estimators[0] == NoisySP(sigma=0.1)


def test_pooled_epochs_are_conditional_samples():
    rng = np.random.default_rng(7)
    a = np.tanh(rng.normal(size=(100, 3)))
    y = rng.integers(0, 2, 100)
    est = NoisySP(sigma=0.2, n_mc=4)
    # Identical epochs: the same points (the offsets pick among equal copies), the same mixtures.
    assert est.pooled_information_plane([a, a, a], y) == pytest.approx(est.information_plane(a, y), abs=1e-9)
    far = np.array([[0.0], [10.0]])
    assert est.pooled_information_plane([far, far + 1e-3], np.array([0, 1])) == pytest.approx((1.0, 1.0), abs=1e-9)
    # Inputs swapping places: given X, T is the same two-component mixture as T itself.
    assert est.pooled_information_plane([far, far[::-1]], np.array([0, 1])) == pytest.approx((0.0, 0.0), abs=1e-9)
