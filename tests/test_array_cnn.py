"""CNN replicas in trial arrays (ib_sweeps.train.array_cnn) and Adadelta: replica r is the core alone with seed r.

Inputs bit-identical (initial weights, minibatch orders); epoch-0 activity of
every layer equal to float rounding, in the same shapes and layer names;
trained numbers as docs/explanation/trial-arrays.md states them.
"""

import dataclasses

import numpy as np
import pytest

from ib_sweeps import config, data

pytestmark = pytest.mark.usefixtures("tf_ready")

SEEDS = (0, 1)
EPOCHS = 10
# The cnn sweep's network, data and optimizer (sweeps/cnn.yaml), few epochs.
CNN = {
    "data": {"name": "digits", "train_fraction": 0.8, "split": "shuffled", "measure_on": "all"},
    "model": {"kind": "cnn", "conv": [32, 64], "kernel": 3, "pool": 2, "dense": [128], "init": "keras_default"},
    "train": {"optimizer": "adadelta", "learning_rate": 1.0, "batch_size": 128, "epochs": EPOCHS},
}


def _cnn(seed, activation="relu", **train):
    raw = {**CNN, "seed": seed, "model": {**CNN["model"], "activation": activation}}
    return config.validate(raw | {"train": {**CNN["train"], **train}})


def _close(a, b, rtol):
    """|a - b| <= rtol * max(|a|, |b|) elementwise, a floor of rtol for entries near zero."""
    return np.all(np.abs(a - b) <= rtol * np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0))


def _rel(a, b):
    """Largest relative difference (a floor of 1 for the scale); NaN entries (pooling rows) left out."""
    return float(np.nanmax(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)))


@pytest.fixture(scope="module")
def pair():
    """Two CNN replicas (seeds 0, 1, own splits; relu and tanh) and each alone: weights, epochs 0, 1 and 10."""
    from ib_sweeps import train
    from ib_sweeps.train.array import build_array_core

    cfgs = [_cnn(0, "relu"), _cnn(1, "tanh", learning_rate=0.5)]
    datasets = [data.load(c.data, np.random.default_rng(s)) for c, s in zip(cfgs, SEEDS, strict=True)]
    alone = [train.build_core(c.model, c.train, d, s) for c, d, s in zip(cfgs, datasets, SEEDS, strict=True)]
    arr = build_array_core([c.model for c in cfgs], [c.train for c in cfgs], datasets, list(SEEDS))
    got = {"arr": arr, "w0": arr.weights(), "w0_alone": [core.weights() for core in alone], "datasets": datasets}
    got["orders"] = {e: arr.orders(e) for e in (1, 2, EPOCHS)}
    got["first"] = arr.advance(0)
    got["one"], got["w1"] = arr.advance(1), arr.weights()
    got["last"], got["w"] = arr.advance(EPOCHS), arr.weights()
    got["grads"] = arr.gradient_stats(0, EPOCHS + 1)
    got["alone"] = []
    for core in alone:
        zero, one, w1 = core.advance(0), core.advance(1), core.weights()
        last = core.advance(EPOCHS)
        got["alone"].append((zero, one, w1, last, core.weights(), core.gradient_stats(0, EPOCHS + 1)))
    got["names_alone"] = [core.layer_names for core in alone]
    # The ReLU trial alone once more, its kernels one ulp up: how far it drifts from itself.
    core = train.build_core(cfgs[0].model, cfgs[0].train, datasets[0], SEEDS[0])
    for layer in core.layers:
        if layer.trainable_variables:
            layer.kernel.assign(np.nextafter(layer.kernel.numpy(), np.float32(np.inf)))
    core.advance(0)
    rows, _ = core.advance(EPOCHS)
    got["ulp"] = (rows[1:, [0, 2]], core.weights())  # epochs 2-10, as "last"
    return got


@pytest.mark.slow
def test_inputs_bit_identical_to_the_cnn_alone(pair):
    import tensorflow as tf

    from ib_sweeps.train import minibatch_order, split_seed

    for r, seed in enumerate(SEEDS):
        assert np.array_equal(pair["w0"][r], pair["w0_alone"][r])
        # The CNN core alone draws its order in a plain graph (no XLA).
        n, order_seed = len(pair["datasets"][r].x_train), split_seed(seed)[1]
        order = tf.function(lambda e, s=order_seed, n=n: minibatch_order(s, e, n), jit_compile=False)
        for epoch, orders in pair["orders"].items():
            assert np.array_equal(orders[r], order(tf.constant(epoch)).numpy())


