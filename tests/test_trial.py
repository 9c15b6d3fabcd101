"""One trial end to end into a real SQLite MLflow store: params, metrics, artifacts, failures."""

import itertools

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from ib_sweeps import config, trace, tracking
from ib_sweeps.trial import run_trial

pytestmark = pytest.mark.usefixtures("tf_ready")

SMALL = {
    "train": {"epochs": 30},
    "schedule": {"kind": "log", "n": 8},
    "estimators": [{"label": "idnns"}, {"label": "saxe", "bin_size": 0.07}],
    "model": {"hidden": [6, 4, 3]},
}


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


@pytest.mark.slow
def test_trial_logs_everything(tracking_uri, tmp_path):
    cfg = config.validate({**SMALL, "seed": 2})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, experiment="t", progress=False))
    client = MlflowClient(tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "t"
    assert run.data.params == config.flatten(cfg)
    assert run.data.tags["ib_sweeps.config_hash"] == config.config_hash(cfg)
    assert run.data.tags["ib_sweeps.seed"] == "2"

    epochs = cfg.schedule.epochs(30).tolist()
    layers = ["layer_1", "layer_2", "layer_3", "layer_4"]
    info_keys = {f"{q}/{e}/{layer}" for q in ("ixt", "iyt") for e in ("idnns", "saxe") for layer in layers}
    other = {"loss/train", "loss/test", "accuracy/train", "accuracy/test", "entropy/x", "entropy/y"}
    assert info_keys | other <= set(run.data.metrics)
    history = client.get_metric_history(result.run_id, "ixt/saxe/layer_2")
    assert sorted(m.step for m in history) == epochs
    assert len(client.get_metric_history(result.run_id, "loss/test")) == 31  # every epoch, 0..30
    assert run.data.metrics["entropy/x"] == 12.0

    files = _artifacts(client, result.run_id)
    for name in ("trace.npz", "config.yaml", "figures/info_plane_idnns.png", "figures/info_plane_saxe.png"):
        assert name in files
    local = client.download_artifacts(result.run_id, "", str(tmp_path))
    t = trace.load(f"{local}/trace.npz")
    assert t.epochs == epochs and t.estimators == ["idnns", "saxe"] and t.layers == layers
    last = {m.step: m.value for m in history}[30]
    assert np.stack(t.ixt)[-1, 1, 1] == pytest.approx(last)
    assert np.isfinite(t.history).all() and t.history.shape == (31, 4)
    with open(f"{local}/config.yaml") as f:
        assert config.validate(yaml.safe_load(f)) == cfg  # the config that ran
    # Artifacts live next to the SQLite file, not in the working directory.
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())


@pytest.mark.slow
def test_diverging_trial_is_failed_with_error_and_partial_trace(tracking_uri, tmp_path):
    from ib_sweeps.train import TrainingDiverged

    cfg = config.validate(
        {
            "model": {"activation": "linear"},
            "train": {"optimizer": "sgd", "learning_rate": 1e6, "epochs": 40},
            "schedule": {"kind": "every"},
        }
    )
    with pytest.raises(TrainingDiverged):
        run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ib-sweeps").experiment_id])
    assert run.info.status == "FAILED"
    assert "diverged" in run.data.tags["ib_sweeps.error"]
    files = _artifacts(client, run.info.run_id)
    assert "error.txt" in files and "trace.npz" in files
    t = trace.load(client.download_artifacts(run.info.run_id, "trace.npz", str(tmp_path)))
    assert t.epochs[0] == 0  # what was measured before the divergence is kept


def test_logs_into_given_run(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("outer", artifact_location=(tmp_path / "outer").as_uri())  # not ./mlruns
    run_id = client.create_run(exp).info.run_id
    cfg = config.validate({"train": {"epochs": 2}, "model": {"hidden": [3]}, "schedule": {"kind": "every"}})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, run_id=run_id, progress=False))
    assert result.run_id == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([exp])) == 1


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///sub/x.db")
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path}/sub/x.db"
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert tracking.resolve_tracking_uri("sqlite:////abs/y.db") == "sqlite:////abs/y.db"


@pytest.mark.slow
def test_delta_exact_trial_backtracks_and_logs_true_steps(tracking_uri):
    from ib_sweeps import schedules

    cfg = config.validate(
        {"train": {"epochs": 400, "learning_rate": 0.01}, "schedule": {"kind": "delta_exact", "delta": 0.03}}
    )
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    t = result.trace
    assert t.epochs == sorted(t.epochs) and t.epochs[0] == 0 and t.epochs[-1] == 400
    assert "backtracked" in t.reasons and "scheduled" in t.reasons
    points = [np.stack([x[0], y[0]]) for x, y in zip(t.ixt, t.iyt, strict=True)]
    for (a, p), (b, q) in itertools.pairwise(zip(t.epochs, points, strict=True)):
        assert b - a == 1 or schedules.distance(p, q, t.h_x, t.h_y) <= 0.03
    client = MlflowClient(tracking_uri)
    steps = sorted(m.step for m in client.get_metric_history(result.run_id, "ixt/binning/layer_5"))
    assert steps == t.epochs  # backtracked epochs are logged at their own epoch
    flags = {m.step: m.value for m in client.get_metric_history(result.run_id, "schedule/backtracked")}
    assert [flags[e] for e in t.epochs] == [float(r == "backtracked") for r in t.reasons]


@pytest.mark.slow
def test_store_holds_a_log_grid_of_the_history_and_the_trace_all_of_it(tracking_uri):
    """Loss/accuracy: every epoch in trace.npz; in the store epochs 0..100, a log grid and every measured epoch."""
    from ib_sweeps.trial import stored_history_epochs

    cfg = config.validate({**SMALL, "train": {"epochs": 600}, "schedule": {"kind": "log", "n": 12}})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, experiment="t", progress=False))
    client = MlflowClient(tracking_uri)
    measured = {int(e) for e in result.trace.epochs}
    expected = sorted(stored_history_epochs(600) | measured)
    for key in ("loss/train", "accuracy/test"):
        assert sorted(m.step for m in client.get_metric_history(result.run_id, key)) == expected
    assert set(range(101)) <= set(expected) and 600 in expected and len(expected) < 601
    assert np.isfinite(result.trace.history).all() and len(result.trace.history) == 601  # all of it in the trace
    stored = {m.step: m.value for m in client.get_metric_history(result.run_id, "loss/train")}
    assert all(np.isclose(stored[e], result.trace.history[e, 0]) for e in expected)
