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
* ``loss/train``, ``loss/test``, ``accuracy/train``, ``accuracy/test``: every epoch.
* ``entropy/x``, ``entropy/y``: H(X), H(Y) of the measured inputs (step 0).
* ``time/train_s``, ``time/estimate_s``, ``time/total_s``: wall time (final);
  ``time/pooled_s``: of the pooled estimates (only with a ``pooled`` section).
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    progress: bool = True


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
            return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
        except MlflowException:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {name!r} is deleted; restore it or choose another name")
    return exp.experiment_id


@dataclass
class RunLogger:
    """Batched, asynchronous logging into one MLflow run."""

    client: object
    run_id: str

    def metrics(self, steps: list[tuple[int, dict[str, float]]]) -> None:
        """Log ``[(step, {key: value})]`` in as few ``log_batch`` calls as possible."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for step, values in steps for k, v in values.items()]
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH], synchronous=False)

    def params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _MAX_PARAMS_PER_BATCH])

    def artifacts(self, paths, subdir: str | None = None) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), subdir)

    def text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)


def _flush() -> None:
    import mlflow

    mlflow.flush_async_logging()


@contextmanager
def trial_run(opts: RunOptions, tags: dict[str, str]) -> Iterator[RunLogger]:
    """Open the trial's run; end it FINISHED, FAILED (error recorded) or KILLED (interrupt)."""
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    uri = resolve_tracking_uri(opts.tracking_uri)
    client = MlflowClient(uri)
    all_tags = {**tags, **dict(opts.tags)}
    if opts.parent_run_id:
        all_tags["mlflow.parentRunId"] = opts.parent_run_id
    if opts.run_id:
        run_id = opts.run_id
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in all_tags.items()])
    else:
        name = opts.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        exp_id = ensure_experiment(client, name, uri)
        run_id = client.create_run(exp_id, run_name=opts.run_name, tags=all_tags).info.run_id
    logger = RunLogger(client, run_id)
    try:
        yield logger
    except BaseException as err:
        _flush()
        status = "KILLED" if isinstance(err, KeyboardInterrupt | SystemExit) else "FAILED"
        message = f"{type(err).__name__}: {err}"
        client.set_tag(run_id, "ib_sweeps.error", message[:4000])
        client.log_text(run_id, "".join(traceback.format_exception(err)), "error.txt")
        client.set_terminated(run_id, status)
        raise
    _flush()
    client.set_terminated(run_id, "FINISHED")
