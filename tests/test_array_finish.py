"""Finishing an array's replicas (ib_sweeps/trial_array.py, ``_finish``): what each run holds when it ends.

Replicas here are opened on a real SQLite store and given a few measured epochs by
hand (no training): each run ends FINISHED only once the store holds its figures
(the pixels ``plots.save_all`` draws for its trace), trace and metrics; a replica
whose last metrics cannot be stored ends FAILED while the others finish; and after
the first run ends nothing is logged asynchronously (so no later end waits for
MLflow's queue to stop).
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from ib_sweeps import config, plots, store_sql, tracking, trial_array
from ib_sweeps.sweep.summary import trial_summary

ESTIMATORS = [{"method": "binning", "bin_size": 0.07}, {"method": "adaptive_binning", "n_bins": 30}]
FIGURES = ["gradients.png", "info_plane_adaptive_binning.png", "info_plane_binning.png",
           "info_vs_epoch_adaptive_binning.png", "info_vs_epoch_binning.png", "learning_curves.png"]  # fmt: skip


def _replicas(uri: str, n: int, epochs: int = 60) -> list:
    """N open replicas that logged a few measured epochs of made-up planes, loss and gradients, as training does."""
    reps = []
    for i in range(n):
        cfg = config.validate({"seed": i, "train": {"epochs": epochs}, "schedule": {"kind": "log", "n": 8},
                               "estimators": ESTIMATORS})  # fmt: skip
        opts = tracking.RunOptions(tracking_uri=uri, experiment="finish", progress=False, summarize=trial_summary)
        r = trial_array._replica(i, cfg, opts)
        rng = np.random.default_rng(i)
        r.trace.layers = [f"layer_{j + 1}" for j in range(4)]
        r.trace.grad = rng.lognormal(size=(epochs + 1, 4, 3)).astype(np.float32)
        r.open()
        previous = -1
        for epoch in (0, 1, 3, 10, 30, epochs):
            rows = rng.random((epoch - previous, 4))
            steps = r.passed(previous + 1, rows, None)
            r.record(epoch, rng.random((2, 4)) * 5, rng.random((2, 4)), steps)
            previous = epoch
        reps.append(r)
    return reps


def _artifacts(client, run_id, folder=None) -> dict[str, int]:
    out = {}
    for f in client.list_artifacts(run_id, folder):
        out.update(_artifacts(client, run_id, f.path) if f.is_dir else {f.path: f.file_size})
    return out


@pytest.fixture
def ends(tracking_uri, monkeypatch):
    """Record, at each run's end, its status, what the store holds of it, and the asynchronous batches sent so far."""
    seen, sent_async = [], [0]
    set_terminated, log_batch = MlflowClient.set_terminated, MlflowClient.log_batch

    def terminated(self, run_id, status=None, end_time=None):
        held = _artifacts(self, run_id), tracking.stored_steps(tracking_uri, run_id)
        seen.append((run_id, status, *held, sent_async[0]))
        return set_terminated(self, run_id, status, end_time)

    def batch(self, *args, synchronous=None, **kwargs):
        sent_async[0] += synchronous is False
        return log_batch(self, *args, synchronous=synchronous, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_terminated", terminated)
    monkeypatch.setattr(MlflowClient, "log_batch", batch)
    return seen


def test_each_replica_ends_finished_only_once_its_artifacts_and_metrics_are_stored(tracking_uri, ends, tmp_path):
    reps = _replicas(tracking_uri, 3)
    logs = [r.log for r in reps]
    results = trial_array._finish(reps, 0.0)
    client = MlflowClient(tracking_uri)
    assert [client.get_run(log.run_id).info.status for log in logs] == ["FINISHED"] * 3
    assert [e[0] for e in ends] == [log.run_id for log in logs] and {e[1] for e in ends} == {"FINISHED"}
    for result, log, (_, _, files, steps, _) in zip(results, logs, ends, strict=True):
        assert sorted(files) == sorted(["config.yaml", "trace.npz", *(f"figures/{f}" for f in FIGURES)])
        assert files == log.files  # every artifact at its size when the run ended FINISHED
        assert {k: sorted(v) for k, v in steps.items()} == {k: sorted(v) for k, v in log.sent.items()}
        assert {"time/total_s", "summary/" + next(iter(result.summary))} <= set(steps)
        # The stored figures are those save_all draws for the replica's trace.
        own = tmp_path / log.run_id
        own.mkdir()
        plots.save_all(result.trace, own)
        for name in FIGURES:
            stored = client.download_artifacts(log.run_id, f"figures/{name}", str(tmp_path))
            assert np.array_equal(np.asarray(Image.open(stored)), np.asarray(Image.open(own / name))), name
    # All asynchronous batches went out before the first end; the later ends found MLflow's queue stopped.
    assert len({e[-1] for e in ends}) == 1


def test_a_replica_whose_last_metrics_are_not_stored_fails_and_the_others_finish(tracking_uri, ends, monkeypatch):
    monkeypatch.setattr(tracking, "SETTLE_TIMEOUT_S", 1.0)  # retry for 1 s, not 10 minutes
    reps = _replicas(tracking_uri, 3)
    broken = reps[1].log.run_id
    log_batch = MlflowClient.log_batch  # the fixture's recorder

    def refuse(self, run_id, *args, synchronous=None, **kwargs):
        if run_id == broken and synchronous is not False and kwargs.get("metrics"):
            raise OSError(28, "No space left on device")
        return log_batch(self, run_id, *args, synchronous=synchronous, **kwargs)

    def refuse_directly(path, run_id, metrics):  # the direct SQLite write fails too: MLflow then sends them
        if run_id == broken:
            raise sqlite3.OperationalError("disk I/O error")
        return log_metrics(path, run_id, metrics)

    log_metrics = store_sql.log_metrics
    monkeypatch.setattr(MlflowClient, "log_batch", refuse)
    monkeypatch.setattr(store_sql, "log_metrics", refuse_directly)
    results = trial_array._finish(reps, 0.0)
    assert isinstance(results[1], OSError) and not isinstance(results[0], Exception)
    client = MlflowClient(tracking_uri)
    assert [client.get_run(r.log.run_id).info.status for r in reps] == ["FINISHED", "FAILED", "FINISHED"]
    assert "No space left on device" in client.get_run(broken).data.tags["ib_sweeps.error"]
