"""Sweeps end to end on a real Ray instance and a real MLflow store (each test a few tens of seconds).

Every sweep runs as a separate ``ib-sweeps`` process, as a user runs it, so
signals, exit codes and Ray's own processes are exercised for real.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

TINY = """
name: {name}
description: test sweep
base:
  model: {{hidden: [4, 3], activation: tanh}}
  train: {{epochs: {epochs}, batch_size: {batch}}}
  schedule: {{kind: every}}
  estimators: [{{method: binning, bin_size: 0.07}}]
grid:
  {axis}: {values}
seeds: {seeds}
max_failures: {max_failures}
profiles:
  quick: {{}}
"""


def sweep_file(tmp_path, name="tiny", epochs=6, batch=512, axis="model.activation", values="[tanh, relu]", seeds=2,
               max_failures=0):  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(TINY.format(**locals())))
    return str(path)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def cli(*args, cwd, env=None, timeout=600):
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "sweep", *args]
    return subprocess.run(cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


def runs(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    parents = [r for r in found if r.data.tags.get("ib_sweeps.role") == "sweep"]
    children = [r for r in found if r.data.tags.get("ib_sweeps.role") == "trial"]
    return client, parents, children


def test_sweep_eight_trials_two_concurrent_lose_no_metric(tmp_path):
    """>= 8 trials at 2 concurrent on the default SQLite store: every metric of every epoch arrives."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = cli(sweep_file(tmp_path, seeds=4), "--max-concurrent", "2", "--tracking-uri", uri, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "locked" not in proc.stderr.lower()
    assert "tiny: 8/8 done (0 skipped), 0 running, 0 failed" in proc.stderr  # the progress line
    client, (parent,), children = runs(uri, "tiny")
    assert parent.info.status == "FINISHED" and len(children) == 8
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["ib_sweeps.sweep"] for c in children} == {"tiny"}
    assert sorted(int(c.data.tags["ib_sweeps.seed"]) for c in children) == [0, 0, 1, 1, 2, 2, 3, 3]
    hashes = [c.data.tags["ib_sweeps.config_hash"] for c in children]
    assert len(set(hashes)) == 2 and all(hashes.count(h) == 4 for h in hashes)  # replicates group by hash
    assert len({tuple(sorted(c.data.params)) for c in children}) == 1  # same columns in the UI
    assert {c.data.params["model.activation"] for c in children} == {"tanh", "relu"}
    keys = ["loss/train", "accuracy/test", "ixt/binning/layer_1", "iyt/binning/layer_3", "schedule/backtracked"]
    for child in children:
        for key in keys:  # epochs 0..6, every one measured: 7 values each, none lost
            steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, key))
            assert steps == list(range(7)), (child.info.run_name, key, steps)
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.yaml", "trace.npz", "figures"} <= arts
        assert "summary/compression/binning/last_hidden" in child.data.metrics
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep.yaml", "resolved_sweep.yaml", "summary.csv"} <= arts
    assert parent.data.metrics["trials/finished"] == 8
    table = client.download_artifacts(parent.info.run_id, "summary.csv", str(tmp_path))
    assert len(Path(table).read_text().strip().splitlines()) == 9
    # the same command again: the invocation is complete, nothing re-runs
    again = cli(sweep_file(tmp_path, seeds=4), "--tracking-uri", uri, cwd=tmp_path)
    assert again.returncode == 0 and "already complete" in again.stderr
    assert len(runs(uri, "tiny")[2]) == 8


def test_failing_trial_is_recorded_retried_and_the_sweep_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, axis="train.learning_rate", values="[1.0e-3, 1.0e+30]", seeds=1, max_failures=1)
    proc = cli(path, "--tracking-uri", uri, "--set", "train.optimizer=sgd model.activation=relu", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]  # exit status says a trial failed
    assert "failed, retrying: ib_sweeps.train.TrainingDiverged" in proc.stderr
    assert "Traceback" not in proc.stderr  # one line per failure, not Ray's flood
    _, (parent,), children = runs(uri, "tiny")
    assert parent.info.status == "FAILED"
    by_status = sorted((c.info.status, c.data.params["train.learning_rate"]) for c in children)
    assert by_status == [("FAILED", "1e+30"), ("FAILED", "1e+30"), ("FINISHED", "0.001")]  # 1 retry
    failed = [c for c in children if c.info.status == "FAILED"]
    assert all("diverged" in c.data.tags["ib_sweeps.error"] for c in failed)
    assert parent.data.metrics["trials/failed"] == 2


def _wait_for(predicate, timeout=240):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError("timed out waiting")


def _finished(uri):
    return [c for c in runs(uri, "tiny")[2] if c.info.status == "FINISHED"]


def _running(uri):
    return any(c.info.status == "RUNNING" for c in runs(uri, "tiny")[2])


