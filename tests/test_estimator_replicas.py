"""Many replicas estimated together (ib_sweeps.estimators.replicas): the same float bits as each alone.

Every comparison is exact (``tolist() ==``): a replica in an array measures
what the trial alone measures, bit for bit; a replica whose estimation fails
fails alone, with the error it meets alone.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ib_sweeps import estimators, trial_array
from ib_sweeps.estimators import discrete, discrete_batch, replicas
from ib_sweeps.trial import measure as measure_alone

N = 512
WIDTHS = (10, 7, 5, 4, 3, 2)
CONFIGS = [
    {"method": "binning", "bin_size": 0.07},
    {"method": "binning", "n_bins": 30},
    {"method": "binning", "n_bins": 12, "range": [-0.5, 2.0]},
    {"method": "adaptive_binning", "n_bins": 30},
    {"method": "adaptive_binning", "n_bins": 100},  # beyond the compared-cuts path: per-unit rank search
    {"method": "adaptive_binning", "n_bins": 8, "strategy": "layer_range"},
]


def _activity(rng, kind: str, widths=WIDTHS, dtype=np.float32) -> list[np.ndarray]:
    """One replica's layers (N, width): tanh-like in [-1, 1], ReLU-like (>= 0, unbounded, many exact 0s),
    constant, or coarse (few distinct values: many tied rows, small keys kept as they are)."""
    out = []
    for w in widths:
        z = rng.normal(size=(N, w)) * rng.uniform(0.3, 3.0, size=w)
        a = {
            "tanh": np.tanh(z),
            "relu": np.maximum(z * 20, 0),
            "constant": np.full((N, w), 0.25),
            "coarse": np.round(np.tanh(z)),
        }[kind]
        out.append(a.astype(dtype))
    return out


def _jobs(rng, kinds, configs, labels=None):
    ests = [estimators.get(**c) for c in configs]
    return [
        (ests, _activity(rng, k), rng.integers(0, 2, N) if labels is None else labels) for k in kinds
    ]  # labels differ by replica (each draws its own split)


def _assert_as_alone(jobs, results):
    for (ests, acts, y), (got, seconds) in zip(jobs, results, strict=True):
        assert seconds >= 0
        try:
            want = measure_alone(ests, acts, y)
        except Exception as err:
            assert type(got) is type(err) and str(got) == str(err)
            continue
        assert not isinstance(got, BaseException), got
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
        assert got[0].dtype == np.float64


def test_replicas_together_give_each_replica_its_own_bits():
    rng = np.random.default_rng(0)
    kinds = ["tanh", "relu", "tanh", "constant", "coarse", "relu", "tanh"]
    jobs = _jobs(rng, kinds, CONFIGS[:2]) + _jobs(rng, kinds[:3], CONFIGS[2:])
    _assert_as_alone(jobs, replicas.measure(jobs))


def test_replicas_with_different_configs_and_labels_each_get_their_own(monkeypatch):
    # Replicas of one array may each have their own estimators (a bin_count sweep) and labels; 2 per pass.
    rng = np.random.default_rng(1)
    monkeypatch.setattr(replicas, "MAX_VALUES", 2 * N * sum(WIDTHS))
    jobs = [
        ([estimators.get(**c) for c in CONFIGS[i % 3 :: 2]], _activity(rng, kind), rng.integers(0, 3, N))
        for i, kind in enumerate(["tanh", "relu", "coarse", "tanh", "relu", "constant", "tanh"])
    ]
    jobs[3] = ([estimators.get(**CONFIGS[0], label="b007"), *jobs[3][0][1:]], *jobs[3][1:])  # a label: same config
    _assert_as_alone(jobs, replicas.measure(jobs))


def test_wide_layers_and_float64_take_the_other_key_paths():
    # 40 units of 0.07 bins: the radix product passes 2**53 (row_keys' int/byte keys, per replica).
    rng = np.random.default_rng(2)
    ests = [estimators.get(**CONFIGS[0]), estimators.get(**CONFIGS[3])]
    jobs = [(ests, _activity(rng, k, (40, 1, 6), np.float64), rng.integers(0, 2, N)) for k in ["tanh", "relu", "tanh"]]
    _assert_as_alone(jobs, replicas.measure(jobs))


def test_state_ids_of_many_replicas_are_each_replicas_own():
    rng = np.random.default_rng(3)
    codes = rng.integers(-5, 40, size=(20, 4, 64))
    want = [discrete.dense_ids(discrete.row_keys(c.T)) for c in codes]
    assert discrete_batch.state_ids(codes).tolist() == [w.tolist() for w in want]


def test_a_failing_replica_fails_alone():
    rng = np.random.default_rng(4)
    jobs = _jobs(rng, ["tanh", "relu", "tanh", "tanh"], [CONFIGS[0], CONFIGS[3]])
    jobs[1][1][2][5, 1] = np.nan  # non-finite activity
    jobs[2] = (jobs[2][0], jobs[2][1], jobs[2][2][:-1])  # labels of the wrong length
    results = replicas.measure(jobs)
    assert isinstance(results[1][0], ValueError) and "NaN" in str(results[1][0])
    assert isinstance(results[2][0], ValueError) and "labels" in str(results[2][0])
    _assert_as_alone(jobs, results)


def test_a_pass_that_raises_is_estimated_replica_by_replica(monkeypatch):
    def broken(*args):
        raise RuntimeError("pass failed")

    monkeypatch.setattr(replicas, "information_planes", broken)
    rng = np.random.default_rng(5)
    jobs = _jobs(rng, ["tanh", "relu"], [*CONFIGS[:1], {"method": "kde_upper", "noise_variance": 0.1}])
    _assert_as_alone(jobs, replicas.measure(jobs))
    assert replicas.batches(jobs[0][0][0]) and not replicas.batches(jobs[0][0][1])


def test_the_array_fails_only_the_replica_whose_estimation_fails():
    rng = np.random.default_rng(6)
    cfg = SimpleNamespace(estimators=[estimators.get(**CONFIGS[0])], primary_estimator=lambda: 0)

    def replica(kind):
        r = SimpleNamespace(cfg=cfg, dataset=SimpleNamespace(y_measure=rng.integers(0, 2, N)))
        r.seconds, r.recorded, r.failed = {"estimate_s": 0.0}, [], []
        r.record = lambda epoch, ixt, iyt, steps: r.recorded.append((epoch, ixt, iyt))
        r.plan = SimpleNamespace(observe=lambda epoch, plane: None)
        r.fail = r.failed.append
        return r, _activity(rng, kind), []

    jobs = [replica("tanh"), replica("relu"), replica("tanh")]
    jobs[1][1][0][0, 0] = np.inf
    trial_array._measure(jobs, 7, ahead=True)
    assert [len(r.failed) for r, _, _ in jobs] == [0, 1, 0]
    assert [len(r.recorded) for r, _, _ in jobs] == [1, 0, 1]
    for r, acts, _ in (jobs[0], jobs[2]):
        want = measure_alone(cfg.estimators, acts, r.dataset.y_measure)
        assert r.recorded[0][1].tolist() == want[0].tolist() and r.recorded[0][2].tolist() == want[1].tolist()
        assert r.seconds["estimate_s"] > 0


@pytest.mark.parametrize("n_replicas", [1, 3])
def test_planes_of_one_replica_equal_discrete_planes(n_replicas):
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 50, size=(n_replicas, 3, 200))
    labels = rng.integers(0, 4, size=(n_replicas, 200))
    got = discrete_batch.planes(ids, labels)
    for r in range(n_replicas):
        assert got[r].tolist() == discrete.planes(list(ids[r]), labels[r]).tolist()
