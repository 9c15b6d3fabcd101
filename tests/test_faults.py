"""Faults with real processes: nothing lost, nothing doubled, the exit code says what happened.

Each test drives ``ib-sweeps`` as separate processes against a real store (SQLite
file, a tmpfs that fills, a real ``mlflow server`` that stops and restarts) and
kills real processes (the driver, a Ray worker) with SIGKILL. After every fault
the same checks: each trial has exactly one FINISHED run, and each FINISHED run
holds every value the trial measured (:func:`complete`).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from test_sweep_run import clean_env, runs, sweep_file

from ib_sweeps import tracking

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ib_sweeps.cli"]


def start(args, cwd, log, **env):
    return subprocess.Popen([*CLI, *args], cwd=cwd, env=clean_env(**env), stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout=240, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def complete(client, run, epochs: int) -> None:
    """A FINISHED trial holds I(X;T), I(Y;T) at the same measured epochs, each once, and loss/accuracy at every
    epoch the store keeps (:func:`ib_sweeps.trial.stored_history_epochs` and the measured ones), each once."""
    from ib_sweeps.trial import stored_history_epochs

    rid = run.info.run_id
    plane = [k for k in run.data.metrics if k.startswith(("ixt/", "iyt/"))]
    measured = {k: sorted(m.step for m in client.get_metric_history(rid, k)) for k in plane}
    assert plane and len({tuple(v) for v in measured.values()}) == 1, (run.info.run_name, "ragged measured epochs")
    steps = next(iter(measured.values()))
    assert len(set(steps)) == len(steps)  # no step twice
    expected = sorted(stored_history_epochs(epochs) | set(steps))
    for key in ("loss/train", "loss/test", "accuracy/train", "accuracy/test"):
        stored = sorted(m.step for m in client.get_metric_history(rid, key))
        assert stored == expected, (run.info.run_name, key, len(stored), len(expected))
    assert {"trace.npz", "config.yaml"} <= {a.path for a in client.list_artifacts(rid)}


def once_each(uri, name, n_trials, epochs):
    """Every trial of sweep ``name`` FINISHED exactly once, with all its data."""
    client, _, children = runs(uri, name)
    finished = [c for c in children if c.info.status == "FINISHED"]
    keys = [(c.data.tags["ib_sweeps.config_hash"], c.data.tags["ib_sweeps.seed"]) for c in finished]
    assert len(keys) == n_trials and len(set(keys)) == n_trials, sorted(keys)
    for run in finished:
        complete(client, run, epochs)
    return client, children


def test_driver_killed_then_three_resumes_at_once_run_each_trial_once(tmp_path):
    """SIGKILL of the driver mid-sweep; three copies of the same command started together: one runs, two refuse."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, epochs=200, batch=64, seeds=2)
    # One network per trial, so trials end one at a time (a killed array: tests/test_trial_arrays.py).
    args = ["sweep", path, "--tracking-uri", uri, "--max-concurrent", "1", "--set", "resources.array_size=1"]
    tracking.open_client(uri)  # this process polls the store: create it first, under ib-sweeps' lock
    with open(tmp_path / "first.log", "w") as log:
        proc = start(args, tmp_path, log)
        wait_for(lambda: any(c.info.status == "FINISHED" for c in runs(uri, "tiny")[2]), what="a finished trial")
        wait_for(lambda: any(c.info.status == "RUNNING" for c in runs(uri, "tiny")[2]), what="a running trial")
        proc.kill()
        proc.wait(timeout=60)
    assert runs(uri, "tiny")[1][0].info.status == "RUNNING"  # no chance to clean up
    # A recorded PID reused by a live process must not block a resume: point the parent's PID tag at this one.
    client, (parent,), _ = runs(uri, "tiny")
    client.set_tag(parent.info.run_id, "ib_sweeps.pid", str(os.getpid()))
    logs = [open(tmp_path / f"resume{i}.log", "w+") for i in range(3)]  # noqa: SIM115
    procs = [start(args, tmp_path, log) for log in logs]
    codes = [p.wait(timeout=600) for p in procs]
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read())
        log.close()
    ran = [t for c, t in zip(codes, texts, strict=True) if c == 0 and "resuming parent run" in t]
    refused = [t for c, t in zip(codes, texts, strict=True) if c == 2]
    assert len(ran) == 1, (codes, [t[-800:] for t in texts])
    assert all("already running in process" in t for t in refused), refused
    assert len(ran) + len(refused) + sum("already complete" in t for t in texts) == 3
    client, children = once_each(uri, "tiny", 4, 200)
    _, parents, _ = runs(uri, "tiny")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "RUNNING" not in {c.info.status for c in children}
    # the analysis sees four trials, not the killed attempts
    from ib_sweeps import analysis

    assert len(analysis.load_runs("tiny", uri, status="FINISHED")) == 4


