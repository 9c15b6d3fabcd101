"""MLflow side of a trial: tracking URI, experiment, one run, batched metrics, artifacts.

Only :class:`mlflow.MlflowClient` is used (no fluent active-run state), so a
trial logs into exactly the run it created, or the one named by
``RunOptions.run_id``, never one inherited by accident.

Metric key grammar (all information in bits):

* ``ixt/<estimator>/<layer>``, ``iyt/<estimator>/<layer>``: I(X;T), I(Y;T) at
  measured epochs (``step`` = epoch; layers ``layer_1`` ... ``layer_L``, the last
  being the softmax output).
* ``pooled/ixt/<estimator>/<layer>``, ``pooled/iyt/<estimator>/<layer>``: the
  pooled ("as-if-random") I(X;T), I(Y;T) of a window of ``pooled.window``
  epochs (``step`` = the window's last epoch); only with a ``pooled`` section.
* ``grad/mean_norm/<layer>``, ``grad/std_norm/<layer>``, ``grad/snr/<layer>``:
  the layer's minibatch-gradient statistics over that epoch's batches (norm of
  the mean, norm of the elementwise std, their ratio; :mod:`ib_sweeps.gradients`)
  at measured epochs >= 1, backtracked ones included (``step`` = epoch); only
  with ``train.gradient_stats`` (default on). SNR is NaN where the std is 0
  (one batch per epoch: ``batch_size: full``).
* ``loss/train``, ``accuracy/train``, ``loss/test``, ``accuracy/test``: epochs 0..100, 400
  log-spaced epochs and every measured epoch (:func:`ib_sweeps.trial.stored_history_epochs`);
  every epoch's are in ``trace.npz``.
* ``entropy/x``, ``entropy/y``: H(X), H(Y) of the measured inputs (step 0).
* ``time/train_s``, ``time/estimate_s``, ``time/total_s``: wall time (final);
  ``time/pooled_s``: of the pooled estimates (only with a ``pooled`` section).

Keys and tag names are built and parsed by :mod:`ib_sweeps.records` only.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ib_sweeps import records

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "ib-sweeps"
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAMS_PER_BATCH = 100


@dataclass(frozen=True)
class RunOptions:
    """Where and how a trial runs; not part of the science, so not logged as params."""

    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    experiment: str | None = None  # None: $MLFLOW_EXPERIMENT_NAME, else "ib-sweeps"
    run_name: str | None = None
    run_id: str | None = None  # log into this existing run (as `mlflow run` asks) instead of a new one
    parent_run_id: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    cpus: int | None = None  # cap TensorFlow's thread pools
    gpus: float | None = None  # the GPU share (resources.gpus): sets TensorFlow's GPU memory policy
    progress: bool = True
    # Headline numbers of the trace, logged as ``summary/<name>`` at step 0 before the run ends (sweeps).
    summarize: Callable | None = None


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Absolute tracking URI: explicit, else $MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite).

    Relative SQLite and file paths are made absolute against the current
    directory, because Ray trials run in other working directories.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path != ":memory:" and not path.startswith("/"):
            return "sqlite:///" + str(Path(path).resolve())
        return uri
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file://").removeprefix("file:")).resolve().as_uri()
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def _artifact_location(uri: str, experiment: str) -> str | None:
    # Next to the SQLite file, not in whatever directory the first run happened to start.
    if not uri.startswith("sqlite:///"):
        return None
    root = Path(uri[len("sqlite:///") :]).parent / "mlartifacts"
    return (root / re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)).as_uri()


def ensure_experiment(client, name: str, uri: str) -> str:
    """Id of the experiment ``name``, created if missing (safe against a concurrent creator)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri, name), tags=EXPERIMENT_KIND)
        except MlflowException:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {name!r} is deleted; restore it or choose another name")
    for key, value in EXPERIMENT_KIND.items():  # experiments made before ib-sweeps tagged them
        if exp.tags.get(key) != value:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


class StoreError(ValueError):
    """The tracking store cannot be used (a missing directory, an unwritable file): nothing was started."""


class StoreIncomplete(RuntimeError):
    """What a run measured is not all in the store after retries: the run must not end FINISHED."""


class RunEndedElsewhere(RuntimeError):
    """The run was ended by someone else meanwhile (a resumed sweep marked it KILLED): its status is left alone."""