@pytest.mark.slow
def test_epoch_zero_activity_and_layers_as_alone(pair):
    assert all(pair["arr"].layer_names == names for names in pair["names_alone"])
    for r in range(len(SEEDS)):
        (rows0, acts0), *_ = pair["alone"][r]
        arr_rows0, arr_acts0 = pair["first"][r]
        assert _close(arr_rows0, rows0, 1e-6)
        assert [a.shape for a in arr_acts0] == [a.shape for a in acts0]  # conv, pool: (n, h, w, c)
        assert all(a.dtype == b.dtype for a, b in zip(arr_acts0, acts0, strict=True))
        assert all(_close(a, b, 1e-6) for a, b in zip(arr_acts0, acts0, strict=True))  # float rounding


@pytest.mark.slow
def test_first_epoch_agrees_to_rounding(pair):
    """After one epoch (12 Adadelta steps) losses and weights agree within 1e-5 relative."""
    for r in range(len(SEEDS)):
        _, (rows1, _), w1, *_ = pair["alone"][r]
        assert _close(pair["one"][r][0][:, [0, 2]], rows1[:, [0, 2]], 1e-5)
        assert _close(pair["w1"][r], w1, 1e-5)


@pytest.mark.slow
def test_ten_epochs_losses_as_alone_relu_as_close_as_the_trial_alone_to_itself(pair):
    """After 10 epochs: the tanh replica's losses within 1e-5 relative of the trial alone's, its weights within
    5e-4; the ReLU replica no farther than the trial alone from itself with its kernels moved by one ulp.

    Adadelta divides each gradient by its own running RMS, so a weight whose gradient is a near-cancelling sum
    takes a step set by that sum's rounding: summed in another order (im2col matmuls vs oneDNN convolutions)
    its steps differ by more than rounding (tanh, lr 0.5: weights 1e-6 after 1 epoch, 7e-5 after 10; lr 1.0:
    2e-7 after 10).

    ReLU with Adadelta (lr 1.0) does not keep rounding differences at rounding: a unit or pooling window that
    switches where a value sits within rounding of zero or of a tie moves weights whose gradient history is
    near zero by a whole Adadelta step (~1e-3). The perturbed trial alone drifts as far (1e-3 after 2 epochs,
    2e-2 after 10; docs/explanation/trial-arrays.md), so no arithmetic short of bit-identical could do better.
    """
    for r in range(len(SEEDS)):
        *_, (rows, acts), w, grads = pair["alone"][r]
        arr_rows, arr_acts = pair["last"][r]
        if r == 1:  # tanh: losses within 1e-5 (measured 1e-6), weights within 5e-4 (measured 7e-5)
            assert _close(arr_rows[:, [0, 2]], rows[:, [0, 2]], 1e-5)  # losses, epochs 2-10
            assert _close(pair["w"][r], w, 5e-4)
            assert _rel(pair["grads"][1:, r], grads[1:]) < 1e-3
        else:
            drift_rows, drift_w = pair["ulp"]
            assert _rel(arr_rows[:, [0, 2]], rows[:, [0, 2]]) <= 3 * max(_rel(drift_rows, rows[:, [0, 2]]), 1e-5)
            assert _rel(pair["w"][r], w) <= 3 * max(_rel(drift_w, w), 1e-5)
        assert all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(arr_acts, acts, strict=True))
        g = pair["grads"][:, r]
        assert np.array_equal(np.isnan(g), np.isnan(grads))  # pooling (layer_3) NaN, as alone
        assert np.isnan(g[:, 2]).all() and np.isfinite(g[1:, [0, 1, 3, 4]]).all()
        assert _rel(g[1:2], grads[1:2]) < 1e-4  # epoch 1