def test_fresh_after_a_kill_ends_the_old_invocation(tmp_path):
    """``--fresh`` after SIGKILL: the dead driver's parent and running children are marked KILLED, not left RUNNING."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, epochs=300, batch=64, seeds=1)
    args = ["sweep", path, "--tracking-uri", uri, "--max-concurrent", "1"]
    tracking.open_client(uri)  # this process polls the store: create it first, under ib-sweeps' lock
    with open(tmp_path / "run.log", "w") as log:
        proc = start(args, tmp_path, log)
        wait_for(lambda: any(c.info.status == "RUNNING" for c in runs(uri, "tiny")[2]), what="a running trial")
        proc.kill()
        proc.wait(timeout=60)
    fresh = subprocess.run([*CLI, *args, "--fresh"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    _client, parents, children = runs(uri, "tiny")
    old, new = sorted(parents, key=lambda r: r.info.start_time)
    assert old.info.status == "KILLED" and new.info.status == "FINISHED"
    assert "RUNNING" not in {c.info.status for c in children}
    killed = [c for c in children if c.data.tags["mlflow.parentRunId"] == old.info.run_id and c.info.status == "KILLED"]
    assert killed and all("driver that is gone" in c.data.tags["ib_sweeps.error"] for c in killed)


def test_worker_killed_fails_one_trial_others_go_on_and_ray_listens_on_loopback(tmp_path):
    """SIGKILL of the Ray worker running a trial: that run ends KILLED with the reason, exit 1, the rest FINISHED."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, epochs=400, batch=64, seeds=1)
    # One network per trial: killing the worker kills one trial (in an array it would end every replica KILLED).
    args = ["sweep", path, "--tracking-uri", uri, "--max-concurrent", "1", "--set", "resources.array_size=1"]
    tracking.open_client(uri)  # this process polls the store: create it first, under ib-sweeps' lock
    with open(tmp_path / "run.log", "w+") as log:
        proc = start(args, tmp_path, log)
        wait_for(lambda: any(c.info.status == "RUNNING" for c in runs(uri, "tiny")[2]), what="a running trial")
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        workers = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True, text=True).stdout.split()
        assert workers, "no Ray trial worker found"
        for pid in workers:
            os.kill(int(pid), signal.SIGKILL)
        code = proc.wait(timeout=600)
        log.seek(0)
        text = log.read()
    assert code == 1, text[-3000:]
    ours = [ln for ln in listening.splitlines() if re.search(r'"(gcs_server|raylet|ray::[^"]*|python[^"]*)"', ln)]
    assert ours, listening
    exposed = [ln for ln in ours if not re.search(r"\s(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):\d+\s", ln)]
    assert not exposed, "Ray listens beyond loopback:\n" + "\n".join(exposed)
    _client, (parent,), children = runs(uri, "tiny")
    assert parent.info.status == "FAILED"
    dead = [c for c in children if c.info.status != "FINISHED"]
    assert len(dead) == 1 and "worker process died" in dead[0].data.tags["ib_sweeps.error"]
    assert "Failure # 1" not in text and "sweep interrupted" not in text
    again = subprocess.run([*CLI, *args], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    once_each(uri, "tiny", 2, 400)


def test_concurrent_first_use_of_a_new_store(tmp_path):
    """Three processes creating one new SQLite store at once: MLflow's migrations are serialised, all succeed."""
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    base = ["trial", "--tracking-uri", uri, "--no-progress", "--set", "train.epochs=5 schedule.kind=every"]
    procs = [
        subprocess.Popen([*CLI, *base, "--experiment", f"e{i}"], cwd=tmp_path, env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(3)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[-1500:] for o in outs]
    client = MlflowClient(uri)
    for i in range(3):
        (run,) = client.search_runs([client.get_experiment_by_name(f"e{i}").experiment_id])
        assert run.info.status == "FINISHED"
        complete(client, run, 5)


def test_trial_with_explicit_uri_leaves_no_store_in_the_working_directory(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.run(
        [*CLI, "trial", "--tracking-uri", uri, "--no-progress", "--set", "train.epochs=3 schedule.kind=every"],
        cwd=work, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(work.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_fills_during_a_trial_never_finished_with_data_missing(small_disk, tmp_path):
    """The store's disk fills mid-trial: the trial fails (exit != 0) and its run is not FINISHED."""
    uri = f"sqlite:///{small_disk / 'mlflow.db'}"
    cmd = [*CLI, "trial", "--tracking-uri", uri, "--no-progress", "--set", "train.epochs=1000 schedule.kind=every"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(IB_SWEEPS_SETTLE_TIMEOUT_S="5"), capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "FINISHED" not in proc.stdout
    client = MlflowClient(uri)
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert found and all(r.info.status != "FINISHED" for r in found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(tmp_path: Path, port: int, log):
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_for(up, timeout=120, what="mlflow server")
    return proc


def test_tracking_server_stops_and_restarts_during_a_trial(tmp_path):
    """The server goes away for ~20 s mid-trial: the trial ends FINISHED only with every value stored."""
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as slog, open(tmp_path / "trial.log", "w+") as tlog:
        server = _server(tmp_path, port, slog)
        cmd = ["trial", "--tracking-uri", uri, "--experiment", "srv", "--no-progress",
               "--set", "train.epochs=1000 schedule.kind=every"]  # fmt: skip
        trial = start(cmd, tmp_path, tlog, MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
        client = MlflowClient(uri)
        wait_for(lambda: client.get_experiment_by_name("srv") is not None, what="the trial's experiment")
        time.sleep(4)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        time.sleep(20)
        assert trial.poll() is None, "the trial ended while the server was down"
        server = _server(tmp_path, port, slog)
        try:
            code = trial.wait(timeout=900)
            tlog.seek(0)
            text = tlog.read()
            assert code == 0, text[-3000:]
            (run,) = client.search_runs([client.get_experiment_by_name("srv").experiment_id])
            assert run.info.status == "FINISHED"
            complete(client, run, 1000)
        finally:
            os.killpg(server.pid, signal.SIGKILL)


def test_one_driver_per_invocation_on_a_tracking_server(tmp_path):
    """The lease on a tracking server: a second driver is refused, a dead holder's lease is taken over."""
    from ib_sweeps.sweep.lock import SweepBusy, driver_lock

    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as slog:
        server = _server(tmp_path, port, slog)
        try:
            client = MlflowClient(uri)
            busy = pytest.raises(SweepBusy, match=f"already running in process {os.getpid()}")
            with driver_lock("tiny", "abc", uri), busy, driver_lock("tiny", "abc", uri):
                pass
            assert client.get_experiment_by_name(".ib-sweeps-lock/tiny/abc") is None  # released
            dead = subprocess.Popen(["true"])
            dead.wait()
            stale = {"host": socket.gethostname(), "pid": str(dead.pid), "start": "1", "heartbeat": str(time.time())}
            client.create_experiment(
                ".ib-sweeps-lock/tiny/abc", tags={f"ib_sweeps.lock.{k}": v for k, v in stale.items()}
            )
            with driver_lock("tiny", "abc", uri):  # its holder is gone: taken over
                lease = client.get_experiment_by_name(".ib-sweeps-lock/tiny/abc")
                assert lease.tags["ib_sweeps.lock.pid"] == str(os.getpid())
        finally:
            os.killpg(server.pid, signal.SIGKILL)


def test_resources_beyond_the_cluster_are_refused_before_any_run(tmp_path):
    """resources.cpus above the largest Ray node: exit 2 naming the key, and no parent run in the store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cpus = (os.cpu_count() or 1) + 62
    args = ["sweep", sweep_file(tmp_path), "--tracking-uri", uri, "--set", f"resources.cpus={cpus}"]
    proc = subprocess.run([*CLI, *args], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"resources.cpus: {cpus} per trial, but the largest Ray node has" in proc.stderr
    _, parents, children = runs(uri, "tiny")
    assert parents == [] and children == []