EXPERIMENT_KIND = {records.EXPERIMENT_KIND: "custom_model_development"}  # MLflow 3's UI: open on runs, not GenAI
SETTLE_TIMEOUT_S = float(os.environ.get("IB_SWEEPS_SETTLE_TIMEOUT_S", "600"))  # outlasts a tracking-server restart


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and ``:memory:``)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path == ":memory:" else Path(path)


def check_store(uri: str) -> None:
    """Refuse a SQLite store that cannot be created or written, naming the path, before any run exists.

    A missing directory is an error (never created: a typo must not grow a new tree of folders).
    """
    path = sqlite_path(uri)
    if path is None:
        return
    where = f"tracking URI {uri}"
    if path.exists():
        if not path.is_file():
            raise StoreError(f"{where}: {path} is not a file; allowed: a SQLite database file or a new file's path")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(f"{where}: {path} is not readable and writable by this user")
        return
    if not path.parent.is_dir():
        raise StoreError(
            f"{where}: directory {path.parent} does not exist; allowed: a path in an existing directory "
            "(create it first; ib-sweeps does not create directories for a store)"
        )
    try:  # only creating the file proves it can be created (/proc, read-only mounts, full disks)
        with open(path, "ab"):
            pass
    except OSError as err:
        raise StoreError(f"{where}: cannot create {path}: {err.strerror or err}") from None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise first use of a SQLite store across processes: MLflow's migrations race otherwise.

    An exclusive ``flock`` on ``<database>.lock`` (released when the process dies); other stores: no lock.
    """
    import fcntl

    path = sqlite_path(uri)
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _FirstLine(logging.Filter):
    """MLflow's asynchronous logger prints each failed batch with all its SQL; one line says enough here.

    The failure itself is not lost: :meth:`RunLogger.settle` collects it, re-sends the data and decides.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().splitlines()
        record.msg, record.args = (text[0][:300] if text else "") + " (ib-sweeps re-sends it before the run ends)", ()
        return True


def _quiet_async_errors() -> None:
    logger = logging.getLogger("mlflow.utils.async_logging.async_logging_queue")
    if not any(isinstance(f, _FirstLine) for f in logger.filters):
        logger.addFilter(_FirstLine())


def open_client(uri: str):
    """An :class:`mlflow.MlflowClient` on ``uri`` whose store exists and is migrated (under :func:`store_lock`)."""
    from mlflow import MlflowClient

    check_store(uri)
    _quiet_async_errors()
    with store_lock(uri):
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # creates the store and runs MLflow's migrations once, here
    return client


def retry(action, what: str, timeout_s: float | None = None):
    """``action()``, retried with backoff (1, 2, 4 ... 30 s) for up to ``timeout_s``; the last error is raised."""
    deadline = time.monotonic() + (SETTLE_TIMEOUT_S if timeout_s is None else timeout_s)
    delay = 1.0
    while True:
        try:
            return action()
        except Exception as err:
            if time.monotonic() + delay > deadline:
                err.add_note(f"(gave up {what} after retrying for {timeout_s or SETTLE_TIMEOUT_S:.0f} s)")
                raise
            log.warning("%s failed (%s: %s); retrying in %.0f s", what, type(err).__name__, err, delay)
            time.sleep(delay)
            delay = min(2 * delay, 30.0)


