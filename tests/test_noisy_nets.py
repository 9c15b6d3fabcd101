"""Noisy networks (Goldfeld et al. 2019): noise in training and measurement, samples for noisy_sp, a trial."""

import numpy as np
import pytest
from mlflow import MlflowClient

from ib_sweeps import config, data, tracking
from ib_sweeps.estimators.noisy_sp import NoisySP

pytestmark = pytest.mark.usefixtures("tf_ready")

NOISY = {"model": {"hidden": [6, 4], "noise_std": 0.1}, "estimators": [{"method": "noisy_sp"}]}


def _core(seed=0, snapshot_capacity=0, **sections):
    from ib_sweeps import train

    cfg = config.validate({"seed": seed, "train": {"epochs": 20}, **sections})
    d = data.load(cfg.data, np.random.default_rng(seed))
    return train.build_core(cfg.model, cfg.train, d, seed, snapshot_capacity=snapshot_capacity)


def _run(core, stops):
    out = [core.advance(e) for e in stops]
    return np.concatenate([r for r, _ in out]), out[-1][1]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_noisy_core_is_deterministic_per_seed_and_chunking():
    h1, a1 = _run(_core(3, **NOISY), [0, 4, 20])
    h2, a2 = _run(_core(3, **NOISY), [0, 1, 7, 20])  # other stops: the noise is keyed by epoch, not by call
    assert np.array_equal(h1[[0, -1]], h2[[0, -1]]) and _same(a1, a2)


@pytest.mark.slow
def test_zero_noise_is_the_deterministic_network():
    plain, zero = _core(1, model={"hidden": [6, 4]}), _core(1, model={"hidden": [6, 4], "noise_std": 0.0})
    assert not zero.noisy
    (hp, ap), (hz, az) = _run(plain, [0, 10]), _run(zero, [0, 10])
    assert np.array_equal(hp, hz) and _same(ap, az)


@pytest.mark.slow
def test_measured_activity_is_one_noisy_draw_and_samples_are_noiseless_outputs():
    core = _core(0, **NOISY)
    _, acts = core.advance(0)
    samples = core.noisy_samples(0, 5)
    assert [s.shape for s in samples] == [(4096, 5, 6), (4096, 5, 4), (4096, 5, 2)]
    s1 = samples[0]
    assert np.array_equal(s1, np.repeat(s1[:, :1], 5, axis=1))  # layer 1's input is deterministic
    noise = acts[0] - s1[:, 0]  # the measured first layer: S_1 plus one draw of N(0, 0.1^2)
    assert noise.std() == pytest.approx(0.1, rel=0.03) and abs(noise.mean()) < 0.005
    assert np.abs(samples[1] - samples[1][:, :1]).max() > 0.01  # deeper layers vary with the noise before them
    assert np.allclose(samples[2].sum(axis=-1), 1.0, atol=1e-5)  # the output is the softmax
    assert _same(samples, core.noisy_samples(0, 5))
    assert not _same(samples, core.noisy_samples(1, 5, core.weights()))  # another epoch, other noise
    with pytest.raises(ValueError, match="live network is at epoch 0, not 1"):
        core.noisy_samples(1, 5)


@pytest.mark.slow
def test_snapshots_reproduce_the_live_noisy_network():
    snap, live = _core(0, snapshot_capacity=4, **NOISY), _core(0, **NOISY)
    snap.advance(0), live.advance(0)
    _, acts, flats = snap.advance_with_snapshots(5)
    for epoch, flat in zip(range(1, 5), flats, strict=True):
        _, expected = live.advance(epoch)
        assert _same(expected, snap.activity_from(flat, epoch=epoch))
        assert _same(live.noisy_samples(epoch, 3), snap.noisy_samples(epoch, 3, flat))
    _, expected = live.advance(5)
    assert _same(expected, acts) and _same(expected, snap.activity_from(snap.weights(), epoch=5))
    with pytest.raises(ValueError, match="pass the weights' epoch"):
        snap.activity_from(flats[0])


