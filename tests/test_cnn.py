"""The CNN (model.kind: cnn): config, layers by hand, snapshots and chunked evaluation, a trial into MLflow.

A tiny CNN (conv [4, 8], pool 2, dense [16]) on the 8x8 digits, measured on 300 images.
"""

import numpy as np
import pytest
from mlflow import MlflowClient

from ib_sweeps import config, data, models, tracking

TINY = {
    "data": {"name": "digits", "measure_size": 300},
    "model": {"kind": "cnn", "conv": [4, 8], "dense": [16]},
    "train": {"epochs": 6, "batch_size": 64, "learning_rate": 1e-3},
}
LAYERS = ["layer_1", "layer_2", "layer_3", "layer_4", "layer_5"]  # conv, conv, pool, dense, softmax


# --- config (no TensorFlow) ----------------------------------------------------------------------------------


def test_mlp_configs_keep_their_hashes_and_params():
    # Hashes from before model.kind existed: MLP configs (the default kind) must not change them.
    assert config.config_hash(config.validate({})) == "a1b4a7d94db4"
    raw = {"model": {"hidden": [3], "activation": "relu", "init": "keras_default"}}
    assert config.config_hash(config.validate(raw), with_seed=True) == "ac562bc646f3"
    assert config.config_hash(config.validate({"data": {"name": "digits"}, "model": {"hidden": [32, 16, 8]}})) == (
        "ad83006901f9"
    )
    assert config.config_hash(config.validate({"model": {"kind": "mlp"}})) == "a1b4a7d94db4"
    assert "kind" not in config.to_dict(config.validate({}))["model"]
    assert not any(k.startswith("model.kind") for k in config.flatten(config.validate({})))


def test_cnn_defaults_are_the_keras_example_and_round_trip():
    cfg = config.validate({"data": {"name": "digits"}, "model": {"kind": "cnn"}})
    m = cfg.model
    assert (m.conv, m.kernel, m.pool, m.dense, m.activation, m.init) == (
        (32, 64),
        3,
        2,
        (128,),
        "relu",
        "keras_default",
    )
    assert config.validate(config.to_dict(cfg)) == cfg
    assert config.flatten(cfg)["model.kind"] == "cnn" and config.flatten(cfg)["model.conv"] == "[32, 64]"
    assert config.config_hash(cfg) != config.config_hash(config.validate({"data": {"name": "digits"}}))
    # The Keras MNIST example (without dropout) has 1 199 882 parameters.
    mnist = config.validate({"data": {"name": "mnist"}, "model": {"kind": "cnn"}})
    assert models.count_params(mnist.model, (28, 28, 1), 10) == 1_199_882
    assert models.cnn_shapes(mnist.model, (28, 28, 1)) == [(26, 26, 32), (24, 24, 64), (12, 12, 64), (128,)]
    assert models.activity_floats(mnist.model, (28, 28, 1), 10) == 26 * 26 * 32 + 24 * 24 * 64 + 12 * 12 * 64 + 138


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"model": {"kind": "cnn"}},
            "model: kind 'cnn' needs images (height, width, channels), but data set "
            "'tishby12' has inputs of shape (12,); allowed: kind mlp, or a data set of images (digits, mnist",
        ),
        (
            {"data": {"name": "digits"}, "model": {"kind": "cnn", "conv": [4, 8, 8, 8]}},
            "model: conv [4, 8, 8, 8] with kernel 3 and pool 2 shrink the 8x8 images of digits to nothing",
        ),
        ({"data": {"name": "digits"}, "model": {"kind": "cnn", "kernel": 9}}, "shrink the 8x8 images"),
        ({"model": {"kind": "cnv"}}, "model: unknown 'kind' 'cnv'; allowed: 'mlp', 'cnn'"),
        (
            {"data": {"name": "digits"}, "model": {"kind": "cnn", "hidden": [3]}},
            "model: unknown key 'hidden'; allowed keys: conv, kernel, pool, dense, activation, init, init_std",
        ),
        ({"model": {"conv": [3]}}, "model: unknown key 'conv'; allowed keys: hidden"),
        (
            {"data": {"name": "digits"}, "model": {"kind": "cnn", "pool": 1}},
            "model.pool: Input should be greater than or equal to 2; got 1",
        ),
        ({"data": {"name": "digits"}, "model": {"kind": "cnn", "conv": []}}, "model.conv"),
        (
            {"data": {"name": "digits"}, "model": {"kind": "cnn", "activation": ["relu", "bogus"]}},
            "model.activation: got ['relu', 'bogus']; allowed: one of tanh",
        ),
        (
            {"data": {"name": "digits"}, "model": {"kind": "cnn", "activation": ["relu", "tanh"]}},
            "model.activation: lists 2 activations but the CNN has 3 layers with one (2 conv + 1 dense)",
        ),
        (
            {"data": {"name": "digits"}, "model": {"kind": "cnn", "init_std": 0.1}},
            "model.init_std: only used with init: truncated_normal",
        ),
    ],
)
def test_bad_cnn_config_names_key_value_and_allowed(raw, message):
    with pytest.raises(config.ConfigError) as err:
        config.validate(raw)
    assert message in str(err.value)