@dataclass
class RunLogger:
    """Batched logging into one MLflow run, which remembers what it sent.

    Metrics go to a SQLite store directly and synchronously (:func:`ib_sweeps.store_sql.log_metrics`,
    the rows MLflow's ``log_batch`` would store, ~8x less CPU), elsewhere through MLflow's asynchronous
    ``log_batch``. :meth:`settle` waits for the asynchronous batches, then checks the store
    key by key: every (key, step) sent is held exactly once, every artifact
    with its size. What is missing is sent again (synchronously, with the same
    timestamps, which MLflow stores once); a run ends FINISHED only after that.
    """

    client: Any  # mlflow.MlflowClient (not imported at module level: importing MLflow is slow)
    run_id: str
    uri: str | None = None  # a SQLite store's URI lets :meth:`missing` read all steps in one query
    sent: dict = field(default_factory=dict)  # key -> {step: Metric}
    files: dict = field(default_factory=dict)  # artifact path -> size in bytes
    pending: list = field(default_factory=list)  # RunOperations of asynchronous batches
    direct: Path | None = None  # the SQLite file metrics are written to directly; None: through MLflow

    def __post_init__(self) -> None:
        from ib_sweeps import store_sql

        path = sqlite_path(self.uri) if self.uri else None
        if self.direct is None and path is not None and store_sql.writable(self.client):
            self.direct = path

    def metrics(self, steps: list[tuple[int, dict[str, float]]], *, synchronous: bool = False) -> None:
        """Log ``[(step, {key: value})]`` in batches of at most 1000 values.

        Written directly to a SQLite store before this returns (:attr:`direct`): ~13 ms CPU a batch of
        1000 plus the disk's sync, where MLflow's queue spends ~105 ms CPU in a thread competing with
        training (``benchmarks/bench_logging.py``), and nothing is left to wait for when a run ends.
        Elsewhere, and for the rest of the run after a direct write fails (its batch included), through
        MLflow's ``log_batch``, asynchronously unless ``synchronous``: then stored before this returns
        (retried like :meth:`params`). Ending a run stops MLflow's asynchronous queue, shared by every run
        of the process, which takes up to a second when it is running; the last metrics of a run that ends
        soon after another are better sent synchronously than started again
        (:func:`ib_sweeps.trial_array.run_array`).
        """
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for step, values in steps for k, v in values.items()]
        for m in batch:
            self.sent.setdefault(m.key, {})[m.step] = m
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            chunk = batch[i : i + _MAX_METRICS_PER_BATCH]
            if self._write(chunk):  # False at once where metrics go through MLflow (direct is None)
                continue
            if synchronous:
                retry(lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk), "logging metrics")
            else:
                self.pending.append(self.client.log_batch(self.run_id, metrics=chunk, synchronous=False))

    def _write(self, chunk: list) -> bool:
        """Store ``chunk`` directly; False when that failed (MLflow sends it, and the rest of the run's metrics).

        A refusal (a deleted run, a bad value) is then MLflow's to raise or report, where it always was.
        """
        import sqlite3

        from mlflow.exceptions import MlflowException
        from mlflow.tracking.fluent import get_active_model_id

        from ib_sweeps import store_sql

        path = self.direct
        if path is None or get_active_model_id() is not None:  # a logged model: MLflow logs to it too, only it can
            return False
        try:
            store_sql.log_metrics(path, self.run_id, chunk)
            return True
        except (sqlite3.Error, OSError, MlflowException) as err:
            log.warning(
                "writing run %s's metrics to %s directly failed (%s: %s); MLflow's log_batch sends them from now on",
                self.run_id, self.direct, type(err).__name__, str(err).splitlines()[0][:300] if str(err) else "",
            )  # fmt: skip
            self.direct = None
            return False

    def params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            chunk = items[i : i + _MAX_PARAMS_PER_BATCH]
            retry(lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk), "logging params")

    def artifacts(self, paths, subdir: str | None = None) -> None:
        """Upload files (synchronously, retried like :meth:`settle`: a store that is down for a while is waited for)."""
        for path in paths:
            retry(lambda path=path: self.client.log_artifact(self.run_id, str(path), subdir), f"uploading {path}")
            name = Path(path).name if subdir is None else f"{subdir}/{Path(path).name}"
            self.files[name] = Path(path).stat().st_size

    def text(self, text: str, name: str) -> None:
        retry(lambda: self.client.log_text(self.run_id, text, name), f"uploading {name}")
        self.files[name] = len(text.encode())

    def wait(self) -> list[Exception]:
        """Wait for every asynchronous batch; the errors they met (the store said nothing otherwise)."""
        errors = []
        for ops in self.pending:
            try:
                ops.wait()
            except Exception as err:
                errors.append(err)
        self.pending.clear()
        return errors

    def missing(self) -> dict[str, str]:
        """Per metric key or artifact, what the store lacks or holds twice ({} when all is stored)."""
        problems = {}
        stored = stored_steps(self.uri, self.run_id) if self.uri else None
        for key, by_step in self.sent.items():
            if stored is not None:
                steps = stored.get(key, [])
            else:
                steps = [m.step for m in self.client.get_metric_history(self.run_id, key)]
            if len(steps) != len(by_step) or set(steps) != set(by_step):
                problems[key] = f"holds {len(steps)} values at {len(set(steps))} steps; logged {len(by_step)} steps"
        for folder in sorted({str(Path(name).parent) for name in self.files}):
            listed = self.client.list_artifacts(self.run_id, None if folder == "." else folder)
            stored = {f.path: f.file_size for f in listed}
            for name, size in self.files.items():
                if str(Path(name).parent) == folder and stored.get(name) != size:
                    problems[name] = f"artifact of {size} bytes, stored: {stored.get(name, 'absent')}"
        return problems

    def settle(self, timeout_s: float | None = None) -> None:
        """Make sure the store holds all that was logged, re-sending what is missing; else ``StoreIncomplete``."""
        errors = self.wait()

        def repair():
            problems = self.missing()
            if not problems:  # the usual case: one read of the store, nothing to re-send
                return
            metrics = [m for key in problems if key in self.sent for m in self.sent[key].values()]
            for i in range(0, len(metrics), _MAX_METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + _MAX_METRICS_PER_BATCH])
            problems = self.missing()
            if problems:
                raise StoreIncomplete(_lacks(problems, errors))

        try:
            retry(repair, f"storing run {self.run_id}'s data", timeout_s)
        except StoreIncomplete:
            raise
        except Exception as err:  # the store would not even answer or take the re-sent data
            try:
                lacks = _lacks(self.missing(), errors)
            except Exception:
                lacks = "the store could not be read back"
            raise StoreIncomplete(f"{lacks}; the last attempt to store it failed: {type(err).__name__}: {err}") from err


