"""Pooled ("as-if-random") estimates: the activity of W epochs as one sample of (input, epoch) rows."""

from math import log2

import numpy as np
import pytest

from ib_sweeps import estimators

METHODS = estimators.available()
# Estimators whose I(G;T) is unchanged when every row is repeated W times (plug-in
# and mixture estimators): identical epochs give the single-epoch estimate to
# rounding. kNN counts see the copies as neighbours; Monte Carlo ones redraw.
DUPLICATION_EXACT = {"binning", "adaptive_binning", "kde_upper", "kde_lower", "plugin"}
# Estimators that take each distinct value as a symbol (exact for discrete activity, e.g. a quantized
# network): continuous noise has every row distinct, so they get noise on a few levels instead.
DISCRETE = {"plugin"}


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
    if method in DISCRETE:
        acts = [np.round(a * 2) / 2 for a in acts]  # 5 levels, -1 .. 1
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


# In a trial: config, windows, stepping the core, trace, metrics.

POOLED_TRIAL = {
    "train": {"epochs": 12},
    "model": {"hidden": [6, 4, 3]},
    "estimators": [{"label": "idnns"}, {"label": "saxe", "bin_size": 0.07}],
}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pooled": {"window": 1}}, "pooled.window: Input should be greater than or equal to 2; got 1"),
        ({"pooled": {}}, "pooled.window: Field required"),
        (
            {"pooled": {"window": 5, "epochs": [3, 100]}},
            "pooled.epochs: windows of 5 epochs ending at [3] would start before epoch 0; allowed: end epochs >= w",
        ),
        (
            {"pooled": {"window": 3, "epochs": [900]}, "train": {"epochs": 500}},
            "pooled: epochs [900] are beyond train.epochs = 500; allowed: window end epochs <= 500",
        ),
        (
            {"pooled": {"window": 3, "estimators": ["kde"]}},
            "pooled: estimators ['kde'] are not estimators of this trial; allowed: binning",
        ),
        (
            {"pooled": {"window": 3, "last": True}},
            "pooled: unknown key 'last'; allowed keys: window, epochs, estimators",
        ),
    ],
)
def test_bad_pooled_config_names_key_value_and_allowed(raw, message):
    from ib_sweeps import config

    with pytest.raises(config.ConfigError) as err:
        config.validate(raw)
    assert message in str(err.value)


def test_pooled_config_defaults_and_unchanged_hash_without_it():
    from ib_sweeps import config
    from ib_sweeps.cli import load_config

    cfg = load_config(None, ["pooled.window=10", "train.epochs=300"])
    assert cfg.pooled.end_epochs(300) == [300] and list(cfg.pooled.window_of(300)) == list(range(291, 301))
    assert cfg.pooled_estimators() == [0] and config.validate({}).pooled_estimators() == []
    assert config.validate(config.to_dict(cfg)) == cfg
    assert "pooled" not in config.to_dict(config.validate({}))  # params and hashes of other configs unchanged
    assert config.flatten(cfg)["pooled.window"] == "10"


def test_windows_keep_only_what_open_windows_need():
    from ib_sweeps.pooled import PooledConfig, Windows

    w = Windows(PooledConfig(window=3, epochs=[5, 4]), n_epochs=10)
    assert w.ends == [4, 5] and w.wanted == {2, 3, 4, 5}
    got = {}
    for epoch in range(7):
        acts = [np.full((2, 1), epoch), np.full((2, 2), -epoch)]  # two layers
        window = w.add(epoch, acts)
        if window is not None:
            got[epoch] = [[int(a[0, 0]) for a in layer] for layer in window]
        assert set(w.kept) <= {e for e in range(epoch + 1) if e >= (2 if epoch < 4 else 3)}
    assert got == {4: [[2, 3, 4], [-2, -3, -4]], 5: [[3, 4, 5], [-3, -4, -5]]}
    assert w.kept == {}


class _FakeCore:
    """A training core whose activity and weights at epoch e are just e."""

    def __init__(self, diverge_at=None):
        self.epoch, self.calls, self.diverge_at = 0, [], diverge_at

    def advance(self, to_epoch):
        from ib_sweeps.train import TrainingDiverged

        self.calls.append(to_epoch)
        first = self.epoch + 1 if to_epoch > 0 else 0
        rows = np.repeat(np.arange(first, to_epoch + 1, dtype=float)[:, None], 4, axis=1)
        if self.diverge_at is not None and first <= self.diverge_at <= to_epoch:
            raise TrainingDiverged(self.diverge_at, first, rows[: self.diverge_at - first])
        self.epoch = to_epoch
        return rows, [np.full((2, 1), float(to_epoch))]

    def advance_with_snapshots(self, to_epoch):
        start = self.epoch
        rows, acts = self.advance(to_epoch)
        return rows, acts, np.arange(start + 1, to_epoch, dtype=float)[:, None]

    def activity_from(self, flat, epoch=None):
        return [np.full((2, 1), flat[0])]


