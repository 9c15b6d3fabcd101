"""Write made-up sweeps straight into an MLflow store (no training): for tests and benchmarks.

The runs carry the same tags, params, metric keys and parent artifacts as a
real sweep (:mod:`ib_sweeps.sweep.ledger`, :mod:`ib_sweeps.tracking`), with
information traces whose answer is known by construction.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from ib_sweeps import records, tracking
from ib_sweeps.records import AXES, INVOCATION, PARENT_RUN_ID, ROLE, ROLE_SWEEP, ROLE_TRIAL, SEED, SWEEP
from ib_sweeps.records import CONFIG_HASH as HASH


@dataclass
class Trial:
    """One synthetic trial: axis values (with ``seed``), measured epochs and the series to log.

    ``ixt``/``iyt``: (estimator, layer) -> values at ``epochs`` (bits);
    ``per_epoch``: e.g. ``loss/train`` -> values at ``epochs``;
    ``grad``: (statistic, layer) -> values at ``epochs``, logged as ``grad/<statistic>/<layer>``;
    ``params``: config params logged besides the axes (dotted key -> value, e.g. ``estimators.binning.range``).
    """

    axes: dict
    epochs: np.ndarray
    ixt: dict = field(default_factory=dict)
    iyt: dict = field(default_factory=dict)
    per_epoch: dict = field(default_factory=dict)
    grad: dict = field(default_factory=dict)
    status: str = "FINISHED"
    params: dict = field(default_factory=dict)


def rise_fall(epochs, peak_epoch: float, peak: float, final: float, start: float = 0.0) -> np.ndarray:
    """Linear in log(1 + epoch) from ``start`` up to ``peak`` at ``peak_epoch``, then down to ``final`` at the end."""
    t = np.log1p(np.asarray(epochs, dtype=float))
    tp, te = np.log1p(peak_epoch), t[-1]
    up = start + (peak - start) * np.clip(t / tp, 0, 1)
    down = peak + (final - peak) * np.clip((t - tp) / max(te - tp, 1e-12), 0, 1)
    return np.where(t <= tp, up, down)


def kinked(epochs, kink_epoch: float, slope_before: float, slope_after: float, at_one: float = 1.0) -> np.ndarray:
    """A power law in epoch whose log-log slope changes at ``kink_epoch`` (continuous); epoch 0 reads as 1."""
    x = np.log10(np.maximum(np.asarray(epochs, dtype=float), 1.0))
    xk = np.log10(kink_epoch)
    y = np.log10(at_one) + slope_before * x + (slope_after - slope_before) * np.maximum(x - xk, 0)
    return 10**y


def write_sweep(tracking_uri: str, name: str, trials: list[Trial], spec: dict | None = None) -> str:
    """Log ``trials`` as child runs of a new parent run of sweep ``name``; return the parent run id.

    ``spec``: the resolved sweep (claims, base) stored as the parent's ``resolved_sweep.yaml``.
    """
    import yaml
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    uri = tracking.resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    exp_id = tracking.ensure_experiment(client, name, uri)
    spec = {"name": name, **(spec or {})}
    tags = {ROLE: ROLE_SWEEP, SWEEP: name, INVOCATION: hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]}
    parent = client.create_run(exp_id, run_name=f"{name}-synthetic", tags=tags).info.run_id
    client.log_text(parent, yaml.safe_dump(spec, sort_keys=False), "resolved_sweep.yaml")
    now = int(time.time() * 1000)
    for trial in trials:
        axes = dict(trial.axes)
        condition = {k: v for k, v in axes.items() if k != "seed"}
        run_tags = {
            PARENT_RUN_ID: parent,
            ROLE: ROLE_TRIAL,
            SWEEP: name,
            AXES: json.dumps(axes),
            SEED: str(axes.get("seed", 0)),
            HASH: hashlib.sha256(json.dumps(condition, sort_keys=True).encode()).hexdigest()[:16],
        }
        rid = client.create_run(exp_id, run_name=",".join(f"{k}={v}" for k, v in axes.items()), tags=run_tags)
        rid = rid.info.run_id
        series = {records.plane(records.IXT, e, layer): v for (e, layer), v in trial.ixt.items()}
        series |= {records.plane(records.IYT, e, layer): v for (e, layer), v in trial.iyt.items()}
        series |= dict(trial.per_epoch)
        series |= {records.grad(s, layer): v for (s, layer), v in trial.grad.items()}
        metrics = [
            Metric(key, float(v), now, int(step))
            for key, values in series.items()
            for step, v in zip(trial.epochs, values, strict=True)
        ]
        logged = {**trial.params, **condition}
        params = [Param(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in logged.items()]
        for i in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[i : i + 1000], params=params if i == 0 else [],
                             tags=[RunTag("synthetic", "true")] if i == 0 else [])  # fmt: skip
        client.set_terminated(rid, trial.status)
    client.set_terminated(parent, "FINISHED")
    return parent
