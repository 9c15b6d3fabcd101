"""Tidy tables of a sweep's trials, read from MLflow: runs, information traces, loss histories.

Conditions: trials that differ only in their seed share a *condition*, named
after their non-seed axis values (``activation=tanh``); seeds are the unit of
replication.
"""

from __future__ import annotations

import json

import numpy as np

from ib_sweeps import records
from ib_sweeps.analysis import histories
from ib_sweeps.analysis.source import Source, locate
from ib_sweeps.records import AXES, ERROR, SEED
from ib_sweeps.records import CONFIG_HASH as HASH

PLANE = records.PLANE  # ixt, iyt
PER_EPOCH = records.HISTORY  # loss/train, accuracy/train, loss/test, accuracy/test
GRADIENT = records.GRAD_COLUMNS  # grad/<stat>, one row per layer (metric keys grad/<stat>/<layer>)
RUN_COLUMNS = ("run_id", "condition", "seed")


def load_runs(sweep: str | Source, tracking_uri: str | None = None, status: str | tuple | None = None):
    """One row per child run of the invocation (pandas DataFrame).

    Columns: ``run_id``, ``run_name``, ``status``, ``condition`` (the non-seed
    axis values, e.g. ``activation=tanh``), ``seed``, ``config_hash``, ``error``,
    ``start_time``/``end_time`` (UTC timestamps), one column per axis with its
    typed value (``model.activation``), the other logged config params (as
    logged, strings) and ``tag.<name>`` for the ``ib_sweeps.*`` tags.
    ``status``: keep only runs with this status (or these statuses); retried
    trials have one run per attempt.

    One trial, one FINISHED run: a second FINISHED run of the same (config
    hash, seed), which only a store written to by two drivers at once can
    hold, is not a second seed. It is dropped (the earliest run is kept) and a
    :class:`DuplicateTrials` warning names it.
    """
    import pandas as pd

    src = locate(sweep, tracking_uri)
    wanted = {status} if isinstance(status, str) else set(status or ())
    rows = []
    for run in unique_finished(src.children):
        if wanted and run.info.status not in wanted:
            continue
        tags, params = run.data.tags, run.data.params
        axes = json.loads(tags.get(AXES, "{}"))
        seed = axes.pop("seed", tags.get(SEED))
        row = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "status": run.info.status,
            "condition": condition_name(axes),
            "seed": int(seed) if seed is not None else -1,
            "config_hash": tags.get(HASH, ""),
            "error": tags.get(ERROR, ""),
            "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(run.info.end_time, unit="ms", utc=True) if run.info.end_time else pd.NaT,
        }
        row.update({k: v for k, v in sorted(params.items()) if k not in axes and k not in row})
        row.update(axes)
        row.update({f"tag.{k}": v for k, v in sorted(tags.items()) if records.is_own_tag(k)})
        rows.append(row)
    columns = ["run_id", "run_name", "status", "condition", "seed", "config_hash", "error", "start_time", "end_time"]
    return pd.DataFrame(rows, columns=None if rows else columns)


class DuplicateTrials(UserWarning):
    """A sweep holds more than one FINISHED run of the same trial; the extras are not counted."""


def unique_finished(runs) -> list:
    """``runs`` (oldest first) without FINISHED runs that repeat an earlier FINISHED (config hash, seed)."""
    import warnings

    seen: dict[tuple, str] = {}
    kept, extra = [], []
    for run in runs:
        key = (run.data.tags.get(HASH), run.data.tags.get(SEED))
        if run.info.status == "FINISHED" and None not in key:
            if key in seen:
                extra.append(f"{run.info.run_id} (repeats {seen[key]})")
                continue
            seen[key] = run.info.run_id
        kept.append(run)
    if extra:
        warnings.warn(
            f"{len(extra)} FINISHED runs repeat a trial that already finished and are not counted: "
            + ", ".join(extra[:10]),
            DuplicateTrials,
            stacklevel=3,
        )
    return kept


def axis_columns(src: Source) -> list[str]:
    """The sweep's axes (without the seed), in the order the trials declare them."""
    seen: dict[str, None] = {}
    for run in src.children:
        for key in json.loads(run.data.tags.get(AXES, "{}")):
            if key != "seed":
                seen[key] = None
    return list(seen)


def condition_name(axes: dict) -> str:
    """``activation=tanh,batch_size=full``: each non-seed axis by its last key segment (``all`` when none)."""
    parts = [f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in axes.items() if k != "seed"]
    return ",".join(parts) or "all"


