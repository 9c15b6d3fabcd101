"""What ib-sweeps writes and reads back, named in one place: metric keys, tag names, history columns, trace format.

Every writer (a trial, a sweep's parent run, synthetic sweeps) builds its keys
and tags here and every reader (sweep summaries, the analysis) parses them
here; ``tests/test_records.py`` checks that no other module of the package
spells a key prefix or a tag name. Plain strings and tuples, no imports: the
analysis can use it without TensorFlow, Ray or MLflow.

Metric keys (information in bits; ``step`` = epoch unless said otherwise):

* ``ixt/<estimator>/<layer>``, ``iyt/<estimator>/<layer>``: :func:`plane`;
  ``pooled/ixt/...``, ``pooled/iyt/...``: :func:`plane` with ``pooled=True``
  (step = the window's last epoch); read back by :func:`parse_plane`.
* ``grad/<stat>/<layer>``, ``stat`` in :data:`GRAD_STATS`: :func:`grad`, :func:`parse_grad`.
* ``loss/train``, ``accuracy/train``, ``loss/test``, ``accuracy/test``:
  :data:`HISTORY`, in the column order of ``trace.npz``'s history (which has
  every epoch; the store has those of :func:`ib_sweeps.trial.stored_history_epochs`).
* ``entropy/x``, ``entropy/y``: :data:`ENTROPY_X`, :data:`ENTROPY_Y` (step 0).
* ``time/<name>``: :func:`time_key` (wall seconds, final step).
* ``schedule/backtracked``: :data:`BACKTRACKED` (1.0 at epochs a schedule went back for).
* ``summary/<name>``: :func:`summary` (step 0), ``name`` a trial's headline
  number: :func:`summary_stat` (``<stat>/<estimator>/<layer>``, ``stat`` in
  :data:`SUMMARY_STATS`) or a :data:`HISTORY` key at the last epoch.
* ``trials/<status>``: :func:`trials` (a sweep's parent run; counts of its children).

Tags: ``ib_sweeps.*`` (:data:`VERSION`, :data:`CONFIG_HASH` ...; :func:`claim_tag`,
:func:`lock_tag`) and MLflow's own that ib-sweeps sets or reads
(:data:`PARENT_RUN_ID`, :data:`NOTE`, :data:`EXPERIMENT_KIND`).

``trace.npz``: :data:`TRACE_FORMAT` is the current format; :func:`trace_arrays`
names the arrays each format holds (:mod:`ib_sweeps.trace` writes and reads them).
"""

from __future__ import annotations

from typing import NamedTuple

# --- metric keys -------------------------------------------------------------------------------------------

IXT, IYT = "ixt", "iyt"
PLANE = (IXT, IYT)
POOLED = "pooled"
GRAD = "grad"
GRAD_STATS = ("mean_norm", "std_norm", "snr")  # :mod:`ib_sweeps.gradients`
SUMMARY = "summary"
SUMMARY_STATS = ("ixt_peak", "ixt_final", "iyt_final", "compression")  # :mod:`ib_sweeps.sweep.summary`
TIME = "time"
TRIALS = "trials"

LOSS_TRAIN, ACCURACY_TRAIN = "loss/train", "accuracy/train"
LOSS_TEST, ACCURACY_TEST = "loss/test", "accuracy/test"
# The one order of the loss/accuracy columns: the training core's rows and trace.npz's ``history`` (since the
# first trace), the per-epoch metrics, the summary's last-epoch values and the analysis's columns.
HISTORY = (LOSS_TRAIN, ACCURACY_TRAIN, LOSS_TEST, ACCURACY_TEST)
HISTORY_TEST = (LOSS_TEST, ACCURACY_TEST)
ENTROPY_X, ENTROPY_Y = "entropy/x", "entropy/y"
BACKTRACKED = "schedule/backtracked"
LAST_HIDDEN = "last_hidden"  # the layer name a summary gives the last hidden layer as well

_SEP = "/"


class PlaneKey(NamedTuple):
    q: str  # ixt or iyt
    estimator: str
    layer: str
    pooled: bool = False


class GradKey(NamedTuple):
    stat: str
    layer: str


class StatKey(NamedTuple):
    stat: str
    estimator: str
    layer: str


