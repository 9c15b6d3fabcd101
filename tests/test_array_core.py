"""Trial arrays (ib_sweeps.train.array): replica r is the core alone with seed r, to float rounding."""

import numpy as np
import pytest

from ib_sweeps import config, data

pytestmark = pytest.mark.usefixtures("tf_ready")

SEEDS = (0, 1, 2)
TINY = {"model": {"hidden": [6, 4]}, "train": {"epochs": 12, "learning_rate": 0.01}}


def _cfg(seed, model=None, train=None):
    return config.validate(
        {"seed": seed, "model": {**TINY["model"], **(model or {})}, "train": {**TINY["train"], **(train or {})}}
    )


def _alone(cfg, seed):
    from ib_sweeps import train

    d = data.load(cfg.data, np.random.default_rng(seed))
    return train.build_core(cfg.model, cfg.train, d, seed), d


def _array(cfgs, datasets, seeds):
    from ib_sweeps.train.array import build_array_core

    return build_array_core([c.model for c in cfgs], [c.train for c in cfgs], datasets, list(seeds))


def _close(a, b, rtol):
    """|a - b| <= rtol * max(|a|, |b|) elementwise, a floor of rtol for entries near zero."""
    return np.all(np.abs(a - b) <= rtol * np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0))


@pytest.fixture(scope="module")
def trio():
    """Three replicas (seeds 0-2, own data splits; activation, init and learning rate varied) and each alone.

    Built and trained once for the module: initial weights, then epochs 0 and 12, of the array and of each core.
    """
    cfgs = [
        _cfg(0),
        _cfg(1, model={"activation": "relu", "init_std": 0.5}, train={"learning_rate": 0.003}),
        _cfg(2, model={"init": "keras_default"}),
    ]
    alone = [_alone(c, s) for c, s in zip(cfgs, SEEDS, strict=True)]
    arr = _array(cfgs, [d for _, d in alone], SEEDS)
    got = {"w0": arr.weights(), "w0_alone": [core.weights() for core, _ in alone], "arr": arr}
    got["first"], got["last"], got["w"] = arr.advance(0), arr.advance(12), arr.weights()
    got["alone"] = [(core.advance(0), core.advance(12), core.weights()) for core, _ in alone]
    got["grads"], got["grads_alone"] = arr.gradient_stats(0, 13), [core.gradient_stats(0, 13) for core, _ in alone]
    got["names_alone"] = [core.layer_names for core, _ in alone]
    got["n_train"] = len(alone[0][1].x_train)
    return got


def test_inputs_bit_identical_to_the_core_alone(trio):
    import tensorflow as tf

    from ib_sweeps.train import minibatch_order, split_seed

    arr, n = trio["arr"], trio["n_train"]
    for r, seed in enumerate(SEEDS):
        assert np.array_equal(trio["w0"][r], trio["w0_alone"][r])
        # The single core's order, drawn as its compiled graph draws it (XLA, not eager).
        order_seed = split_seed(seed)[1]
        order = tf.function(lambda e, s=order_seed: minibatch_order(s, e, n), jit_compile=True)
        for epoch in (1, 2, 7):
            assert np.array_equal(arr.orders(epoch)[r], order(tf.constant(epoch)).numpy())
    assert not np.array_equal(arr.orders(1)[0], arr.orders(1)[1])


@pytest.mark.parametrize("n", [1, 2, 37, 3277])
def test_orders_equal_minibatch_order_ties_and_all(n):
    """Over many draws; at n = 3277 about half the replica-epochs hold tied draws (float32 in [0, 1))."""
    import tensorflow as tf

    from ib_sweeps.train import minibatch_order
    from ib_sweeps.train.array_orders import array_orders

    seeds = [int(s) for s in np.random.default_rng(n).integers(0, 2**31 - 1, 8)]

    @tf.function(jit_compile=True)
    def both(epoch):
        return array_orders(seeds, epoch, n), tf.stack([minibatch_order(s, epoch, n) for s in seeds])

    for epoch in range(1, 26):
        got, want = both(tf.constant(epoch))
        assert np.array_equal(got.numpy(), want.numpy())


