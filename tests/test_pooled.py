"""Pooled ("as-if-random") estimates: the activity of W epochs as one sample of (input, epoch) rows."""

from math import log2

import numpy as np
import pytest

from ib_sweeps import estimators

METHODS = estimators.available()
# Estimators whose I(G;T) is unchanged when every row is repeated W times (plug-in
# and mixture estimators): identical epochs give the single-epoch estimate to
# rounding. kNN counts see the copies as neighbours; Monte Carlo ones redraw.
DUPLICATION_EXACT = {"binning", "adaptive_binning", "kde_upper", "kde_lower"}


def _h(*p):
    return -sum(q * log2(q) for q in p)


def _drifting(n=200, w=4, d=3, step=0.05, seed=0):
    """W epochs of tanh activity drifting by ``step`` per epoch, and labels from the activity."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    y = (z[:, 0] > 0).astype(np.int64)
    acts = []
    for _ in range(w):
        acts.append(np.tanh(z))
        z = z + step * rng.normal(size=(n, d))
    return acts, y


def test_alternating_codes_carry_no_information():
    # 2 inputs whose bins swap every epoch: given X, T is uniform over both bins.
    acts = [np.array([[-0.5], [0.5]]), np.array([[0.5], [-0.5]])]
    ixt, iyt = estimators.pooled_information_plane(acts, np.array([0, 1]), n_bins=3)
    assert (ixt, iyt) == (0.0, 0.0)


def test_hand_computed_binning():
    # Epoch codes [A, B, C] then [A, B, B]: T over the 6 rows is A 2/6, B 3/6, C 1/6,
    # H(T|X) = (0 + 0 + 1) / 3; labels [0, 0, 1]: T | Y=0 is A,B,A,B and T | Y=1 is C,B (1 bit each).
    acts = [np.array([[-0.8], [0.1], [0.8]]), np.array([[-0.8], [0.1], [0.1]])]
    ixt, iyt = estimators.pooled_information_plane(acts, np.array([0, 0, 1]), n_bins=4)  # bins at -1, -1/3, 1/3, 1
    assert ixt == pytest.approx(_h(2 / 6, 3 / 6, 1 / 6) - 1 / 3, abs=1e-9)
    assert iyt == pytest.approx(_h(2 / 6, 3 / 6, 1 / 6) - 1.0, abs=1e-9)
    assert ixt < log2(3)  # below H(X), though each epoch alone is a deterministic function of X


def test_kde_separated_and_swapping_inputs():
    far = np.array([[0.0], [10.0]])
    same = estimators.pooled_information_plane([far, far + 1e-3], np.array([0, 1]), method="kde_upper")
    swapped = estimators.pooled_information_plane([far, far[::-1]], np.array([0, 1]), method="kde_upper")
    assert same == pytest.approx((1.0, 1.0), abs=1e-9)
    assert swapped == pytest.approx((0.0, 0.0), abs=1e-9)


def test_independent_noise_each_epoch_gives_about_zero():
    rng = np.random.default_rng(1)
    acts = [rng.uniform(-1, 1, size=(8, 1)) for _ in range(2000)]
    ixt, _ = estimators.pooled_information_plane(acts, np.arange(8) % 2, n_bins=5)
    assert 0 <= ixt < 0.01  # plug-in bias ~ (bins - 1)(n - 1) / (2 n W ln 2) ~ 1e-3


def test_binning_many_inputs_in_linear_memory():
    # One group per input: a dense (states x inputs) table would be ~8 GB here.
    rng = np.random.default_rng(2)
    acts = [np.tanh(rng.normal(size=(20000, 6))) for _ in range(5)]
    ixt, iyt = estimators.pooled_information_plane(acts, np.arange(20000) % 2, n_bins=8)
    assert 0 <= ixt <= log2(20000) and 0 <= iyt <= 1


@pytest.mark.parametrize(
    ("activities", "labels", "message"),
    [
        ([], np.zeros(3, int), "at least one epoch"),
        ([np.zeros((3, 2)), np.zeros((3, 3))], np.zeros(3, int), r"epoch 0 has \(3, 2\), epoch 1 has \(3, 3\)"),
        ([np.zeros((3, 2)), np.zeros((4, 2))], np.zeros(3, int), "one shape"),
        (np.zeros((3, 2)), np.zeros(3, int), r"one per epoch; item 0 has shape \(2,\)"),
        ([np.zeros((3, 2))] * 2, np.zeros(4, int), "4 entries but activity has 3 rows"),
        ([np.zeros((3, 2)), np.full((3, 2), np.nan)], np.zeros(3, int), "NaN or inf"),
    ],
)
def test_bad_input_raises_clear_value_error(activities, labels, message):
    with pytest.raises(ValueError, match=message):
        estimators.pooled_information_plane(activities, labels)


# Conformance: every registered estimator.


@pytest.mark.parametrize("method", METHODS)
def test_window_of_one_is_the_ordinary_estimate(method):
    acts, y = _drifting(w=1)
    assert estimators.pooled_information_plane(acts, y, method=method) == estimators.information_plane(
        acts[0], y, method=method
    )


@pytest.mark.parametrize("method", METHODS)
def test_group_form_is_the_ordinary_iyt(method):
    # The pooled estimates reuse each estimator's I(Y;T) as I(G;T): overrides must agree with it.
    acts, y = _drifting(n=150, w=1)
    est = estimators.get(method)
    assert est._group_information(acts[0], y) == pytest.approx(est.information_plane(acts[0], y)[1], abs=1e-9)


@pytest.mark.parametrize("method", sorted(DUPLICATION_EXACT & set(METHODS)))
def test_singleton_groups_give_the_ordinary_ixt(method):
    # I(X;T) with one row per input, in group form: the W = 1 limit of the pooled estimate.
    acts, y = _drifting(n=150, w=1)
    est = estimators.get(method)
    assert est._group_information(acts[0], np.arange(150)) == pytest.approx(est.information_plane(acts[0], y)[0])


@pytest.mark.parametrize("method", METHODS)
def test_identical_epochs_give_the_single_epoch_estimate(method):
    acts, y = _drifting(n=150, w=1)
    single = estimators.information_plane(acts[0], y, method=method)
    pooled = estimators.pooled_information_plane(acts * 3, y, method=method)
    if method in DUPLICATION_EXACT:
        assert pooled == pytest.approx(single, abs=1e-9)
    elif method == "ksg":  # distinct rows: the Ross estimate overshoots log2 n and is clipped there
        assert pooled[0] == pytest.approx(single[0], abs=1e-12) and single[0] == pytest.approx(log2(150))
    else:
        assert pooled == pytest.approx(single, abs=0.1)


@pytest.mark.parametrize("method", METHODS)
def test_bounds_and_determinism(method):
    acts, y = _drifting(n=120, w=5, step=0.5, seed=3)
    ixt, iyt = estimators.pooled_information_plane(acts, y, method=method)
    assert isinstance(ixt, float) and isinstance(iyt, float)
    assert 0 <= ixt <= log2(120) and 0 <= iyt <= 1
    assert (ixt, iyt) == estimators.pooled_information_plane(acts, y, method=method)


@pytest.mark.parametrize("method", METHODS)
def test_noise_each_epoch_carries_little_about_x(method):
    # T independent of X; wide enough noise for the kernel estimators' default widths.
    rng = np.random.default_rng(4)
    acts = [rng.uniform(-1, 1, size=(6, 1)) for _ in range(300)]
    ixt, _ = estimators.pooled_information_plane(acts, np.arange(6) % 2, method=method)
    assert ixt < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_conv_activity_reduced_per_epoch(method):
    rng = np.random.default_rng(6)
    conv = [np.tanh(rng.normal(size=(60, 2, 2, 3))) for _ in range(3)]  # (inputs, height, width, channels)
    y = rng.integers(0, 2, 60)
    concat, mean = estimators.get(method, reducer="concat"), estimators.get(method, reducer="mean")
    flat = [c.reshape(60, -1) for c in conv]
    assert concat.pooled_information_plane(conv, y) == concat.pooled_information_plane(flat, y)
    per_channel = [concat.pooled_information_plane([c[..., k].reshape(60, -1) for c in conv], y) for k in range(3)]
    assert mean.pooled_information_plane(conv, y) == pytest.approx(tuple(np.mean(per_channel, axis=0)))