def plane(q: str, estimator: str, layer: str, *, pooled: bool = False) -> str:
    """``ixt/<estimator>/<layer>`` or ``iyt/...`` (``pooled/`` in front with ``pooled``)."""
    if q not in PLANE:
        raise ValueError(f"information-plane quantity {q!r}; allowed: {', '.join(PLANE)}")
    return _SEP.join((POOLED, q, estimator, layer) if pooled else (q, estimator, layer))


def parse_plane(key: str, *, pooled: bool | None = None) -> PlaneKey | None:
    """The parts of an information-plane key, else None; ``pooled``: only pooled (True) or per-epoch (False) keys."""
    parts = key.split(_SEP)
    is_pooled = len(parts) == 4 and parts[0] == POOLED
    if is_pooled:
        parts = parts[1:]
    if len(parts) != 3 or parts[0] not in PLANE or (pooled is not None and pooled != is_pooled):
        return None
    return PlaneKey(parts[0], parts[1], parts[2], is_pooled)


def plane_metrics(estimators, layers, ixt, iyt, *, pooled: bool = False) -> dict[str, float]:
    """Flat metric dict of one measurement: :func:`plane` keys of (n_estimators, n_layers) ``ixt``/``iyt`` (bits)."""
    out = {}
    for i, est in enumerate(estimators):
        for j, layer in enumerate(layers):
            out[plane(IXT, est, layer, pooled=pooled)] = ixt[i, j]
            out[plane(IYT, est, layer, pooled=pooled)] = iyt[i, j]
    return out


def grad(stat: str, layer: str) -> str:
    """``grad/<stat>/<layer>``: a layer's minibatch-gradient statistic."""
    return _SEP.join((GRAD, stat, layer))


def grad_column(stat: str) -> str:
    """``grad/<stat>``: the analysis's column of a gradient statistic (one row per layer)."""
    return _SEP.join((GRAD, stat))


GRAD_COLUMNS = tuple(grad_column(s) for s in GRAD_STATS)


def parse_grad(key: str) -> GradKey | None:
    """(stat, layer) of a :func:`grad` key, else None."""
    parts = key.split(_SEP)
    return GradKey(parts[1], parts[2]) if len(parts) == 3 and parts[0] == GRAD else None


def summary(name: str) -> str:
    """``summary/<name>``: a trial's headline number as logged in its run."""
    return _SEP.join((SUMMARY, name))


def parse_summary(key: str) -> str | None:
    """The name of a :func:`summary` key, else None."""
    head, _, name = key.partition(_SEP)
    return name if head == SUMMARY and name else None


def summary_stat(stat: str, estimator: str, layer: str) -> str:
    """``<stat>/<estimator>/<layer>``: a summary statistic's name (what Ray Tune sees and Optuna optimises)."""
    return _SEP.join((stat, estimator, layer))


def parse_summary_stat(name: str) -> StatKey | None:
    """(stat, estimator, layer) of a :func:`summary_stat` name, else None."""
    parts = name.split(_SEP)
    return StatKey(*parts) if len(parts) == 3 and parts[0] in SUMMARY_STATS else None


def time_key(name: str) -> str:
    """``time/<name>``: wall seconds of a part of a trial (``train_s``, ``estimate_s`` ...)."""
    return _SEP.join((TIME, name))


def parse_time(key: str) -> str | None:
    head, _, name = key.partition(_SEP)
    return name if head == TIME and name else None


def trials(status: str) -> str:
    """``trials/<status>`` (lower case): how many of a sweep's children ended with ``status``."""
    return _SEP.join((TRIALS, status.lower()))


def parse_trials(key: str) -> str | None:
    """The status (upper case, as MLflow spells it) of a :func:`trials` key, else None."""
    head, _, status = key.partition(_SEP)
    return status.upper() if head == TRIALS and status else None


# Every prefix a metric key can start with: tests/test_records.py checks no other module spells them.
KEY_PREFIXES = tuple(
    p + _SEP for p in (IXT, IYT, POOLED, GRAD, SUMMARY, TIME, TRIALS, "loss", "accuracy", "entropy", "schedule")
)

# --- tags --------------------------------------------------------------------------------------------------