def test_numbers_agree_with_the_core_alone(trio):
    for r in range(len(SEEDS)):
        (rows0, acts0), (rows, acts), w = trio["alone"][r]
        (arr_rows0, arr_acts0), (arr_rows, arr_acts) = trio["first"][r], trio["last"][r]
        assert _close(arr_rows0, rows0, 1e-6)
        assert all(_close(a, b, 1e-6) for a, b in zip(arr_acts0, acts0, strict=True))  # epoch 0: float rounding
        assert _close(arr_rows[:, [0, 2]], rows[:, [0, 2]], 1e-5)  # losses, epochs 1-12
        assert _close(trio["w"][r], w, 1e-5)
        assert np.abs(arr_rows[:, [1, 3]] - rows[:, [1, 3]]).max() <= 2 / 4096  # accuracy: a flip or two at most
        assert all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(arr_acts, acts, strict=True))


def test_gradient_statistics_and_layer_names_agree_with_the_core_alone(trio):
    grads = trio["grads"]
    assert grads.shape == (13, len(SEEDS), 3, 3) and grads.dtype == np.float64
    assert np.isnan(grads[0]).all() and np.isfinite(grads[1:]).all()
    for r in range(len(SEEDS)):
        assert _close(grads[1:, r], trio["grads_alone"][r][1:], 1e-4)  # mean norm, std norm, SNR; epochs 1-12
        assert trio["arr"].layer_names == trio["names_alone"][r]
    assert np.isnan(trio["arr"].gradient_stats(13, 14)).all()  # not trained yet


def test_a_diverging_replica_is_reported_and_the_others_train_on():
    from ib_sweeps.train import TrainingDiverged

    sgd = {"optimizer": "sgd", "momentum": 0.9, "epochs": 15}
    cfgs = [
        _cfg(0, train={**sgd, "learning_rate": 0.1}),
        _cfg(1, {"activation": "linear"}, {**sgd, "learning_rate": 1e6}),
    ]
    core, d = _alone(cfgs[0], 0)
    arr = _array(cfgs, d, [0, 1])
    arr.advance(0)
    out = arr.advance(15)
    assert isinstance(out[1], TrainingDiverged) and 1 <= out[1].epoch <= 15
    assert np.isfinite(out[1].rows).all() and len(out[1].rows) == out[1].epoch - 1
    core.advance(0)
    rows, _ = core.advance(15)
    assert np.isfinite(out[0][0]).all() and _close(out[0][0][:, [0, 2]], rows[:, [0, 2]], 1e-5)
    assert _close(arr.weights()[0], core.weights(), 1e-5)
    assert arr.advance(15)[1] is out[1]  # stays failed


def test_configs_that_cannot_share_a_graph_are_refused():
    with pytest.raises(ValueError, match="hidden"):
        _array([_cfg(0), _cfg(1, model={"hidden": [5, 4]})], None, [0, 1])
    with pytest.raises(ValueError, match="optimizer"):  # every optimizer trains in arrays, but one per array
        _array([_cfg(0), _cfg(1, train={"optimizer": "adadelta"})], None, [0, 1])
    with pytest.raises(ValueError, match="noise_std"):  # shared by all replicas
        _array([_cfg(0, model={"noise_std": 0.1}), _cfg(1)], None, [0, 1])
    from ib_sweeps.train.array import check_array

    noisy = _cfg(0, model={"noise_std": 0.1})
    check_array([noisy.model, noisy.model], [noisy.train, noisy.train])  # noisy replicas (noisy_sp too) may


@pytest.mark.parametrize(
    "model",
    [
        [{"noise_std": 0.1}, {"noise_std": 0.1, "activation": "relu"}],
        [{"quantize_levels": 8}, {"quantize_levels": 8, "activation": "sigmoid"}],
        [{"quantize_levels": 8}, {"quantize_levels": 8, "activation": "relu6"}],  # as the quantized sweep's arrays
    ],
    ids=["noisy", "quantized", "quantized_relu6"],
)
def test_noisy_and_quantized_replicas_agree_with_the_core_alone(model):
    """Replica r's noise is the core alone's (bit-identical draws): activity and losses agree to float rounding."""
    cfgs = [_cfg(s, model=m, train={"epochs": 4}) for s, m in zip((3, 4), model, strict=True)]
    alone = [_alone(c, s) for c, s in zip(cfgs, (3, 4), strict=True)]
    arr = _array(cfgs, [d for _, d in alone], (3, 4))
    got = [arr.advance(0), arr.advance(4)]
    for r, (core, _) in enumerate(alone):
        for k, to in enumerate((0, 4)):
            rows, acts = core.advance(to)
            arr_rows, arr_acts = got[k][r]
            assert _close(arr_rows[:, [0, 2]], rows[:, [0, 2]], 1e-5)
            for a, b in zip(arr_acts, acts, strict=True):
                # Quantized: a unit whose input sits on a level boundary may round the other way (rarely).
                assert np.mean(np.abs(a - b) > 1e-5 * np.maximum(np.abs(b), 1.0)) <= 1e-3


