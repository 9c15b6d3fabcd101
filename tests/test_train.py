"""The compiled training core: determinism, activity capture, optimizers, divergence."""

import numpy as np
import pytest

from ib_sweeps import config, data

pytestmark = pytest.mark.usefixtures("tf_ready")


def _core(seed=0, **sections):
    from ib_sweeps import train

    cfg = config.validate({"seed": seed, **sections})
    d = data.load(cfg.data, np.random.default_rng(seed))
    return train.build_core(cfg.model, cfg.train, d, seed), d


def _run(core, stops):
    rows, acts = [], None
    for e in stops:
        r, acts = core.advance(e)
        rows.append(r)
    return np.concatenate(rows), acts


@pytest.mark.slow
def test_same_seed_same_numbers_different_seed_different():
    stops = [0, 1, 4, 20]
    (h1, a1), (h2, a2) = (_run(_core(3)[0], stops), _run(_core(3)[0], stops))
    assert np.array_equal(h1, h2)
    assert all(np.array_equal(x, y) for x, y in zip(a1, a2, strict=True))
    h3, _ = _run(_core(4)[0], stops)
    assert not np.array_equal(h1, h3)


@pytest.mark.slow
def test_chunking_does_not_change_results():
    h1, a1 = _run(_core(1)[0], [0, 20])
    h2, a2 = _run(_core(1)[0], [0, 1, 2, 7, 13, 20])
    assert np.array_equal(h1[[0, -1]], h2[[0, -1]]) and np.array_equal(a1[-1], a2[-1])


def test_activity_of_every_layer_from_one_pass():
    core, _ = _core(0, model={"hidden": [6, 4], "activation": ["relu", "tanh"]})
    rows, acts = core.advance(0)
    assert rows.shape == (1, 4)
    assert [a.shape for a in acts] == [(4096, 6), (4096, 4), (4096, 2)]
    assert (acts[0] >= 0).all() and (np.abs(acts[1]) < 1).all()
    assert np.allclose(acts[2].sum(axis=1), 1.0, atol=1e-5)  # softmax output
    assert core.layer_names == ["layer_1", "layer_2", "layer_3"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "train",
    [
        {"optimizer": "adam", "learning_rate": 0.01},
        {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9, "batch_size": 32},
        {"optimizer": "adadelta", "learning_rate": 1.0},
        {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9, "batch_size": "full"},
    ],
)
def test_optimizers_learn(train):
    core, _ = _core(0, train={"epochs": 60, **train}, model={"init": "keras_default"})
    h, _ = _run(core, [0, 60])
    assert np.isfinite(h).all()
    assert h[-1, 0] < 0.9 * h[0, 0]  # train loss falls


@pytest.mark.slow
def test_divergence_raises_with_the_finite_history():
    from ib_sweeps.train import TrainingDiverged

    core, _ = _core(0, model={"activation": "linear"}, train={"optimizer": "sgd", "learning_rate": 1e6, "epochs": 50})
    core.advance(0)
    with pytest.raises(TrainingDiverged, match="non-finite loss at epoch") as err:
        core.advance(50)
    assert 1 <= err.value.epoch <= 50
    assert np.isfinite(err.value.rows).all() and len(err.value.rows) == err.value.epoch - 1


@pytest.mark.slow
def test_cannot_go_back():
    core, _ = _core(0, train={"epochs": 5})
    core.advance(3)
    with pytest.raises(ValueError, match="cannot go back"):
        core.advance(2)


@pytest.mark.slow
def test_snapshots_reproduce_the_live_network_and_do_not_perturb_training():
    from ib_sweeps import train

    cfg = config.validate({"train": {"epochs": 30}})
    d = data.load(cfg.data, np.random.default_rng(0))
    snap = train.build_core(cfg.model, cfg.train, d, 0, snapshot_capacity=6)
    live = train.build_core(cfg.model, cfg.train, d, 0)
    snap.advance(0), live.advance(0)
    _, _, first = snap.advance_with_snapshots(7)  # a maximal call: capacity + 1 epochs
    _, acts, second = snap.advance_with_snapshots(10)
    assert first.shape == (6, 294) and second.shape == (2, 294)
    for epoch, flat in [*zip(range(1, 7), first, strict=True), *zip((8, 9), second, strict=True)]:
        _, expected = live.advance(epoch)
        assert all(np.array_equal(a, b) for a, b in zip(expected, snap.activity_from(flat), strict=True))
    _, expected = live.advance(10)
    assert all(np.array_equal(a, b) for a, b in zip(expected, acts, strict=True))
    with pytest.raises(ValueError, match="capacity is 6"):
        snap.advance_with_snapshots(18)


def test_graph_loops_match_autograph():
    """``loops.repeat`` and ``loops.when``, traced without AutoGraph, give what AutoGraph's loop and branch give."""
    import tensorflow as tf

    from ib_sweeps.train.loops import repeat, when

    x = tf.constant(np.random.default_rng(0).normal(size=(7, 3)), tf.float32)

    def programs(autograph: bool):
        total, seen = tf.Variable(0.0), tf.Variable(0)

        @tf.function(jit_compile=True, autograph=autograph)
        def run(n, flag):
            if autograph:
                if flag:
                    total.assign_add(100.0)
                acc = tf.zeros([3])
                for b in tf.range(n):
                    acc = acc * 0.5 + tf.tanh(x[b] * tf.cast(b, tf.float32))
                i = tf.constant(0)
                while i < n:
                    seen.assign_add(1)
                    total.assign_add(tf.reduce_sum(x[i]))
                    i += 1
            else:
                when(flag, lambda: total.assign_add(100.0))
                acc = repeat(n, lambda b, acc: acc * 0.5 + tf.tanh(x[b] * tf.cast(b, tf.float32)), tf.zeros([3]))

                def body(i, _):
                    seen.assign_add(1)
                    total.assign_add(tf.reduce_sum(x[i]))

                repeat(n, body)
            return acc

        return run, total, seen

    (a, a_total, a_seen), (b, b_total, b_seen) = programs(True), programs(False)
    for n, flag in ((5, True), (0, True), (7, False)):
        args = (tf.constant(n), tf.constant(flag))
        assert np.array_equal(a(*args).numpy(), b(*args).numpy())
        assert a_total.numpy() == b_total.numpy() and a_seen.numpy() == b_seen.numpy() == (12 if n == 7 else 5)
