"""Quantized networks: k-level hidden units, straight-through gradients, the exact plug-in estimator, a trial."""

from math import log2

import numpy as np
import pytest
from mlflow import MlflowClient

from ib_sweeps import config, data, estimators, tracking

pytestmark = pytest.mark.usefixtures("tf_ready")


def _h(*p):
    return -sum(q * log2(q) for q in p)


@pytest.mark.parametrize(
    ("activation", "levels"), [("tanh", 2), ("tanh", 5), ("sigmoid", 4), ("softsign", 32), ("relu6", 32)]
)
def test_quantize_rounds_to_levels_with_straight_through_gradient(activation, levels):
    import tensorflow as tf

    from ib_sweeps import models

    lo, hi = models.BOUNDED_RANGES[activation]
    x = tf.constant(np.random.default_rng(0).uniform(lo, hi, size=(500, 3)), tf.float32)
    upstream = tf.constant(np.random.default_rng(1).normal(size=(500, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        q = models.quantize(x, activation, levels)
        loss = tf.reduce_sum(upstream * q)
    f32 = np.float32
    grid = f32(lo) + np.arange(levels, dtype=f32) * f32(hi - lo) / f32(levels - 1)  # as the float32 graph
    values = np.unique(q.numpy())
    assert len(values) <= levels and np.isin(values, grid).all() and grid[-1] == hi
    assert np.abs(q.numpy() - x.numpy()).max() <= (hi - lo) / (levels - 1) / 2 + 1e-6  # the nearest level
    assert np.array_equal(tape.gradient(loss, x).numpy(), upstream.numpy())  # identity backward


def test_quantized_layer_gradient_equals_the_unquantized_one():
    # A loss linear in the layer's output has the same upstream gradient at any output, so the straight-through
    # gradient with respect to the weights is exactly the unquantized network's.
    import keras
    import tensorflow as tf

    from ib_sweeps import models

    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(64, 5)), tf.float32)
    c = tf.constant(rng.normal(size=(64, 4)), tf.float32)
    layer = keras.layers.Dense(4, activation="tanh")
    layer.build((None, 5))
    grads = []
    for levels in (None, 3):
        with tf.GradientTape() as tape:
            t = layer(x)
            if levels:
                t = models.quantize(t, "tanh", levels)
            loss = tf.reduce_sum(c * t)
        grads.append([g.numpy() for g in tape.gradient(loss, layer.trainable_variables)])
    assert all(np.array_equal(a, b) for a, b in zip(*grads, strict=True))


def test_plugin_hand_computed():
    # Rows A, A, B, C (B = C with -0.0 for 0.0 would be the same state); labels 0, 0, 1, 1:
    # H(T) = H(1/2, 1/4, 1/4) = 1.5 bits; T | Y=0 is A, A (0 bits), T | Y=1 is B, C (1 bit): I(Y;T) = 1.
    t = np.array([[-1.0, 1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    assert estimators.information_plane(t, y, method="plugin") == pytest.approx((1.5, 1.0), abs=1e-12)
    signed = np.array([[0.0, 1.0], [-0.0, 1.0], [0.5, 0.0], [0.5, -0.0]])
    assert estimators.information_plane(signed, y, method="plugin") == pytest.approx((1.0, 1.0), abs=1e-12)
    assert estimators.entropy(t, method="plugin") == pytest.approx(_h(0.5, 0.25, 0.25))
    assert estimators.mutual_information(t, y[:, None], method="plugin") == pytest.approx(1.0)


def test_plugin_is_binning_with_one_bin_per_level():
    rng = np.random.default_rng(3)
    levels = 5
    grid = np.linspace(-1, 1, levels).astype(np.float32)
    a = grid[rng.integers(0, levels, size=(3000, 4))]
    y = rng.integers(0, 3, 3000)
    step = 2 / (levels - 1)  # edges halfway between levels: n_bins - 1 = levels - 2 inner bins, 2 outer ones
    aligned = estimators.get("binning", n_bins=levels - 1, range=(-1 + step / 2, 1 - step / 2))
    assert estimators.get("plugin").information_plane(a, y) == pytest.approx(aligned.information_plane(a, y), abs=1e-12)


def _quantized_core(levels, seed=0, activation="tanh"):
    from ib_sweeps import train

    model = {"hidden": [6, 4], "quantize_levels": levels, "activation": activation}
    cfg = config.validate({"seed": seed, "model": model, "train": {"epochs": 20}, "estimators": [{"method": "plugin"}]})
    d = data.load(cfg.data, np.random.default_rng(seed))
    return train.build_core(cfg.model, cfg.train, d, seed, snapshot_capacity=19)


@pytest.mark.slow
def test_quantized_network_units_take_at_most_k_values_and_it_learns():
    core = _quantized_core(3)
    rows0, _ = core.advance(0)
    rows, acts, snaps = core.advance_with_snapshots(20)
    for a in acts[:-1]:  # hidden layers: levels -1, 0, 1
        assert all(len(np.unique(a[:, j])) <= 3 for j in range(a.shape[1]))
        assert np.isin(a, [-1.0, 0.0, 1.0]).all()
    states = [len(np.unique(a, axis=0)) for a in acts]
    assert states[2] <= states[1] <= 3**4  # the softmax is a function of the last hidden layer's state
    assert np.isfinite(rows).all() and rows[-1, 0] < rows0[0, 0]  # straight-through gradients train it
    again = core.activity_from(snaps[-1])  # epoch 19 from its snapshot: quantized the same way
    assert all(np.isin(a, [-1.0, 0.0, 1.0]).all() for a in again[:-1])


@pytest.mark.slow
def test_relu6_quantized_units_lie_on_its_levels_and_it_learns():
    # The bounded ReLU of the quantized sweep's activation axis: 4 levels over [0, 6] are 0, 2, 4 and 6.
    core = _quantized_core(4, activation="relu6")
    rows0, _ = core.advance(0)
    rows, acts = core.advance(20)
    assert all(np.isin(a, [0.0, 2.0, 4.0, 6.0]).all() for a in acts[:-1])
    assert np.isfinite(rows).all() and rows[-1, 0] < rows0[0, 0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"model": {"activation": "relu", "quantize_levels": 4}},
            r"model.quantize_levels: got 4 with model.activation",
        ),
        (
            {"model": {"activation": ["tanh", "elu"], "hidden": [3, 2], "quantize_levels": 4}},
            r"\['elu'\]; allowed only with bounded activations \(tanh, softsign, sigmoid, relu6\)",
        ),
        ({"model": {"quantize_levels": 1}}, r"model.quantize_levels: .*greater than or equal to 2"),
        ({"model": {"quantize_levels": 4.0}}, r"model.quantize_levels"),
        ({"model": {"quantize_levels": 4, "noise_std": 0.1}}, r"model.quantize_levels: .*model.noise_std 0.1"),
        ({"estimators": [{"method": "plugin"}]}, r"estimators\[0\] \(plugin\): exact only for a quantized network"),
    ],
)
def test_bad_quantized_configs_name_the_keys(raw, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate(raw)


@pytest.mark.slow
def test_quantized_trial_end_to_end(tracking_uri):
    from ib_sweeps.trial import run_trial

    cfg = config.validate(
        {
            "model": {"hidden": [6, 3], "quantize_levels": 3},
            "train": {"epochs": 15, "gradient_stats": False},
            "schedule": {"kind": "list", "epochs": [0, 5, 15]},
            # Binning with edges halfway between the levels -1, 0, 1 gives the plug-in values on hidden layers.
            "estimators": [{"method": "plugin"}, {"method": "binning", "n_bins": 2, "range": [-0.5, 0.5]}],
            "pooled": {"window": 3},
        }
    )
    assert config.flatten(cfg)["model.quantize_levels"] == "3"
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, experiment="q", progress=False))
    metrics = MlflowClient(tracking_uri).get_run(result.run_id).data.metrics
    ixt, iyt = np.stack(result.trace.ixt), np.stack(result.trace.iyt)  # (epochs, estimators, layers)
    assert np.array_equal(ixt[:, 0, :2], ixt[:, 1, :2]) and np.array_equal(iyt[:, 0, :2], iyt[:, 1, :2])
    assert (ixt[:, 0, 1] <= log2(3**3) + 1e-9).all()  # 3 units of 3 levels: at most 27 states
    assert (ixt[:, 0, 2] <= ixt[:, 0, 1] + 1e-9).all()  # data processing, exactly: output after last hidden
    assert metrics["ixt/plugin/layer_2"] == pytest.approx(ixt[-1, 0, 1])
    assert 0 <= metrics["pooled/ixt/plugin/layer_1"] <= 12  # the last 3 epochs pooled, exact plug-in
