"""A user's first hour (issue 15): which invocation a report reads, one condition order, readable colours,
progress under ``mlflow run``, and a quiet TensorFlow start-up.

Synthetic sweeps are written straight into a temporary SQLite MLflow store; the
slow tests run a real trial and a real ``mlflow run`` of the smoke sweep.
"""

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ib_sweeps import analysis, plots, runtime
from ib_sweeps.analysis import figures
from ib_sweeps.analysis import synthetic as syn
from ib_sweeps.analysis.report import safe_name

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = np.r_[0, np.unique(np.geomspace(1, 2000, 40).astype(int))]
ACTS = ["tanh", "relu", "sigmoid", "linear", "softsign", "elu"]  # the activations sweep's order: not sorted
LAYERS = ("layer_1", "layer_2", "layer_3")


def _trial(activation, seed, compression=0.0):
    ixt = {("binning", lay): syn.rise_fall(EPOCHS, 300, 8 - i, 8 - i - compression) for i, lay in enumerate(LAYERS)}
    iyt = {("binning", lay): syn.rise_fall(EPOCHS, 300, 0.9, 0.95) for lay in LAYERS}
    per_epoch = {"loss/train": syn.kinked(EPOCHS, 300, -0.5, -0.05)}
    return syn.Trial({"model.activation": activation, "seed": seed}, EPOCHS, ixt, iyt, per_epoch)


def _invocation(uri, name, trials, profile="", overrides=(), spec=None):
    """A synthetic invocation with the parent params a real one has (profile, overrides)."""
    from mlflow import MlflowClient

    spec = {"grid": {"model.activation": ACTS}, "base": {"estimators": [{"method": "binning"}]}, **(spec or {})}
    parent = syn.write_sweep(uri, name, trials, {**spec, "profile": profile, "overrides": list(overrides)})
    client = MlflowClient(uri)
    client.log_param(parent, "profile", profile)
    client.log_param(parent, "overrides", json.dumps(list(overrides)))
    time.sleep(0.01)  # distinct start times
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('first_hour') / 'mlflow.db'}"
    shuffled = [3, 0, 5, 1, 4, 2]  # trials logged out of the file's order
    full = [_trial(ACTS[i], s, 2.0 if ACTS[i] == "tanh" else 0.0) for i in shuffled for s in range(3)]
    ids = {
        "full": _invocation(uri, "acts", full),
        "smaller": _invocation(uri, "acts", full[:4], overrides=["seeds=1"]),
        "quick": _invocation(uri, "acts", [_trial("tanh", 0, 2.0)], profile="quick", overrides=["train.epochs=50"]),
    }
    # only profile runs: the one with the most FINISHED trials wins, not the latest
    ids["q_big"] = _invocation(uri, "onlyquick", full[:6], profile="quick")
    ids["q_small"] = _invocation(uri, "onlyquick", full[:1], profile="tiny")
    return uri, ids


# -- which invocation ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_default_invocation_is_the_full_one_not_the_latest_quick_one(store, capsys):
    uri, ids = store
    src = analysis.locate("acts", uri)
    assert src.parent_run_id == ids["full"]  # not "quick" (latest) nor "smaller" (overrides)
    assert "without a profile or overrides" in src.chosen_because and src.others == 2
    said = capsys.readouterr().err
    assert ids["full"] in said and "no profile" in said and "18 FINISHED" in said and "--list" in said
    analysis.locate("acts", uri)
    assert capsys.readouterr().err == ""  # said once per process
    assert analysis.locate("onlyquick", uri, announce=False).parent_run_id == ids["q_big"]