def test_no_pooling_and_no_dense_layers():
    cfg = config.validate(
        {"data": {"name": "digits"}, "model": {"kind": "cnn", "conv": [2], "pool": None, "dense": []}}
    )
    assert models.cnn_shapes(cfg.model, (8, 8, 1)) == [(6, 6, 2)]
    assert models.count_params(cfg.model, (8, 8, 1), 10) == (9 + 1) * 2 + (6 * 6 * 2 + 1) * 10


def test_preset_is_the_reports_setup_and_set_switches_to_a_cnn():
    from ib_sweeps.cli import load_config, presets

    assert "cnn_2019" in presets()
    cfg = load_config("cnn_2019", ["seed=1"])
    assert cfg.data.name == "mnist" and cfg.model.kind == "cnn" and cfg.model.conv == (32, 64)
    assert (cfg.train.optimizer, cfg.train.learning_rate, cfg.train.batch_size, cfg.train.epochs) == (
        "adadelta",
        1.0,
        128,
        12,
    )
    assert {(e.method, e.reducer) for e in cfg.estimators} >= {("kde_upper", "concat"), ("kde_upper", "mean")}
    small = load_config(None, ["data.name=digits model.kind=cnn model.conv=[4] model.dense=[]"])
    assert small.model.kind == "cnn" and small.model.conv == (4,) and small.model.dense == ()


# --- the training core -----------------------------------------------------------------------------------------


def _dataset():
    cfg = config.validate(TINY)
    return cfg, data.load(cfg.data, np.random.default_rng(0))


@pytest.fixture(scope="module")
def cores(tf_ready):
    """Two cores of one seed: A keeps snapshots; B evaluates loss and accuracy in chunks of 100 rows."""
    from ib_sweeps import train

    cfg, d = _dataset()
    a = train.build_core(cfg.model, cfg.train, d, 7, snapshot_capacity=3)
    per_input = 4 * models.activity_floats(cfg.model, d.input_shape, d.n_classes)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "EVAL_BYTES", 100 * per_input)  # 1438 training rows: 14 chunks and a rest of 38
        b = train.build_core(cfg.model, cfg.train, d, 7)
    return a, b, d


@pytest.mark.slow
def test_activity_of_every_layer_as_the_layers_compute_it(cores):
    a, _, d = cores
    _, acts = a.advance(0)
    assert a.layer_names == LAYERS
    assert [x.shape for x in acts] == [(300, 6, 6, 4), (300, 4, 4, 8), (300, 2, 2, 8), (300, 16), (300, 10)]
    conv1, conv2, pool, dense, out = acts
    assert all((x >= 0).all() for x in acts[:4]) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    # conv1 from the flat inputs reshaped to 8x8x1 images, by hand ("valid": output (i, j) sees rows i..i+2).
    images = d.x_measure.reshape(-1, 8, 8)
    kernel, bias = (v.numpy() for v in a.layers[0].trainable_variables)
    patches = np.lib.stride_tricks.sliding_window_view(images, (3, 3), axis=(1, 2))  # (n, 6, 6, 3, 3)
    by_hand = np.maximum(np.einsum("nijkl,klf->nijf", patches, kernel[:, :, 0, :]) + bias, 0)
    assert np.allclose(conv1, by_hand, atol=1e-5)
    # 2x2 max pooling of conv2, exactly; the dense layer sees the pooled maps flattened in (h, w, c) order.
    assert np.array_equal(pool, conv2.reshape(300, 2, 2, 2, 2, 8).max(axis=(2, 4)))
    w, b = (v.numpy() for v in a.layers[3].trainable_variables)
    assert np.allclose(dense, np.maximum(pool.reshape(300, -1) @ w + b, 0), atol=1e-5)


