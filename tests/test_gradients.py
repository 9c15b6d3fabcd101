"""Minibatch-gradient statistics: hand computation, full batch, the switch, and the MLflow keys of a trial."""

import numpy as np
import pytest
from mlflow import MlflowClient

from ib_sweeps import config, data, gradients, tracking
from ib_sweeps.trial import run_trial

pytestmark = pytest.mark.usefixtures("tf_ready")


def _tiny(n_train=42, seed=0) -> data.Dataset:
    """A fixed small problem: 5 binary features, label = parity of the first two."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (n_train + 8, 5)).astype(np.float32)
    y = (x[:, 0] != x[:, 1]).astype(np.int32)
    return data.Dataset("tiny", x[:n_train], y[:n_train], x[n_train:], y[n_train:], x, y, 2)


def _core(d, train, seed=3, jit=False, hidden=(4, 3)):
    from ib_sweeps import train as core_module

    cfg = config.validate({"model": {"hidden": list(hidden)}, "train": {"optimizer": "sgd", **train}})
    return core_module.build_core(cfg.model, cfg.train, d, seed, jit=jit), cfg


def _by_hand(core, d, seed, lr, batch_size, epochs, jit=False):
    """(epochs, n_layers, 3) statistics from plain eager SGD on the core's minibatches, and the final weights.

    Starts from the core's initial weights (build, do not advance it first) and
    draws the core's minibatch order (XLA draws other random numbers than eager
    TensorFlow, so for a compiled core the order is drawn compiled too); the
    update is w -= lr * g, as Keras SGD.
    """
    import tensorflow as tf

    from ib_sweeps import train

    weights = [tf.Variable(v.numpy()) for layer in core.layers for v in layer.trainable_variables]
    layers = core.layers
    _, order_seed = train.split_seed(seed)
    n = len(d.x_train)

    @tf.function(jit_compile=jit)
    def draw(epoch):
        return train.minibatch_order(order_seed, epoch, n)

    stats = []
    for epoch in range(1, epochs + 1):
        order = draw(tf.constant(epoch)).numpy()
        kernel_grads = []  # per batch: list of per-layer kernel gradients
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            with tf.GradientTape() as tape:
                h = tf.constant(d.x_train[idx])
                for i, layer in enumerate(layers):
                    h, _ = layer.stateless_call([weights[2 * i], weights[2 * i + 1]], [], h)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=d.y_train[idx], logits=h))
            grads = tape.gradient(loss, weights)
            kernel_grads.append([g.numpy().astype(np.float64).ravel() for g in grads[0::2]])
            for w, g in zip(weights, grads, strict=True):
                w.assign_sub(lr * g)
        rows = []
        for j in range(len(layers)):
            g = np.stack([batch[j] for batch in kernel_grads])  # (batches, kernel size)
            rows.append([np.linalg.norm(g.mean(axis=0)), np.linalg.norm(g.std(axis=0))])
        stats.append(gradients.with_snr(np.asarray(rows)))
    return np.stack(stats), np.concatenate([w.numpy().ravel() for w in weights])


def _flat(core):
    return np.concatenate([v.numpy().ravel() for layer in core.layers for v in layer.trainable_variables])


@pytest.mark.parametrize("batch_size", [6, 8])  # 42 = 7 x 6; 42 = 5 x 8 + a partial batch of 2
def test_statistics_equal_a_hand_computation_on_the_same_minibatches(batch_size):
    d, lr = _tiny(), 0.5
    core, _ = _core(d, {"learning_rate": lr, "batch_size": batch_size, "epochs": 3})
    expected, weights = _by_hand(core, d, 3, lr, batch_size, epochs=3)
    core.advance(0)
    core.advance(1)
    core.advance(3)  # statistics of epochs inside a call are kept too
    got = core.gradient_stats(0, 4)
    assert np.isnan(got[0]).all()  # epoch 0 trained on no batch
    assert np.allclose(_flat(core), weights, rtol=1e-5, atol=1e-6)  # the same training
    assert np.allclose(got[1:], expected, rtol=1e-4, atol=1e-7)
    assert (got[1:, :, 1] > 0).all() and np.isfinite(got[1:]).all()


@pytest.mark.slow
def test_compiled_core_matches_the_hand_computation():
    """The XLA core draws the same minibatches and gives the same statistics as eager SGD."""
    d, lr = _tiny(), 0.5
    core, _ = _core(d, {"learning_rate": lr, "batch_size": 8, "epochs": 3}, jit=True)
    expected, weights = _by_hand(core, d, 3, lr, 8, epochs=3, jit=True)
    core.advance(3)
    assert np.allclose(_flat(core), weights, rtol=1e-4, atol=1e-5)
    assert np.allclose(core.gradient_stats(1, 4), expected, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_full_batch_is_one_plain_gradient_step_per_epoch():
    import tensorflow as tf

    d, lr = _tiny(n_train=40), 0.3
    core, _ = _core(d, {"learning_rate": lr, "batch_size": "full", "epochs": 2}, jit=True)
    variables = [v for layer in core.layers for v in layer.trainable_variables]
    w = [tf.Variable(v.numpy()) for v in variables]
    for _ in range(2):  # two epochs by hand: one gradient step each on the whole training set
        with tf.GradientTape() as tape:
            h = tf.constant(d.x_train)
            for i, layer in enumerate(core.layers):
                h, _ = layer.stateless_call([w[2 * i], w[2 * i + 1]], [], h)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=d.y_train, logits=h))
        grads = tape.gradient(loss, w)
        kernel_norms = [np.linalg.norm(g.numpy()) for g in grads[0::2]]
        for v, g in zip(w, grads, strict=True):
            v.assign_sub(lr * g)
    core.advance(1)
    core.advance(2)
    assert np.allclose(_flat(core), np.concatenate([v.numpy().ravel() for v in w]), rtol=1e-5, atol=1e-6)
    stats = core.gradient_stats(2, 3)[0]
    assert stats[:, 0] == pytest.approx(kernel_norms, rel=1e-4)  # the mean is the one full gradient
    assert (stats[:, 1] == 0).all()  # one batch: no spread
    assert np.isnan(stats[:, 2]).all()  # so the SNR is undefined


def test_snr_rule():
    out = gradients.with_snr(np.array([[2.0, 4.0], [1.0, 0.0], [0.0, 0.0], [np.nan, np.nan]]))
    assert out[0].tolist() == [2.0, 4.0, 0.5]
    assert np.isnan(out[1:, 2]).all()
    assert gradients.metrics(["layer_1"], out[:1]) == {
        "grad/mean_norm/layer_1": 2.0,
        "grad/std_norm/layer_1": 4.0,
        "grad/snr/layer_1": 0.5,
    }


def test_switch_is_validated_and_off_means_no_buffer():
    assert config.validate({}).train.gradient_stats is True
    with pytest.raises(config.ConfigError, match=r"train.gradient_stats: got 'yes'; allowed: true or false"):
        config.validate({"train": {"gradient_stats": "yes"}})
    with pytest.raises(config.ConfigError, match=r"train.gradient_stats: got 1; allowed: true or false"):
        config.validate({"train": {"gradient_stats": 1}})
    on, off = (config.validate({"train": {"gradient_stats": s}}) for s in (True, False))
    assert config.flatten(off)["train.gradient_stats"] == "false"
    assert config.config_hash(on) != config.config_hash(off)
    core, _ = _core(_tiny(), {"batch_size": 8, "gradient_stats": False})
    core.advance(2)
    assert core.grad_norms is None
    with pytest.raises(ValueError, match="gradient_stats: false"):
        core.gradient_stats(1, 2)


@pytest.mark.slow
def test_statistics_do_not_change_training():
    d = _tiny()
    runs = []
    for stats in (True, False):
        core, _ = _core(d, {"learning_rate": 0.5, "batch_size": 8, "gradient_stats": stats}, jit=True)
        rows, acts = core.advance(5)
        runs.append((rows, acts, _flat(core)))
    (r1, a1, w1), (r2, a2, w2) = runs
    assert np.array_equal(r1, r2) and np.array_equal(w1, w2)
    assert all(np.array_equal(x, y) for x, y in zip(a1, a2, strict=True))


SMALL = {"model": {"hidden": [6, 4, 3]}, "train": {"epochs": 30}, "schedule": {"kind": "log", "n": 8}}
LAYERS = ["layer_1", "layer_2", "layer_3", "layer_4"]


def _grad_keys(metrics):
    return {k for k in metrics if k.startswith("grad/")}


@pytest.mark.slow
def test_trial_logs_statistics_at_measured_epochs_and_keeps_every_epoch(tracking_uri, tmp_path):
    from ib_sweeps import trace

    cfg = config.validate(SMALL)
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    client = MlflowClient(tracking_uri)
    run = client.get_run(result.run_id)
    assert _grad_keys(run.data.metrics) == {f"grad/{k}/{layer}" for k in gradients.KEYS for layer in LAYERS}
    measured = [e for e in cfg.schedule.epochs(30).tolist() if e > 0]
    t = result.trace
    assert t.grad.shape == (31, 4, 3) and np.isnan(t.grad[0]).all() and np.isfinite(t.grad[1:]).all()
    for key in ("mean_norm", "std_norm", "snr"):
        history = client.get_metric_history(result.run_id, f"grad/{key}/layer_3")
        assert sorted(m.step for m in history) == measured
        k = gradients.KEYS.index(key)
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(t.grad[measured, 2, k])
    saved = trace.load(client.download_artifacts(result.run_id, "trace.npz", str(tmp_path)))
    assert np.array_equal(saved.grad, t.grad, equal_nan=True)
    figures = [f.path for f in client.list_artifacts(result.run_id, "figures")]
    assert "figures/gradients.png" in figures


@pytest.mark.slow
def test_trial_without_statistics_logs_none(tracking_uri, tmp_path):
    from ib_sweeps import trace

    cfg = config.validate({**SMALL, "train": {"epochs": 30, "gradient_stats": False}})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    client = MlflowClient(tracking_uri)
    assert not _grad_keys(client.get_run(result.run_id).data.metrics)
    assert result.trace.grad is None
    assert trace.load(client.download_artifacts(result.run_id, "trace.npz", str(tmp_path))).grad is None
    assert "figures/gradients.png" not in [f.path for f in client.list_artifacts(result.run_id, "figures")]


@pytest.mark.slow
def test_full_batch_trial_logs_zero_spread_and_nan_snr(tracking_uri):
    cfg = config.validate({**SMALL, "train": {"epochs": 30, "batch_size": "full", "learning_rate": 0.01}})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    metrics = MlflowClient(tracking_uri).get_run(result.run_id).data.metrics
    assert metrics["grad/std_norm/layer_1"] == 0.0 and metrics["grad/mean_norm/layer_1"] > 0
    assert np.isnan(metrics["grad/snr/layer_1"])


@pytest.mark.slow
def test_backtracked_epochs_get_statistics_too(tracking_uri):
    cfg = config.validate(
        {
            "model": {"hidden": [6, 4, 3]},
            "train": {"epochs": 200, "learning_rate": 0.01},
            "schedule": {"kind": "delta_exact", "delta": 0.03},
        }
    )
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    t = result.trace
    assert "backtracked" in t.reasons
    history = MlflowClient(tracking_uri).get_metric_history(result.run_id, "grad/snr/layer_4")
    assert sorted(m.step for m in history) == [e for e in t.epochs if e > 0]