def test_interrupt_kill_and_resume_without_duplicates(tmp_path):
    """SIGTERM, then SIGKILL of the driver, then the same command finishes the sweep exactly once."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, epochs=150, batch=64, seeds=2)
    # One network per trial (arrays: tests/test_trial_arrays.py), so trials finish one at a time.
    one = ["--set", "resources.array_size=1"]
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "sweep", path, "--tracking-uri", uri, "--max-concurrent", "1", *one]
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115
    runs(uri, "tiny")  # create the store here: two processes migrating a new SQLite file at once collide
    # 1. SIGTERM once a trial has finished: exits 130, parent and running child marked KILLED
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=log, stderr=log)
    _wait_for(lambda: len(_finished(uri)) >= 1 and _running(uri))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    _, (parent,), children = runs(uri, "tiny")
    assert parent.info.status == "KILLED"
    assert "RUNNING" not in {c.info.status for c in children}
    done = len(_finished(uri))
    # 2. resume, then SIGKILL (no chance to clean up): runs are left RUNNING
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=log, stderr=log)
    _wait_for(lambda: len(_finished(uri)) > done and _running(uri))
    proc.kill()
    proc.wait(timeout=60)
    assert runs(uri, "tiny")[1][0].info.status == "RUNNING"
    # 3. the same command finishes the sweep: stale runs KILLED, finished trials not re-run
    final = cli(path, "--tracking-uri", uri, "--max-concurrent", "1", *one, cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "resuming parent run" in final.stderr and "1 left RUNNING marked KILLED" in final.stderr
    _, parents, children = runs(uri, "tiny")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # one invocation, resumed
    finished = [(c.data.tags["ib_sweeps.config_hash"], c.data.tags["ib_sweeps.seed"]) for c in _finished(uri)]
    assert len(finished) == 4 and len(set(finished)) == 4  # every trial exactly once
    killed = [c for c in children if c.info.status == "KILLED"]
    assert len(killed) >= 2 and all(c.data.tags.get("ib_sweeps.error") for c in killed)


def test_mlflow_run_main_entry_point_runs_a_sweep(tmp_path):
    """`mlflow run . -P sweep=smoke`, as the README says: nothing left in `Default`, trials never in its run."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [
        sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local",
        "-P", "sweep=smoke", "-P", "profile=quick", "-P", "set=seeds=1 train.epochs=4",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, (parent,), children = runs(uri, "smoke")
    project = client.get_experiment_by_name("Default").experiment_id
    _wait_for(lambda: client.search_runs([project]) == [], timeout=60)  # nothing stray is left once mlflow ends
    assert "parent run " + parent.info.run_id in proc.stdout  # the last lines name the sweep's parent
    assert not (tmp_path / "mlruns").exists()
    (project_run,) = client.search_runs([project], run_view_type=ViewType.ALL)
    assert project_run.info.lifecycle_stage == "deleted" and project_run.info.status == "FINISHED"
    assert project_run.data.tags["ib_sweeps.sweep_parent_run"] == parent.info.run_id
    assert parent.data.tags["ib_sweeps.mlflow_project_run"] == project_run.info.run_id
    assert not any(k.startswith("ixt/") for k in project_run.data.metrics)  # never resumed by a trial
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    assert project_run.info.run_id not in {c.info.run_id for c in children} | {parent.info.run_id}
    assert {c.data.params["train.epochs"] for c in children} == {"4"}


def test_optuna_search(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    text = (
        Path(sweep_file(tmp_path, seeds=1))
        .read_text()
        .replace(
            "grid:\n  model.activation: [tanh, relu]\n",
            "search:\n  params:\n    train.learning_rate: {kind: loguniform, low: 1.0e-3, high: 1.0e-1}\n"
            "    model.hidden: {kind: choice, values: [[4, 3], [5]]}\n"
            "  objective: {metric: compression/binning/last_hidden, mode: max}\n  n_trials: 3\n",
        )
    )
    (tmp_path / "search.yaml").write_text(text)
    proc = cli(str(tmp_path / "search.yaml"), "--tracking-uri", uri, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, (parent,), children = runs(uri, "tiny")
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert all("summary/compression/binning/last_hidden" in c.data.metrics for c in children)
    rates = {float(c.data.params["train.learning_rate"]) for c in children}
    assert len(rates) == 3 and all(1e-3 <= r <= 1e-1 for r in rates)  # drawn, not a grid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """`ray start --head` and `mlflow server` on 127.0.0.1, torn down afterwards."""
    ray_port, mlflow_port = _free_port(), _free_port()
    env = clean_env()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    start = [ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(ray_port),
             "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{mlflow_port}"
    try:
        import urllib.request

        def up():
            try:
                return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
            except OSError:
                return False

        _wait_for(up, timeout=120)
        yield f"127.0.0.1:{ray_port}", url
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_sweep_joins_a_ray_cluster_and_a_tracking_server(tmp_path, cluster):
    address, url = cluster
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    proc = cli(sweep_file(tmp_path, seeds=1), "--address", address, cwd=workdir, env=clean_env(MLFLOW_TRACKING_URI=url))
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, (_parent,), children = runs(url, "tiny")
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:  # artifacts went through the server, not to a worker's local path
        assert child.info.artifact_uri.startswith("mlflow-artifacts:")
        assert "trace.npz" in {a.path for a in client.list_artifacts(child.info.run_id)}
    assert list((tmp_path / "server-artifacts").rglob("trace.npz"))
    assert not (workdir / "mlflow.db").exists() and not (workdir / "mlartifacts").exists()