@pytest.mark.parametrize("model", [{}, {"noise_std": 0.1}], ids=["deterministic", "noisy"])
def test_snapshots_give_the_activity_the_array_measured_live(model):
    """Weights kept after each epoch of one advance() give, through activity_from, what advancing to that epoch
    gave live (the noisy replicas' measurement noise of that epoch included): what backtracking measures."""
    from ib_sweeps.train.array import build_array_core

    cfgs = [_cfg(s, model={**model, "activation": a}) for s, a in zip((5, 6), ("tanh", "relu"), strict=True)]
    datasets = [data.load(c.data, np.random.default_rng(s)) for c, s in zip(cfgs, (5, 6), strict=True)]

    def build(capacity):
        return build_array_core([c.model for c in cfgs], [c.train for c in cfgs], datasets, [5, 6], capacity)

    kept = build(6)
    kept.advance(0)
    kept.advance(6)  # epochs 1..6 in one call
    assert kept.snapshots.shape == (6, 2, kept.weights().shape[1])
    np.testing.assert_array_equal(kept.snapshots[-1], kept.weights())
    live = build(0)
    live.advance(0)
    for e in range(1, 7):
        results = live.advance(e)
        for layer, act in enumerate(kept.activity_from(kept.snapshots[e - 1], e)):
            for r, (_, acts) in enumerate(results):
                np.testing.assert_array_equal(act[r], acts[layer])
    with pytest.raises(ValueError, match="at most 7 epochs"):
        kept.advance(14)


def _same_samples(got, want):
    """Hidden layers to the bit; the softmax output to float rounding (its fused graph rounds some values the
    other way in some shapes: measured, hidden [6, 4, 3], up to 2 float32 ulp in ~1e-3 of the values)."""
    for a, b in zip(got[:-1], want[:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_max_ulp(got[-1], want[-1], maxulp=4)


def test_noisy_samples_are_the_core_alones(trio):
    """noisy_sp's samples of replica r (noise keys, S_l before its own noise, softmax output) are what the core
    alone draws for the same weights (:func:`_same_samples`): live at epoch 0 (the same initial weights), live
    later and from a snapshot (the core alone given the array's weights of that epoch: trained weights agree
    with the core alone's only to rounding)."""
    from ib_sweeps import train

    small = {"noise_std": 0.1, "hidden": [6, 4, 3]}
    cfgs = [_cfg(s, model={**small, "activation": a}) for s, a in zip((7, 8), ("tanh", "relu"), strict=True)]
    cfgs = [config.validate(config.to_dict(c) | {"data": {"measure_size": 256}}) for c in cfgs]
    datasets = [data.load(c.data, np.random.default_rng(s)) for c, s in zip(cfgs, (7, 8), strict=True)]
    alone = [train.build_core(c.model, c.train, d, s) for c, d, s in zip(cfgs, datasets, (7, 8), strict=True)]
    from ib_sweeps.train.array import build_array_core

    arr = build_array_core([c.model for c in cfgs], [c.train for c in cfgs], datasets, [7, 8], 3)
    assert arr.noisy
    arr.advance(0)
    got = arr.noisy_samples(0, 3)
    assert [a.shape for a in got] == [(2, 256, 3, 6), (2, 256, 3, 4), (2, 256, 3, 3), (2, 256, 3, 2)]
    assert all(a.dtype == np.float32 for a in got)
    for r, core in enumerate(alone):
        _same_samples([a[r] for a in got], core.noisy_samples(0, 3))
    arr.advance(3)
    live, weights, snap = arr.noisy_samples(3, 3), arr.weights(), arr.snapshots[1]  # epoch 2's weights
    from_snap = arr.noisy_samples(2, 3, snap)
    for r, core in enumerate(alone):
        _same_samples([a[r] for a in live], core.noisy_samples(3, 3, weights[r]))
        _same_samples([a[r] for a in from_snap], core.noisy_samples(2, 3, snap[r]))
    assert not np.array_equal(from_snap[1], live[1])  # another epoch: other weights and other noise
    with pytest.raises(ValueError, match="epoch 3, not 2"):
        arr.noisy_samples(2, 3)
    with pytest.raises(ValueError, match="noisy network"):
        trio["arr"].noisy_samples(12, 3)