TAG_PREFIX = "ib_sweeps."
VERSION = "ib_sweeps.version"  # ib-sweeps' version that wrote the run
CONFIG_HASH = "ib_sweeps.config_hash"  # a trial's config hash without the seed
SEED = "ib_sweeps.seed"
ROLE = "ib_sweeps.role"  # "sweep" (parent run) or "trial" (child run)
SWEEP = "ib_sweeps.sweep"  # the sweep's name
INVOCATION = "ib_sweeps.invocation"  # hash of what the resolved sweep runs (claims and description left out)
RESTATED = "ib_sweeps.restated"  # on a parent run: when its claims, description and profiles were last rewritten
AXES = "ib_sweeps.axes"  # a trial's axis values (JSON)
HOST, PID = "ib_sweeps.host", "ib_sweeps.pid"  # the driver holding a parent run
ERROR = "ib_sweeps.error"  # why a run did not finish
SWEEP_PARENT_RUN = "ib_sweeps.sweep_parent_run"  # on an `mlflow run` wrapper run: the sweep's parent
MLFLOW_PROJECT_RUN = "ib_sweeps.mlflow_project_run"  # on a parent run: its `mlflow run` wrapper
GPU_IDS = "ib_sweeps.gpu_ids"  # a trial's GPUs: "ray:<ids>" (Ray's assignment) or "env:<CUDA_VISIBLE_DEVICES>"
GPU_DEVICES = "ib_sweeps.gpu_devices"  # the GPUs TensorFlow sees in the trial's process, or "none"
GPU_MEMORY = "ib_sweeps.gpu_memory"  # the GPU memory policy: "growth", "limit:<MiB>", "none: no GPU" ...
ROLE_SWEEP, ROLE_TRIAL = "sweep", "trial"
_CLAIM, _LOCK = "ib_sweeps.claim.", "ib_sweeps.lock."

# MLflow's own tags that ib-sweeps sets or reads.
PARENT_RUN_ID = "mlflow.parentRunId"
NOTE = "mlflow.note.content"
EXPERIMENT_KIND = "mlflow.experimentKind"

# Every fixed tag name (``ib_sweeps.*`` first, then MLflow's).
TAGS: tuple[str, ...] = (VERSION, CONFIG_HASH, SEED, ROLE, SWEEP, INVOCATION, AXES, HOST, PID, ERROR, SWEEP_PARENT_RUN)
TAGS += (RESTATED, MLFLOW_PROJECT_RUN, GPU_IDS, GPU_DEVICES, GPU_MEMORY, PARENT_RUN_ID, NOTE, EXPERIMENT_KIND)


def claim_tag(number: int) -> str:
    """``ib_sweeps.claim.<number>``: a claim's verdict on a sweep's parent run (numbered from 1)."""
    return f"{_CLAIM}{number}"


def lock_tag(field: str) -> str:
    """``ib_sweeps.lock.<field>``: a field of the driver lease on a tracking server's lock experiment."""
    return _LOCK + field


def lock_field(tag: str) -> str | None:
    """The field of a :func:`lock_tag`, else None."""
    return tag.removeprefix(_LOCK) if tag.startswith(_LOCK) else None


def is_own_tag(name: str) -> bool:
    """Whether ``name`` is one of ib-sweeps' tags (``ib_sweeps.*``)."""
    return name.startswith(TAG_PREFIX)


# --- trace.npz ---------------------------------------------------------------------------------------------

# 2: ``format_version`` stored, every array below required. 1: files without ``format_version`` (written
# before it existed); they may lack the arrays of _ADDED_IN_2, read as: every epoch "scheduled", no pooled
# estimates, no gradient statistics.
TRACE_FORMAT = 2
_ADDED_IN_2: tuple[str, ...] = (
    "reasons",
    "pooled_window",
    "pooled_estimators",
    "pooled_epochs",
    "pooled_ixt",
    "pooled_iyt",
)
_ADDED_IN_2 += ("grad_keys", "grad")
_TRACE_ARRAYS: tuple[str, ...] = ("epochs", "ixt", "iyt", "estimators", "layers", "history_keys", "history")
_TRACE_ARRAYS += ("h_x", "h_y", *_ADDED_IN_2)


def trace_arrays(version: int = TRACE_FORMAT) -> tuple[str, ...]:
    """The arrays a ``trace.npz`` of format ``version`` must hold (``format_version`` itself aside)."""
    if version == TRACE_FORMAT:
        return _TRACE_ARRAYS
    if version == 1:
        return tuple(a for a in _TRACE_ARRAYS if a not in _ADDED_IN_2)
    raise ValueError(f"trace format {version}; this ib-sweeps reads formats 1 to {TRACE_FORMAT}")
