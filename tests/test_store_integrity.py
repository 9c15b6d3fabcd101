"""Nothing lost, nothing doubled, at the level of one run and one store (fast; real SQLite stores).

The process-level faults (SIGKILL, a full disk, a tracking server restart,
concurrent drivers) are in ``test_faults.py``.
"""

import time
import warnings

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations

from ib_sweeps import tracking
from ib_sweeps.analysis import synthetic as syn
from ib_sweeps.analysis.tables import DuplicateTrials, load_runs, load_trace
from ib_sweeps.sweep.lock import SweepBusy, driver_lock, holder, process_start


class DroppingClient:
    """A real client whose asynchronous batches are lost: the first ``drop`` say they succeeded, the rest fail."""

    def __init__(self, client, drop=1, fail_sync=False):
        self.client, self.drop, self.fail_sync = client, drop, fail_sync

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        if synchronous is False:
            if self.drop > 0:
                self.drop -= 1
                return RunOperations([])  # "done", but nothing reached the store: as a lost write looks
            raise_later = RunOperations([_failed_future()])
            return raise_later
        if self.fail_sync:
            raise OSError(28, "No space left on device")
        return self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def __getattr__(self, name):
        return getattr(self.client, name)


def _failed_future():
    from concurrent.futures import Future

    fut = Future()
    fut.set_exception(OSError(28, "No space left on device"))
    return fut


def _run(uri):
    client = tracking.open_client(uri)
    exp = tracking.ensure_experiment(client, "x", uri)
    return client, client.create_run(exp).info.run_id


def _steps(n, keys=("loss/train", "ixt/binning/layer_1")):
    return [(s, {k: float(s) for k in keys}) for s in range(n)]


@pytest.mark.slow
def test_settle_resends_what_the_store_lost(tracking_uri):
    client, rid = _run(tracking_uri)
    log = tracking.RunLogger(DroppingClient(client, drop=1), rid)
    log.metrics(_steps(1500))  # two batches of <= 1000 values... the first one is lost
    log.metrics(_steps(3, ("loss/test",)))  # this batch fails outright
    assert set(log.missing()) == {"loss/train", "ixt/binning/layer_1", "loss/test"}
    log.settle(timeout_s=5)
    assert log.missing() == {}
    for key, n in (("loss/train", 1500), ("loss/test", 3)):
        steps = [m.step for m in client.get_metric_history(rid, key)]
        assert sorted(steps) == list(range(n))  # every step once: re-sending never doubles


@pytest.mark.slow
def test_settle_gives_up_with_the_keys_it_lacks(tracking_uri):
    client, rid = _run(tracking_uri)
    log = tracking.RunLogger(DroppingClient(client, drop=0, fail_sync=True), rid)
    log.metrics(_steps(10))
    t0 = time.monotonic()
    with pytest.raises(tracking.StoreIncomplete, match=r"loss/train: holds 0 values at 0 steps; logged 10 steps"):
        log.settle(timeout_s=3)
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_a_trial_whose_store_lost_data_is_never_finished(tracking_uri, monkeypatch):
    """trial_run ends the run FAILED, with the reason, when the store cannot be made whole."""
    monkeypatch.setattr(tracking, "SETTLE_TIMEOUT_S", 2.0)
    opts = tracking.RunOptions(tracking_uri=tracking_uri, experiment="x")
    with pytest.raises(tracking.StoreIncomplete), tracking.trial_run(opts, {}) as log:
        log.client = DroppingClient(log.client, drop=0, fail_sync=True)
        log.direct = None  # the store is reached through the dropping client only (no direct SQLite writes)
        log.metrics(_steps(5))
    (run,) = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("x").experiment_id]
    )
    assert run.info.status == "FAILED"
    assert "the store lacks part of what this run logged" in run.data.tags["ib_sweeps.error"]