def test_adadelta_replicas_agree_with_the_mlp_alone():
    """Adadelta written elementwise, a learning rate per replica: an MLP array within 1e-5 of each core alone."""
    from ib_sweeps import train
    from ib_sweeps.train.array import build_array_core

    cfgs = [
        config.validate({"seed": s, "model": {"hidden": [6, 4]}, "train": {"epochs": 12, **t}})
        for s, t in ((0, {"optimizer": "adadelta", "learning_rate": 1.0}), (1, {"optimizer": "adadelta"}))
    ]
    ds = [data.load(c.data, np.random.default_rng(s)) for s, c in enumerate(cfgs)]
    arr = build_array_core([c.model for c in cfgs], [c.train for c in cfgs], ds, [0, 1])
    arr.advance(0)
    out = arr.advance(12)
    for r, (c, d) in enumerate(zip(cfgs, ds, strict=True)):
        core = train.build_core(c.model, c.train, d, r)
        core.advance(0)
        rows, _ = core.advance(12)
        assert _close(out[r][0][:, [0, 2]], rows[:, [0, 2]], 1e-5)
        assert _close(arr.weights()[r], core.weights(), 1e-5)


def test_cnn_configs_train_in_arrays_unless_too_big():
    from ib_sweeps.trial_array import unsupported

    assert unsupported(_cnn(0)) is None
    mnist = config.validate({**CNN, "data": {"name": "mnist"}})
    assert "run alone" in unsupported(mnist)


@pytest.mark.parametrize("n_classes", [2, 11])
def test_too_big_counts_the_data_sets_classes(monkeypatch, n_classes):
    """The core alone's chunking rule with the registry's class count: at a limit that n_classes just fits,
    such a set runs in arrays, and one more class runs alone (a count of 10 assumed gets one case wrong)."""
    from ib_sweeps import models, train
    from ib_sweeps.train.array_cnn import too_big

    cfg = _cnn(0)
    rows = config.measured_inputs(cfg.data)  # measure_on all: every example, as the array evaluates
    source = data.DATASETS["digits"]
    fits = rows * 4 * models.activity_floats(cfg.model, source.input_shape, n_classes)
    monkeypatch.setattr(train, "EVAL_BYTES", fits)
    monkeypatch.setitem(data.DATASETS, "digits", dataclasses.replace(source, n_classes=n_classes))
    assert too_big(cfg) is None
    monkeypatch.setitem(data.DATASETS, "digits", dataclasses.replace(source, n_classes=n_classes + 1))
    assert "run alone" in too_big(cfg)


@pytest.mark.slow
def test_a_cnn_replica_logs_what_the_trial_alone_logs(tracking_uri):
    from test_trial_arrays import _opts, assert_logs_as_alone

    from ib_sweeps import tracking
    from ib_sweeps.trial import run_trial
    from ib_sweeps.trial_array import run_array

    ests = [
        {"label": "binning_concat", "method": "binning", "bin_size": 0.5, "reducer": "concat"},
        {"label": "binning_mean", "method": "binning", "bin_size": 0.5, "reducer": "mean"},
    ]
    cfgs = [
        config.validate(config.to_dict(_cnn(s, a, epochs=3)) | {"schedule": {"kind": "every"}, "estimators": ests})
        for s, a in ((0, "relu"), (1, "tanh"))
    ]
    client = tracking.open_client(tracking_uri)
    in_array = run_array(cfgs, _opts(tracking_uri, ["a0", "a1"]))
    alone = [run_trial(c, o) for c, o in zip(cfgs, _opts(tracking_uri, ["s0", "s1"]), strict=True)]
    for a, b in zip(in_array, alone, strict=True):
        assert_logs_as_alone(client, a, b)
        np.testing.assert_allclose(a.trace.history[:2], b.trace.history[:2], rtol=1e-5)  # epochs 0, 1
        np.testing.assert_array_equal(a.trace.ixt[0], b.trace.ixt[0])  # the untrained network: the same planes


def test_the_cnn_sweep_lays_out_in_arrays_when_asked():
    from ib_sweeps import sweep as sweeps
    from ib_sweeps.sweep import arrays

    sw = sweeps.load("cnn", profile="quick", overrides=["resources.array_size=4", "seeds=3"])
    plan = arrays.layout(sw, sw.trials(), slots=2)
    assert [len(a) for a in plan.arrays] == [4, 2]  # 6 trials, one group: the activation is per replica
    # auto: on CPUs an array of CNNs trains no faster than each alone (measured), so they stay alone.
    auto = sweeps.load("cnn", profile="quick", overrides=["seeds=3"])
    plan = arrays.layout(auto, auto.trials(), slots=2)
    assert all(len(a) == 1 for a in plan.arrays) and "CNN trials on CPUs" in plan.reason