def _short(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def load_trace(
    sweep: str | Source, tracking_uri: str | None = None, status: str | tuple | None = "FINISHED", pooled=False
):
    """Tidy trace: one row per trial x measured epoch x layer x estimator (pandas DataFrame).

    Columns: ``run_id``, ``condition``, ``seed``, the axis columns, ``epoch``,
    ``layer`` (``layer_1`` ... ``layer_L``, the last the softmax output),
    ``layer_index`` (1 ... L), ``n_layers`` (L), ``estimator``, ``ixt``, ``iyt``
    (bits), the per-epoch ``loss/train``, ``accuracy/train``, ``loss/test``,
    ``accuracy/test`` at that epoch, and where the trial logged gradient
    statistics ``grad/snr``, ``grad/mean_norm``, ``grad/std_norm`` of the layer
    (NaN otherwise). ``pooled=True`` reads the pooled ("as-if-random")
    estimates ``pooled/ixt|iyt/...`` instead, one row per window end.
    ``status``: which runs (default: FINISHED; ``None``: all).
    """
    import pandas as pd

    src = locate(sweep, tracking_uri)
    runs = load_runs(src, status=status)
    pooled = bool(pooled)

    def keep(key: str) -> bool:
        return key in PER_EPOCH or (records.parse_plane(key, pooled=pooled) or records.parse_grad(key)) is not None

    data = _read(src, runs, keep)
    plane, grads, epochs = _Long(), _Long(), _Long()
    for (run_id, key), (steps, values) in data.items():
        if p := records.parse_plane(key, pooled=pooled):
            plane.add(steps, values, run_id=run_id, q=p.q, estimator=p.estimator, layer=p.layer)
        elif g := records.parse_grad(key):
            grads.add(steps, values, run_id=run_id, q=records.grad_column(g.stat), layer=g.layer)
        elif key in PER_EPOCH:
            epochs.add(steps, values, run_id=run_id, q=key)
    plane, grads, epochs = plane.frame(), grads.frame(), epochs.frame()
    keys = ["run_id", "estimator", "layer", "epoch"]
    if plane is None:
        return pd.DataFrame(columns=[*RUN_COLUMNS, *keys, "layer_index", "n_layers", *PLANE])
    out = plane.pivot_table(index=keys, columns="q", values="value", aggfunc="last").reset_index()
    out.columns.name = None
    for q in PLANE:
        if q not in out:
            out[q] = np.nan
    out["layer_index"] = out["layer"].str.extract(r"(\d+)$", expand=False).astype(int)
    out["n_layers"] = out.groupby("run_id")["layer_index"].transform("max")
    if epochs is not None:
        per_epoch = epochs.pivot_table(index=["run_id", "epoch"], columns="q", values="value")
        out = out.merge(per_epoch.reset_index(), on=["run_id", "epoch"], how="left")
    if grads is not None:
        per_layer = grads.pivot_table(index=["run_id", "layer", "epoch"], columns="q", values="value")
        out = out.merge(per_layer.reset_index(), on=["run_id", "layer", "epoch"], how="left")
    for col in (*PER_EPOCH, *GRADIENT):
        if col not in out:
            out[col] = np.nan
    meta = runs[[*RUN_COLUMNS, *[c for c in axis_columns(src) if c in runs]]]
    out = meta.merge(out, on="run_id", how="inner")
    out.columns.name = None
    return out.sort_values(["condition", "seed", "run_id", "estimator", "layer_index", "epoch"], ignore_index=True)


def load_history(
    sweep: str | Source, tracking_uri: str | None = None, status: str | tuple | None = "FINISHED", keys=PER_EPOCH
):
    """Loss/accuracy history: one row per trial x stored epoch with the ``keys`` columns (default: loss and accuracy).

    The store holds epochs 0..100, 400 log-spaced epochs and every measured
    epoch (:func:`ib_sweeps.trial.stored_history_epochs`); every epoch is in the
    trial's ``trace.npz``.
    """
    import pandas as pd

    src = locate(sweep, tracking_uri)
    runs = load_runs(src, status=status)
    data = _read(src, runs, lambda k: k in keys)
    long = _Long()
    for (run_id, key), (steps, values) in data.items():
        long.add(steps, values, run_id=run_id, q=key)
    frame = long.frame()
    if frame is None:
        return pd.DataFrame(columns=[*RUN_COLUMNS, "epoch", *keys])
    out = frame.pivot_table(index=["run_id", "epoch"], columns="q", values="value").reset_index()
    out.columns.name = None
    out = runs[list(RUN_COLUMNS)].merge(out, on="run_id")
    return out.sort_values(["condition", "seed", "run_id", "epoch"], ignore_index=True)


class _Long:
    """Collects (step, value) series with constant labels; one long DataFrame at the end (no per-series frames)."""

    def __init__(self):
        self.steps, self.values, self.labels = [], [], []

    def add(self, steps, values, **labels) -> None:
        self.steps.append(steps)
        self.values.append(values)
        self.labels.append(labels)

    def frame(self):
        import pandas as pd

        if not self.steps:
            return None
        counts = np.array([len(s) for s in self.steps])
        cols = {}
        for name in self.labels[0]:
            codes, uniques = pd.factorize(np.array([lab[name] for lab in self.labels], dtype=object))
            cols[name] = pd.Categorical.from_codes(np.repeat(codes, counts), uniques).astype(object)
        cols["epoch"] = np.concatenate(self.steps)
        cols["value"] = np.concatenate(self.values)
        return pd.DataFrame(cols)


def _read(src: Source, runs, keep) -> dict:
    if not len(runs):
        return {}
    by_id = {run.info.run_id: run for run in src.children}
    wanted = {rid: [k for k in by_id[rid].data.metrics if keep(k)] for rid in runs["run_id"]}
    ended = {rid for rid in wanted if by_id[rid].info.status != "RUNNING"}
    return histories.read(src.client, src.uri, wanted, ended)