@pytest.mark.slow
def test_a_run_ended_by_another_driver_is_not_revived(tracking_uri):
    opts = tracking.RunOptions(tracking_uri=tracking_uri, experiment="x")
    with pytest.raises(tracking.RunEndedElsewhere), tracking.trial_run(opts, {}) as log:
        log.metrics(_steps(3))
        log.client.set_terminated(log.run_id, "KILLED")  # as a resumed sweep marks a stale run
    client = MlflowClient(tracking_uri)
    assert client.get_run(log.run_id).info.status == "KILLED"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/proc/ib-sweeps-test.db", "cannot create /proc/ib-sweeps-test.db"),
        ("/nonexistent-ib-sweeps/typo/x.db", "directory /nonexistent-ib-sweeps/typo does not exist"),
        ("/tmp", "/tmp is not a file"),
    ],
)
def test_unusable_sqlite_store_is_refused_at_once_naming_the_path(path, says):
    t0 = time.monotonic()
    with pytest.raises(tracking.StoreError, match=says):
        tracking.check_store(f"sqlite:///{path}")
    assert time.monotonic() - t0 < 2
    assert not __import__("os").path.exists("/nonexistent-ib-sweeps")  # never created


def test_cli_exits_2_on_an_unusable_store_before_any_run(tmp_path, capsys):
    from ib_sweeps.cli import main

    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    assert main(["trial", "--tracking-uri", f"sqlite:///{missing}", "--set", "train.epochs=2"]) == 2
    assert f"directory {missing.parent} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_one_driver_per_invocation(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    busy = rf"already running in process {holder()['pid']} on host"
    with driver_lock("tiny", "abc", uri):
        with pytest.raises(SweepBusy, match=busy), driver_lock("tiny", "abc", uri):
            pass
        with driver_lock("tiny", "other", uri):  # another invocation of the same sweep may run beside it
            pass
    with driver_lock("tiny", "abc", uri):  # released when the holder ends
        pass


def test_process_identity_includes_its_start_time():
    import os
    import subprocess

    me = process_start(os.getpid())
    assert me.isdigit()
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert process_start(child.pid) != "" and int(process_start(child.pid)) >= int(me)
    finally:
        child.kill()
        child.wait()
    assert process_start(child.pid) == ""  # gone: a PID alone would not tell


def _dup_sweep(uri):
    epochs = np.arange(0, 50, 5)
    curve = {
        ("binning", "layer_1"): syn.rise_fall(epochs, 20, 5, 3),
        ("binning", "layer_2"): syn.rise_fall(epochs, 20, 1, 1),
    }
    trials = [syn.Trial({"model.activation": "tanh", "seed": s}, epochs, curve) for s in (0, 1, 1)]  # seed 1 twice
    return syn.write_sweep(uri, "dup", trials)


@pytest.mark.slow
def test_analysis_counts_one_finished_run_per_trial_and_warns(tracking_uri):
    _dup_sweep(tracking_uri)
    with pytest.warns(DuplicateTrials, match="1 FINISHED runs repeat a trial"):
        runs = load_runs("dup", tracking_uri, status="FINISHED")
    assert sorted(runs["seed"]) == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateTrials)
        trace = load_trace("dup", tracking_uri)
    assert trace.groupby("seed")["run_id"].nunique().to_dict() == {0: 1, 1: 1}


@pytest.mark.slow
def test_one_query_read_of_stored_steps_equals_the_public_api(tracking_uri):
    """The direct read of the SQLite ``metrics`` table agrees with ``get_metric_history`` (fails if MLflow changes)."""
    client, rid = _run(tracking_uri)
    log = tracking.RunLogger(client, rid)
    log.metrics(_steps(1200))
    log.metrics([(7, {"loss/train": 2.0})])  # a second value at one step: held twice, both ways
    log.wait()
    fast = tracking.stored_steps(tracking_uri, rid)
    for key in ("loss/train", "ixt/binning/layer_1"):
        assert sorted(fast[key]) == sorted(m.step for m in client.get_metric_history(rid, key))
    assert len(fast["loss/train"]) == 1201
    assert tracking.stored_steps("http://127.0.0.1:1", rid) is None
    with_uri = tracking.RunLogger(client, rid, tracking_uri, sent=log.sent)
    assert with_uri.missing() == tracking.RunLogger(client, rid, sent=log.sent).missing() != {}