@pytest.mark.parametrize("snapshots", [False, True])
def test_advance_collects_window_epochs(snapshots):
    from ib_sweeps.trial import _advance

    core = _FakeCore()
    _, _, _, passed = _advance(core, 0, {3, 4, 8, 11}, snapshots)
    assert passed == {}
    rows, acts, snaps, passed = _advance(core, 8, {3, 4, 8, 11}, snapshots)
    assert rows[:, 0].tolist() == list(range(1, 9)) and acts[0][0, 0] == 8.0
    assert {e: a[0][0, 0] for e, a in passed.items()} == {3: 3.0, 4: 4.0, 8: 8.0}
    # With snapshots the core trains in one call (and keeps every epoch's weights); else it stops.
    assert core.calls == ([0, 8] if snapshots else [0, 3, 4, 8])
    assert (snaps is not None and snaps[:, 0].tolist() == list(range(1, 8))) == snapshots


def test_divergence_after_a_stop_reports_the_whole_history():
    from ib_sweeps.train import TrainingDiverged
    from ib_sweeps.trial import _advance

    core = _FakeCore(diverge_at=6)
    core.advance(0)
    with pytest.raises(TrainingDiverged) as err:
        _advance(core, 8, {3}, snapshots=False)
    assert (err.value.epoch, err.value.first_epoch) == (6, 1) and err.value.rows[:, 0].tolist() == [1, 2, 3, 4, 5]


def test_trace_keeps_pooled_estimates(tmp_path):
    from ib_sweeps import trace

    t = trace.Trace(["a", "b"], ["l1", "l2"], ["loss/train"], 12.0, 1.0, np.zeros((3, 1)))
    t.add(0, np.zeros((2, 2)), np.zeros((2, 2)))
    t.pooled_window, t.pooled_estimators = 3, ["b"]
    t.add_pooled(2, np.array([[11.5, 10.0]]), np.array([[0.9, 0.8]]))
    back = trace.load(t.save(tmp_path / "t.npz"))
    assert (back.pooled_window, back.pooled_estimators, back.pooled_epochs) == (3, ["b"], [2])
    assert back.pooled_ixt[0].tolist() == [[11.5, 10.0]] and back.pooled_iyt[0].tolist() == [[0.9, 0.8]]
    assert back.sorted().pooled_epochs == [2]
    empty = trace.load(trace.Trace(["a"], ["l1"], ["loss/train"], 12.0, 1.0, np.zeros((3, 1))).save(tmp_path / "e.npz"))
    assert (empty.pooled_window, empty.pooled_epochs, empty.pooled_ixt) == (0, [], [])


@pytest.mark.slow
@pytest.mark.usefixtures("tf_ready")
def test_trial_logs_pooled_windows_without_disturbing_the_schedule(tracking_uri):
    from mlflow import MlflowClient

    from ib_sweeps import config, tracking
    from ib_sweeps.trial import run_trial

    opts = tracking.RunOptions(tracking_uri=tracking_uri, progress=False)
    # delta_exact keeps weight snapshots: window epochs come from them; log stops the core at each.
    by_snapshots = config.validate({**POOLED_TRIAL, "pooled": {"window": 3, "epochs": [6, 12], "estimators": ["saxe"]}})
    by_steps = config.validate({**POOLED_TRIAL, "schedule": {"kind": "log", "n": 4}, "pooled": {"window": 3}})
    a, b = run_trial(by_snapshots, opts), run_trial(by_steps, opts)

    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(a.run_id, "pooled/ixt/saxe/layer_2")
    assert sorted(m.step for m in history) == [6, 12]
    assert "pooled/ixt/idnns/layer_1" not in client.get_run(a.run_id).data.metrics
    run_b = client.get_run(b.run_id).data.metrics
    assert {
        f"pooled/{q}/{e}/layer_{j}" for q in ("ixt", "iyt") for e in ("idnns", "saxe") for j in (1, 2, 3, 4)
    } <= set(run_b)
    assert "time/pooled_s" in run_b
    ta, tb = a.trace, b.trace
    assert (ta.pooled_window, ta.pooled_estimators, ta.pooled_epochs) == (3, ["saxe"], [6, 12])
    assert (tb.pooled_estimators, tb.pooled_epochs) == (["idnns", "saxe"], [12])
    for t in (ta, tb):  # at most H(X) = 12 bits and H(Y)
        assert (np.stack(t.pooled_ixt) <= t.h_x + 1e-9).all() and (np.stack(t.pooled_iyt) <= t.h_y + 1e-9).all()
    # Both ways give the same window activity, and neither changes the training or the scheduled estimates.
    assert np.array_equal(ta.pooled_ixt[1][0], tb.pooled_ixt[0][1]) and np.array_equal(
        ta.pooled_iyt[1][0], tb.pooled_iyt[0][1]
    )
    assert np.array_equal(ta.history, tb.history)
    for epoch in set(ta.epochs) & set(tb.epochs):
        i, j = ta.epochs.index(epoch), tb.epochs.index(epoch)
        assert np.array_equal(ta.ixt[i], tb.ixt[j]) and np.array_equal(ta.iyt[i], tb.iyt[j])
