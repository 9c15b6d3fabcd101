"""Conformance suite: every registered estimator honours the shared contract."""

from math import log2

import numpy as np
import pytest

from ib_sweeps import estimators

METHODS = estimators.available()


def test_registry_lists_methods():
    assert "binning" in METHODS
    assert sorted(estimators.REGISTRY) == METHODS


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="unknown estimator 'nope'; available: adaptive_binning, binning"):
        estimators.get("nope")


@pytest.mark.parametrize("method", METHODS)
def test_bad_parameter_is_named(method):
    with pytest.raises(ValueError, match=f"estimator {method!r}.*not_a_param"):
        estimators.get(method, not_a_param=1)


@pytest.mark.parametrize("method", METHODS)
def test_output_in_bits_and_bounds(method):
    rng = np.random.default_rng(0)
    a = np.tanh(rng.normal(size=(256, 4)))
    y = rng.integers(0, 2, 256)
    ixt, iyt = estimators.information_plane(a, y, method=method)
    assert isinstance(ixt, float) and isinstance(iyt, float)
    assert 0 <= ixt <= log2(256) + 1e-9
    assert 0 <= iyt <= 1 + 1e-9
    assert (ixt, iyt) == estimators.information_plane(a, y, method=method)  # deterministic


@pytest.mark.parametrize("method", METHODS)
def test_constant_activity_gives_zero(method):
    assert estimators.information_plane(np.ones((50, 3)), np.arange(50) % 2, method=method) == (0.0, 0.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("activity", "labels", "message"),
    [
        (np.array([[np.nan, 0.0], [0.0, 0.0]]), np.array([0, 1]), "NaN or inf"),
        (np.array([[np.inf], [0.0]]), np.array([0, 1]), "NaN or inf"),
        (np.zeros(4), np.zeros(4, int), "must be 2-D"),
        (np.zeros((0, 3)), np.zeros(0, int), "non-empty"),
        (np.zeros((4, 2)), np.zeros(3, int), "3 entries but activity has 4 rows"),
        (np.zeros((4, 2)), np.zeros((4, 1), int), "labels must be 1-D"),
        (np.zeros((4, 2)), np.zeros(4), "labels must be integers"),
    ],
)
def test_bad_input_raises_clear_value_error(method, activity, labels, message):
    with pytest.raises(ValueError, match=message):
        estimators.information_plane(activity, labels, method=method)


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_per_layer(method):
    rng = np.random.default_rng(5)
    layers = [np.tanh(rng.normal(size=(300, w))) for w in (6, 3, 1)]
    y = rng.integers(0, 3, 300)
    est = estimators.get(method)
    expected = [est.information_plane(a, y) for a in layers]
    assert est.information_planes(layers, y) == pytest.approx(np.array(expected), abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_conv_reducers(method):
    rng = np.random.default_rng(6)
    conv = np.tanh(rng.normal(size=(200, 3, 2, 4)))  # (inputs, height, width, channels)
    y = rng.integers(0, 2, 200)
    concat = estimators.get(method, reducer="concat")
    mean = estimators.get(method, reducer="mean")
    assert concat.information_plane(conv, y) == pytest.approx(concat.information_plane(conv.reshape(200, -1), y))
    per_channel = [concat.information_plane(conv[..., c].reshape(200, -1), y) for c in range(4)]
    assert mean.information_plane(conv, y) == pytest.approx(tuple(np.mean(per_channel, axis=0)))
    dense = np.tanh(rng.normal(size=(200, 5)))
    assert mean.information_plane(dense, y) == concat.information_plane(dense, y)  # 2-D is used as it is
    both = mean.information_planes([conv, dense], y)
    assert both[0] == pytest.approx(mean.information_plane(conv, y)) and both[1] == pytest.approx(
        concat.information_plane(dense, y)
    )


@pytest.mark.parametrize("method", METHODS)
def test_entropy_and_mutual_information_work_or_say_what_is_supported(method):
    rng = np.random.default_rng(0)
    a, b = np.tanh(rng.normal(size=(200, 2))), np.tanh(rng.normal(size=(200, 1)))
    for name, call in (
        ("entropy", lambda: estimators.entropy(a, method=method)),
        ("mutual information", lambda: estimators.mutual_information(a, b, method=method)),
    ):
        try:
            value = call()
        except NotImplementedError as err:
            assert method in str(err), f"{method}: {name} error does not name the estimator: {err}"
        else:
            assert isinstance(value, float) and np.isfinite(value), f"{method}: {name} gave {value!r}"


def test_kde_mutual_information_names_what_it_supports():
    with pytest.raises(NotImplementedError, match=r"'kde_upper' does not estimate the mutual information.*entropy"):
        estimators.mutual_information(np.zeros((4, 1)), np.zeros((4, 1)), method="kde_upper")


@pytest.mark.parametrize("method", METHODS)
def test_network_requirements_are_declared(method):
    from ib_sweeps import config

    est = estimators.get(method)
    assert isinstance(est.uses_noisy_samples, bool) and est.samples_per_input >= 0
    assert est.uses_noisy_samples == (est.samples_per_input > 0)
    for model in ({}, {"noise_std": 0.1}, {"quantize_levels": 4}):
        try:
            cfg = config.validate({"model": model, "estimators": [{"method": method}]})
        except config.ConfigError as err:  # the estimator's own check_network refused the network
            assert f"estimators[0] ({method}): needs" in str(err) or f"estimators[0] ({method}): exact" in str(err)
        else:
            cfg.estimators[0].check_network(cfg.model, "estimators[0]")
