"""Record contracts (:mod:`ib_sweeps.records`): every key family builds and parses back, tag names and the
trace format are pinned, older traces still load, and no other module of the package spells a key prefix or a
tag name."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from ib_sweeps import gradients, records, trace
from ib_sweeps.sweep import summary

PACKAGE = Path(records.__file__).parent


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("q", records.PLANE)
def test_plane_keys_round_trip(q, pooled):
    key = records.plane(q, "kde_upper", "layer_3", pooled=pooled)
    assert key == ("pooled/" if pooled else "") + f"{q}/kde_upper/layer_3"
    assert records.parse_plane(key) == (q, "kde_upper", "layer_3", pooled)
    assert records.parse_plane(key, pooled=pooled) == (q, "kde_upper", "layer_3", pooled)
    assert records.parse_plane(key, pooled=not pooled) is None


@pytest.mark.parametrize(
    "key", ["ixt/binning", "ixt/binning/layer_1/x", "grad/snr/layer_1", "pooled/grad/a/b", "loss/train", "summary/x"]
)
def test_other_keys_are_not_plane_keys(key):
    assert records.parse_plane(key) is None


def test_plane_metrics_of_one_measurement():
    ixt, iyt = np.array([[1.0, 2.0]]), np.array([[0.5, 0.25]])
    assert records.plane_metrics(["binning"], ["layer_1", "layer_2"], ixt, iyt) == {
        "ixt/binning/layer_1": 1.0,
        "iyt/binning/layer_1": 0.5,
        "ixt/binning/layer_2": 2.0,
        "iyt/binning/layer_2": 0.25,
    }
    pooled = records.plane_metrics(["kde"], ["layer_1"], ixt[:, :1], iyt[:, :1], pooled=True)
    assert pooled == {"pooled/ixt/kde/layer_1": 1.0, "pooled/iyt/kde/layer_1": 0.5}
    with pytest.raises(ValueError, match="allowed: ixt, iyt"):
        records.plane("hxt", "binning", "layer_1")


@pytest.mark.parametrize("stat", records.GRAD_STATS)
def test_gradient_keys_round_trip(stat):
    key = records.grad(stat, "layer_2")
    assert key == f"grad/{stat}/layer_2"
    assert records.parse_grad(key) == (stat, "layer_2")
    assert records.grad_column(stat) == f"grad/{stat}" and records.grad_column(stat) in records.GRAD_COLUMNS
    assert records.parse_grad(f"grad/{stat}") is None and records.parse_grad(f"ixt/{stat}/layer_2") is None
    assert gradients.KEYS == records.GRAD_STATS == ("mean_norm", "std_norm", "snr")


@pytest.mark.parametrize("stat", records.SUMMARY_STATS)
def test_summary_keys_round_trip(stat):
    name = records.summary_stat(stat, "binning", records.LAST_HIDDEN)
    assert name == f"{stat}/binning/last_hidden"
    assert records.parse_summary_stat(name) == (stat, "binning", "last_hidden")
    assert records.summary(name) == f"summary/{name}"
    assert records.parse_summary(records.summary(name)) == name
    assert summary.is_known_metric(name)
    assert records.parse_summary_stat("spread/binning/layer_1") is None
    assert records.parse_summary("summaries/x") is None and records.parse_summary("summary/") is None


def test_history_columns_have_one_order_the_traces_use():
    assert records.HISTORY == ("loss/train", "accuracy/train", "loss/test", "accuracy/test")
    assert summary.HISTORY == records.HISTORY
    assert records.HISTORY_TEST == ("loss/test", "accuracy/test")
    with np.load(Path(DATA) / "trace_format1.npz") as z:  # written before records.py existed
        assert tuple(z["history_keys"].tolist()) == records.HISTORY
    for key in records.HISTORY:
        assert records.parse_summary(records.summary(key)) == key and summary.is_known_metric(key)


def test_scalar_keys_round_trip():
    assert (records.ENTROPY_X, records.ENTROPY_Y, records.BACKTRACKED) == (
        "entropy/x",
        "entropy/y",
        "schedule/backtracked",
    )
    assert records.time_key("train_s") == "time/train_s" and records.parse_time("time/train_s") == "train_s"
    assert records.parse_time("times/train_s") is None
    assert records.trials("FINISHED") == "trials/finished" and records.parse_trials("trials/finished") == "FINISHED"
    assert records.parse_trials("trial/finished") is None


def test_every_built_key_starts_with_a_known_prefix():
    built = [
        records.plane("ixt", "e", "l"),
        records.plane("iyt", "e", "l", pooled=True),
        records.grad("snr", "l"),
        records.summary("x"),
        records.time_key("x"),
        records.trials("KILLED"),
        records.ENTROPY_X,
        records.BACKTRACKED,
        *records.HISTORY,
    ]
    for key in built:
        assert key.startswith(records.KEY_PREFIXES), key


def test_tag_names_are_pinned():
    assert {name: getattr(records, name) for name in records.__dict__ if getattr(records, name) in records.TAGS} == {
        "VERSION": "ib_sweeps.version",
        "CONFIG_HASH": "ib_sweeps.config_hash",
        "SEED": "ib_sweeps.seed",
        "ROLE": "ib_sweeps.role",
        "SWEEP": "ib_sweeps.sweep",
        "INVOCATION": "ib_sweeps.invocation",
        "RESTATED": "ib_sweeps.restated",
        "AXES": "ib_sweeps.axes",
        "HOST": "ib_sweeps.host",
        "PID": "ib_sweeps.pid",
        "ERROR": "ib_sweeps.error",
        "SWEEP_PARENT_RUN": "ib_sweeps.sweep_parent_run",
        "MLFLOW_PROJECT_RUN": "ib_sweeps.mlflow_project_run",
        "GPU_IDS": "ib_sweeps.gpu_ids",
        "GPU_DEVICES": "ib_sweeps.gpu_devices",
        "GPU_MEMORY": "ib_sweeps.gpu_memory",
        "PARENT_RUN_ID": "mlflow.parentRunId",
        "NOTE": "mlflow.note.content",
        "EXPERIMENT_KIND": "mlflow.experimentKind",
    }
    assert len(set(records.TAGS)) == len(records.TAGS)
    assert records.claim_tag(1) == "ib_sweeps.claim.1" and records.lock_tag("pid") == "ib_sweeps.lock.pid"
    assert (
        records.lock_field(records.lock_tag("heartbeat")) == "heartbeat" and records.lock_field("ib_sweeps.pid") is None
    )
    own = [t for t in records.TAGS if records.is_own_tag(t)]
    assert len(own) == 16 and not records.is_own_tag(records.PARENT_RUN_ID)


# --- trace.npz -----------------------------------------------------------------------------------------------


def _trace() -> trace.Trace:
    t = trace.Trace(
        ["binning"], ["layer_1", "layer_2"], list(records.HISTORY), 12.0, 1.0, np.arange(12.0).reshape(3, 4)
    )
    t.add(2, np.array([[2.0, 1.0]]), np.array([[0.5, 0.4]]))
    t.add(1, np.array([[3.0, 1.5]]), np.array([[0.6, 0.5]]), reason="backtracked")
    t.grad = np.arange(18, dtype=np.float32).reshape(3, 2, 3)
    t.pooled_window, t.pooled_estimators = 2, ["binning"]
    t.add_pooled(2, np.array([[2.5, 1.2]]), np.array([[0.55, 0.45]]))
    return t


def test_trace_saves_its_format_version_and_every_array(tmp_path):
    path = _trace().save(tmp_path / "trace.npz")
    with np.load(path) as z:
        assert int(z["format_version"]) == records.TRACE_FORMAT == 2
        assert set(z.files) == {"format_version", *records.trace_arrays()}
    back = trace.load(path)
    assert (back.epochs, back.reasons) == ([1, 2], ["backtracked", "scheduled"])
    assert back.history_keys == list(records.HISTORY) and back.history.tolist() == _trace().history.tolist()
    assert back.grad.tolist() == _trace().grad.tolist() and back.pooled_epochs == [2]
    assert np.array_equal(np.stack(back.ixt), np.stack(_trace().sorted().ixt))


def test_a_format_1_trace_written_before_the_version_still_loads():
    """tests/data/trace_format1.npz was written by the trace module of commit 5d9cca4 (no format_version)."""
    path = Path(DATA) / "trace_format1.npz"
    with np.load(path) as z:
        assert "format_version" not in z.files
    t = trace.load(path)
    assert (t.estimators, t.layers, t.history_keys) == (
        ["binning", "kde"],
        ["layer_1", "layer_2"],
        list(records.HISTORY),
    )
    assert (t.epochs, t.reasons) == ([0, 1, 2], ["scheduled", "backtracked", "scheduled"])
    assert t.ixt[2].tolist() == [[3.0, 1.0], [2.5, 0.9]] and t.iyt[0].tolist() == [[0.2, 0.1], [0.15, 0.05]]
    assert (t.h_x, t.h_y) == (12.0, 0.999) and np.isnan(t.history[3]).all() and t.history[1, 1] == 0.6
    assert (t.pooled_window, t.pooled_estimators, t.pooled_epochs) == (2, ["binning"], [2])
    assert t.grad.shape == (4, 2, 3) and t.grad[2, 1].tolist() == [1, 2, 0.5]


def test_the_oldest_traces_without_reasons_pooled_or_gradients_load(tmp_path):
    with np.load(Path(DATA) / "trace_format1.npz") as z:
        arrays = {k: z[k] for k in records.trace_arrays(1)}
    np.savez_compressed(tmp_path / "old.npz", **arrays)
    t = trace.load(tmp_path / "old.npz")
    assert t.reasons == ["scheduled"] * 3 and t.grad is None
    assert (t.pooled_window, t.pooled_epochs, t.pooled_ixt) == (0, [], [])


def test_a_newer_or_incomplete_trace_is_refused(tmp_path):
    arrays = _trace().arrays()
    np.savez(tmp_path / "newer.npz", **{**arrays, "format_version": np.int64(records.TRACE_FORMAT + 1)})
    with pytest.raises(ValueError, match="trace format 3; this ib-sweeps reads formats 1 to 2; a newer ib-sweeps"):
        trace.load(tmp_path / "newer.npz")
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "reasons"})
    with pytest.raises(ValueError, match=r"not a trace\.npz of format 2: lacks reasons"):
        trace.load(tmp_path / "partial.npz")


# --- one home: no other module spells a key prefix or a tag name ----------------------------------------------


def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module, f-strings' literal parts included, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _spelled_outside_records(pattern: re.Pattern) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "records.py" and path.parent == PACKAGE:
            continue
        for line, text in _literals(path):
            if pattern.search(text):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    return found


def test_metric_key_prefixes_are_spelled_only_in_records():
    """The issue's check: grep finds each key prefix built in one module.

    A prefix followed by ``<`` (``ixt/<label>/<layer>`` in a message) describes the grammar and builds nothing.
    """
    prefixes = "|".join(re.escape(p) for p in records.KEY_PREFIXES)
    assert _spelled_outside_records(re.compile(rf"(?<![\w./-])(?:{prefixes})(?!<)")) == []


def test_tag_names_are_spelled_only_in_records():
    names = "|".join(re.escape(n) for n in records.TAGS)
    families = "|".join(re.escape(n) for n in (records.claim_tag(""), records.lock_tag("")))
    # A tag, not a module path that starts like one (ib_sweeps.sweep.load); a family by its prefix.
    pattern = re.compile(rf"(?<![\w.])(?:(?:{names})(?![\w.])|{families})")
    assert _spelled_outside_records(pattern) == []