@pytest.mark.slow
def test_same_seed_same_activity_snapshots_and_chunked_evaluation(cores):
    a, b, _ = cores
    a.advance(0), b.advance(0)
    _, acts_a, snaps = a.advance_with_snapshots(4)
    assert snaps.shape == (3, models.count_params(config.validate(TINY).model, (8, 8, 1), 10))
    # CNNs run without XLA: oneDNN convolutions may pick kernels by buffer alignment, so two runs can differ in
    # the last float32 bits (seen in about 1 of 4 runs of the whole suite); compare to 1e-6, not bit for bit.
    for epoch, flat in zip((1, 2, 3), snaps, strict=True):
        _, live = b.advance(epoch)
        assert all(_close(x, y) for x, y in zip(live, a.activity_from(flat), strict=True))
    _, acts_b = b.advance(4)
    assert all(_close(x, y) for x, y in zip(acts_a, acts_b, strict=True))
    # Chunked evaluation sums the same per-example losses in another order.
    ha, hb = a.history[:5].numpy(), b.history[:5].numpy()
    assert np.allclose(ha, hb, rtol=1e-5) and ha[4, 0] < ha[0, 0]
    # Gradient statistics: none for the pooling layer, which has no weights.
    g = a.gradient_stats(1, 5)
    assert np.isnan(g[:, 2]).all() and np.isfinite(g[:, [0, 1, 3, 4], :2]).all() and (g[:, [0, 1, 3, 4], 0] > 0).all()
    assert np.allclose(g, b.gradient_stats(1, 5), rtol=1e-5, atol=1e-7, equal_nan=True)


def _close(x, y) -> bool:
    return x.shape == y.shape and np.allclose(x, y, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_other_seed_other_weights(tf_ready):
    cfg, _ = _dataset()
    w = [[v.numpy() for layer in models.build(cfg.model, (8, 8, 1), 10, s) for v in layer.weights] for s in (1, 2)]
    assert not np.array_equal(w[0][0], w[1][0])
    again = [v.numpy() for layer in models.build(cfg.model, (8, 8, 1), 10, 1) for v in layer.weights]
    assert all(np.array_equal(x, y) for x, y in zip(w[0], again, strict=True))


# --- a trial end to end -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("tf_ready")
def test_trial_logs_concat_and_mean_estimates(tracking_uri):
    from ib_sweeps.trial import run_trial

    raw = {
        **TINY,
        "schedule": {"kind": "log", "n": 5},
        "estimators": [
            {"label": "binning_concat", "bin_size": 0.5, "reducer": "concat"},
            {"label": "binning_mean", "bin_size": 0.5, "reducer": "mean"},
        ],
    }
    cfg = config.validate(raw)
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    run = MlflowClient(tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.kind"] == "cnn"
    keys = {f"{q}/{e}/{layer}" for q in ("ixt", "iyt") for e in ("binning_concat", "binning_mean") for layer in LAYERS}
    assert keys <= set(run.data.metrics)
    grads = {k for k in run.data.metrics if k.startswith("grad/")}
    assert grads == {
        f"grad/{s}/{layer}" for s in ("mean_norm", "std_norm", "snr") for layer in LAYERS if layer != "layer_3"
    }

    t = result.trace
    assert t.layers == LAYERS and t.epochs[0] == 0 and t.epochs[-1] == 6
    ixt, iyt = np.stack(t.ixt), np.stack(t.iyt)  # (epochs, estimators, layers)
    h_x, h_y = np.log2(300), run.data.metrics["entropy/y"]
    assert (ixt >= 0).all() and (ixt <= h_x + 1e-9).all() and (iyt >= 0).all() and (iyt <= h_y + 1e-9).all()
    assert (iyt <= ixt + 1e-9).all()  # I(Y;T) <= H(T) = I(X;T) for binning
    # Dense layers are 2-D: both reducers give the same numbers; conv and pool layers differ, mean below concat
    # (each channel alone separates fewer inputs than all channels together).
    assert np.array_equal(ixt[:, 0, 3:], ixt[:, 1, 3:])
    assert (ixt[:, 1, :3] <= ixt[:, 0, :3] + 1e-9).all() and (ixt[:, 1, :3] < ixt[:, 0, :3]).any()
    assert np.isnan(t.grad[1:, 2]).all() and np.isfinite(t.grad[1:, 0, 0]).all()