@pytest.mark.slow
def test_choose_by_profile_and_run_id_prefix(store):
    uri, ids = store
    assert analysis.locate("acts", uri, profile="quick").parent_run_id == ids["quick"]
    assert analysis.locate("acts", uri, invocation=ids["smaller"][:8]).parent_run_id == ids["smaller"]
    with pytest.raises(LookupError, match="no invocation with profile 'nope'"):
        analysis.locate("acts", uri, profile="nope")
    with pytest.raises(LookupError, match=r"invocations? with a run id starting"):
        analysis.locate("acts", uri, invocation="zz")
    invs = analysis.invocations("acts", uri)
    assert [i.run_id for i in invs] == [ids["quick"], ids["smaller"], ids["full"]]  # newest first
    assert [i.finished for i in invs] == [1, 4, 18] and invs[0].profile == "quick"


def _cli(*args, cwd):
    cmd = [sys.executable, "-m", "ib_sweeps.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_report_cli_lists_and_names_the_invocation(store, tmp_path):
    uri, ids = store
    proc = _cli("report", "acts", "--tracking-uri", uri, "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    starred = [line for line in proc.stdout.splitlines() if line.startswith("* ") and ids["full"] in line]
    assert len(starred) == 1 and ids["quick"] in proc.stdout and "profile quick" in proc.stdout
    proc = _cli("report", "acts", "--tracking-uri", uri, "--profile", "quick", "--no-log", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"read invocation {ids['quick']}" in proc.stdout and "profile quick" in proc.stdout
    assert "latest invocation with profile 'quick'" in proc.stdout
    facts = json.loads(next((tmp_path / "reports").glob(f"acts-{ids['quick'][:8]}/verdicts.json")).read_text())
    assert facts["invocation"]["profile"] == "quick" and facts["invocation"]["overrides"] == ["train.epochs=50"]


@pytest.mark.slow
def test_report_folder_name_cannot_escape_reports(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _invocation(uri, "../../escaped", [_trial("tanh", 0)])
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    report = analysis.write_report("../../escaped", tracking_uri=uri, log=False, announce=False)
    assert report.folder.resolve().parent == (work / "reports").resolve()
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("escaped*"))
    assert safe_name("../../x") == "x" and safe_name("a b/c") == "a_b_c" and safe_name("..") == "sweep"


# -- one condition order, distinguishable styles -----------------------------------------------------------


@pytest.mark.slow
def test_report_tables_and_figures_follow_the_sweep_file_order(store, tmp_path):
    uri, ids = store
    want = [f"activation={a}" for a in ACTS]
    report = analysis.write_report("acts", tmp_path / "rep", uri, log=False, announce=False)
    page = report.html.read_text()
    assert re.findall(r"<tr><td>(activation=\w+)</td>", page) == want
    assert re.findall(r"^\| (activation=\w+) \|", report.markdown.read_text(), re.M) == want
    assert json.loads(report.json.read_text())["condition_order"] == want

    trace = analysis.load_trace(ids["full"], uri)
    table = analysis.compression_table(trace)
    assert list(dict.fromkeys(trace["condition"])) != want  # the loader's order is not the file's
    fig = figures.information_vs_epoch(trace, "binning", want)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == want
    colours = {line.get_label(): (line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines}
    assert len(set(colours.values())) == 6  # six activations, six colour and line-style pairs
    fig = figures.compression_by_condition(table, ["binning"], order=want)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == want
    fig = figures.plane_grid(trace, "binning", want)
    assert [ax.get_title().split(" (")[0] for ax in fig.axes if ax.get_visible() and ax.get_title()] == want
    fig = figures.timing(trace, table, "binning", order=want)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == want


def test_condition_order_of_a_two_axis_grid():
    spec = {"grid": {"train.batch_size": [256, 32], "model.activation": ["tanh", "relu"]}}
    present = ["batch_size=32,activation=relu", "batch_size=256,activation=relu", "batch_size=32,activation=tanh",
               "batch_size=256,activation=tanh", "other=1"]  # fmt: skip
    assert analysis.condition_order(spec, present) == [
        "batch_size=256,activation=tanh", "batch_size=256,activation=relu",
        "batch_size=32,activation=tanh", "batch_size=32,activation=relu", "other=1",
    ]  # fmt: skip
    assert analysis.condition_order({}, ["b", "a"]) == ["a", "b"]  # a search sweep: sorted


def test_palette_is_okabe_ito_with_distinct_markers_and_line_styles():
    styles = [plots.style(i) for i in range(8)]
    for key in ("color", "marker", "linestyle"):
        assert len({str(s[key]) for s in styles}) == 8
    assert styles[0]["color"] == "#000000" and styles[1]["color"] == "#E69F00"  # Okabe & Ito, yellow last


# -- the per-trial information plane ---------------------------------------------------------------------


def _plane_trace(same_end=True):
    from ib_sweeps.trace import Trace

    layers = [f"layer_{i}" for i in range(1, 7)]
    t = Trace(["binning"], layers, ["loss/train", "accuracy/train", "loss/test", "accuracy/test"], 12.0, 1.0,
              np.zeros((EPOCHS[-1] + 1, 4)))  # fmt: skip
    for k in range(len(EPOCHS)):
        ixt = [syn.rise_fall(EPOCHS, 300, 11 - j, 9.0 if same_end else 9.0 - j)[k] for j in range(6)]
        iyt = [syn.rise_fall(EPOCHS, 300, 0.9, 0.98 if same_end else 0.98 - 0.1 * j)[k] for j in range(6)]
        t.add(EPOCHS[k], np.array([ixt]), np.array([iyt]))
    return t.sorted()


def test_information_plane_colours_epochs_on_a_log_scale():
    from matplotlib.colors import LogNorm

    fig = plots.information_plane(_plane_trace())
    (sc, *_) = [c for c in fig.axes[0].collections if c.get_array() is not None]
    assert isinstance(sc.norm, LogNorm) and sc.norm.vmin == 1 and sc.norm.vmax == EPOCHS[-1] + 1
    rgba = sc.to_rgba(np.array([1, 11, 101, 1001], dtype=float))  # epochs 0, 10, 100, 1000
    steps = np.linalg.norm(np.diff(rgba[:, :3], axis=0), axis=1)
    assert np.all(np.isfinite(rgba)) and steps.min() > 0.2 * steps.max()  # each decade visibly apart


@pytest.mark.parametrize("same_end", [True, False])
def test_layer_labels_do_not_overlap(same_end):
    from matplotlib.text import Text

    fig = plots.information_plane(_plane_trace(same_end))
    fig.canvas.draw()
    names = {f"layer_{i}" for i in range(1, 7)}
    # the label's own box (an Annotation's extent also covers its leader line)
    boxes = [Text.get_window_extent(t) for t in fig.axes[0].texts if t.get_text() in names]
    assert len(boxes) == 6
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)


# -- progress under `mlflow run`; a quiet TensorFlow --------------------------------------------------------


def test_mlproject_main_shows_progress():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert "--no-progress" not in project["entry_points"]["main"]["command"]
    assert "--invocation" in project["entry_points"]["report"]["command"]


class _Pipe(io.StringIO):
    flushes = 0

    def isatty(self):
        return False

    def flush(self):
        self.flushes += 1


def test_progress_line_without_a_terminal_starts_beats_and_flushes(monkeypatch):
    from ib_sweeps.sweep import progress

    out = _Pipe()
    cb = progress.make_callback("acts", 4, out)
    cb.setup()
    assert out.getvalue() == "acts: 0/4 done (0 skipped), 0 running, 0 failed | 0m00s elapsed, ETA -\n"
    cb.on_step_end(0, [])
    assert out.getvalue().count("\n") == 1  # unchanged, and the heartbeat is not due
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    cb.on_step_end(1, [])
    assert out.getvalue().count("\n") == 2 and out.flushes >= 2


def test_final_lines_say_how_to_open_the_parent_run():
    from ib_sweeps.sweep.progress import where_to_look

    text = where_to_look("acts", "a" * 32, "7", "sqlite:////data/my store/mlflow.db")
    assert "mlflow ui --backend-store-uri 'sqlite:////data/my store/mlflow.db'" in text
    assert "then open http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning" in text
    assert f"http://127.0.0.1:5000/#/experiments/7/runs/{'a' * 32}?workflowType=machine_learning" in text
    assert "ib-sweeps report acts --invocation aaaaaaaa --tracking-uri" in text
    http = where_to_look("acts", "b" * 32, "2", "http://h:5000/")
    assert f"parent run: http://h:5000/#/experiments/2/runs/{'b' * 32}?workflowType=machine_learning" in http


def test_start_up_noise_is_recognised_and_real_errors_are_kept():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795903230.622845    4723 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1795903230.624232    4723 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU ...",
    ]
    cuinit = "E0000 00:00:1795903249.856021 4723 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error"
    assert all(runtime.is_noise(line) for line in noise)
    assert runtime.is_noise(cuinit, gpu_driver=False) and not runtime.is_noise(cuinit, gpu_driver=True)
    assert not runtime.is_noise("E0000 00:00:1.0 1 op_kernel.cc:1] OOM when allocating tensor")
    assert not runtime.is_noise("Traceback (most recent call last):")


def test_filtered_stderr_drops_only_noise_written_below_python():
    code = (
        "import os, sys; from ib_sweeps import runtime\n"
        "with runtime.filtered_stderr(runtime.is_noise):\n"
        "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on\\nkept line\\n')\n"
        "    print('python line', file=sys.stderr)\n"
        "os.write(2, b'after\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["kept line", "python line", "after"]


@pytest.mark.slow
def test_a_tiny_trial_starts_quietly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TF_CPP"))}
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "trial", "--set", "train.epochs=3", "--tracking-uri",
           f"sqlite:///{tmp_path / 'mlflow.db'}", "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FINISHED" in proc.stdout
    bad = [line for line in proc.stderr.splitlines() if "cuInit" in line or line.startswith("E0000")]
    assert not bad, proc.stderr
    assert "oneDNN custom operations" not in proc.stderr and "InitializeLog" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), proc.stderr  # nothing printed twice


@pytest.mark.slow
def test_mlflow_run_prints_progress_and_where_to_look(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local", "--experiment-name", "project",
           "-P", "sweep=smoke", "-P", "profile=quick", "-P", "set=train.epochs=3 seeds=1"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, "MLFLOW_TRACKING_URI": uri}, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert "smoke: 0/2 done" in proc.stderr and "smoke: 2/2 done" in proc.stderr, proc.stderr[-3000:]
    assert "sweep smoke: 2/2 trials FINISHED" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert f"mlflow ui --backend-store-uri {uri}" in proc.stdout and "workflowType=machine_learning" in proc.stdout
    assert "cuInit" not in proc.stderr + proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize(
    ("error_text", "line"),
    [
        (
            "Failure # 1 (occurred at 2026-11-28_22-10-01)\nray.exceptions.ActorDiedError: The actor died unexpectedly "
            "before finishing this task.\n\tclass_name: ImplicitFunc\n",
            "the trial's worker process died (killed, or out of memory)",
        ),
        (
            "Failure # 1 (occurred at 2026-11-28_22-10-01)\nTraceback (most recent call last):\n  File x\n"
            "ib_sweeps.train.TrainingDiverged: loss is not finite at epoch 3\n",
            "ib_sweeps.train.TrainingDiverged: loss is not finite at epoch 3",
        ),
    ],
)
def test_a_failed_trial_is_reported_by_its_cause_not_rays_header(tmp_path, error_text, line):
    from types import SimpleNamespace

    from ib_sweeps.sweep.progress import error_line

    path = tmp_path / "error.txt"
    path.write_text(error_text)
    assert error_line(SimpleNamespace(error_file=str(path))) == line