def stored_steps(uri: str, run_id: str) -> dict[str, list[int]] | None:
    """Every stored step of every metric of ``run_id``, by key, in one read of a SQLite store (else None).

    Reads MLflow's ``metrics`` table directly, read-only, through
    :func:`ib_sweeps.store_sql.stored_steps` (the one module that touches
    MLflow's private schema): per-key ``get_metric_history`` calls cost ~3 s
    for a default trial, this ~0.05 s. None (the caller uses the public API)
    on other stores, on any SQLite error and with an MLflow version that
    module was not tested with.
    """
    from ib_sweeps import store_sql

    path = sqlite_path(uri)
    return None if path is None else store_sql.stored_steps(path, run_id)


def _lacks(problems: dict[str, str], errors: list) -> str:
    listed = "; ".join(f"{k}: {v}" for k, v in list(problems.items())[:5])
    text = f"the store lacks part of what this run logged ({len(problems)} keys; {listed})"
    return text + (f"; asynchronous logging failed: {errors[0]}" if errors else "")


@contextmanager
def trial_run(opts: RunOptions, tags: dict[str, str]) -> Iterator[RunLogger]:
    """Open the trial's run; end it FINISHED only once the store holds all it logged.

    On error the run ends FAILED (error recorded) or KILLED (interrupt); if
    the store cannot even take that, the run stays RUNNING and a resumed sweep
    treats it as interrupted.
    """
    from mlflow.entities import RunTag

    uri = resolve_tracking_uri(opts.tracking_uri)
    client = open_client(uri)
    all_tags = {**tags, **dict(opts.tags)}
    if opts.parent_run_id:
        all_tags[records.PARENT_RUN_ID] = opts.parent_run_id
    if opts.run_id:
        run_id = opts.run_id
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in all_tags.items()])
    else:
        name = opts.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        exp_id = ensure_experiment(client, name, uri)
        run_id = client.create_run(exp_id, run_name=opts.run_name, tags=all_tags).info.run_id
    logger = RunLogger(client, run_id, uri)
    try:
        yield logger
        logger.settle()
        status = client.get_run(run_id).info.status
        if status != "RUNNING":  # never turn a run another driver ended back into FINISHED: that would double it
            raise RunEndedElsewhere(f"run {run_id} was ended {status} by another process while this trial ran")
    except RunEndedElsewhere:
        raise
    except BaseException as err:
        _end_unfinished(logger, err)
        raise
    retry(lambda: client.set_terminated(run_id, "FINISHED"), f"ending run {run_id}")


def _end_unfinished(logger: RunLogger, err: BaseException) -> None:
    """Record ``err`` on the run and end it FAILED/KILLED, never masking ``err``."""
    client, run_id = logger.client, logger.run_id
    status = "KILLED" if isinstance(err, KeyboardInterrupt | SystemExit) else "FAILED"
    message = f"{type(err).__name__}: {err}"
    try:
        logger.wait()
        client.set_tag(run_id, records.ERROR, message[:4000])
        client.log_text(run_id, "".join(traceback.format_exception(err)), "error.txt")
    except Exception as log_err:
        err.add_note(f"(recording the error on run {run_id} also failed: {log_err!r})")
    try:
        retry(lambda: client.set_terminated(run_id, status), f"ending run {run_id}", timeout_s=60)
    except Exception as end_err:
        err.add_note(f"(run {run_id} could not be ended {status} and stays RUNNING: {end_err!r})")