@pytest.mark.slow
def test_noisy_network_learns():
    core = _core(0, model={"hidden": [10, 7], "noise_std": 0.05, "init": "keras_default"})
    h, _ = _run(core, [0, 20])
    assert np.isfinite(h).all() and h[-1, 0] < 0.95 * h[0, 0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"estimators": [{"method": "noisy_sp"}]},
            r"estimators\[0\] \(noisy_sp\): needs a noisy network.*model.noise_std",
        ),
        (
            {"model": {"noise_std": 0.1}, "estimators": [{"method": "binning"}, {"method": "noisy_sp", "sigma": 0.2}]},
            r"estimators\[1\].sigma: got 0.2, but model.noise_std is 0.1",
        ),
        ({"model": {"noise_std": -0.1}}, r"model.noise_std: .*greater than or equal to 0"),
        ({"model": {"noise_std": 0.0}, "estimators": [{"method": "noisy_sp"}]}, r"model.noise_std is 0.0; allowed"),
        ({"model": {"noise_std": "0.1"}}, r"model.noise_std"),
        (
            {**NOISY, "pooled": {"window": 2}, "train": {"epochs": 5}},
            r"pooled: estimators \['noisy_sp'\] \(noisy_sp\) would pool one noisy draw",
        ),
    ],
)
def test_bad_noisy_configs_name_both_keys(raw, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate(raw)


def test_noisy_sp_takes_sigma_from_the_network_and_hashes_stay():
    cfg = config.validate({"model": {"noise_std": 0.05}, "estimators": [{"method": "noisy_sp"}]})
    assert cfg.estimators[0].sigma == 0.05 and config.to_dict(cfg)["estimators"][0]["sigma"] == 0.05
    assert config.validate(config.to_dict(cfg)) == cfg  # the config that ran states sigma
    assert "noise_std" not in config.to_dict(config.validate({}))["model"]  # absent: not dumped, hashes unchanged
    other = config.validate({"model": {"noise_std": 0.05}, "pooled": {"window": 2, "estimators": ["binning"]}})
    assert other.pooled is not None  # pooling other estimators of a noisy network is fine


def test_network_planes_uses_the_exact_first_layer_and_conditional_deeper_layers():
    rng = np.random.default_rng(0)
    s1 = np.repeat(np.tanh(rng.normal(size=(40, 1, 3))), 4, axis=1)
    s2 = np.tanh(s1[..., :2] + 0.1 * rng.normal(size=(40, 4, 2)))
    y = rng.integers(0, 2, 40)
    est = NoisySP(sigma=0.1, n_mc=4)
    planes = est.network_planes([s1, s2], y)
    assert planes.shape == (2, 2)
    assert tuple(planes[0]) == est.information_plane(s1[:, 0], y)
    assert tuple(planes[1]) == est.information_plane_conditional(s2, y)


def _noisy_trial(uri, seed):
    from ib_sweeps.trial import run_trial

    cfg = config.validate(
        {
            "seed": seed,
            "data": {"measure_size": 128},
            "model": {"hidden": [5, 3], "noise_std": 0.1},
            "train": {"epochs": 12, "gradient_stats": False},
            "schedule": {"kind": "delta_exact", "delta": 0.01},
            "estimators": [{"method": "noisy_sp", "n_mc": 4, "n_cond": 4}, {"method": "binning"}],
        }
    )
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=uri, experiment="noisy", progress=False))
    metrics = MlflowClient(uri).get_run(result.run_id).data.metrics
    return result.trace, {k: v for k, v in metrics.items() if k.startswith(("ixt/", "iyt/"))}


@pytest.mark.slow
def test_noisy_trial_end_to_end(tracking_uri):
    trace, logged = _noisy_trial(tracking_uri, seed=1)
    ixt = np.stack(trace.ixt)  # (epochs, estimators, layers)
    assert np.isfinite(ixt).all() and (ixt >= 0).all() and (ixt <= trace.h_x + 1e-9).all()  # H(X) = 7 bits
    assert trace.h_x == 7.0 and ixt[:, 0, 0].min() > 0  # noisy_sp sees the first layer's information
    assert {"ixt/noisy_sp/layer_1", "iyt/noisy_sp/layer_3", "ixt/binning/layer_2"} <= set(logged)
    assert "backtracked" in trace.reasons  # the worker thread measures snapshots with their epochs' noise
    again, logged_again = _noisy_trial(tracking_uri, seed=1)
    assert again.epochs == trace.epochs and np.array_equal(np.stack(again.ixt), ixt)  # deterministic per seed
    assert logged_again == logged
