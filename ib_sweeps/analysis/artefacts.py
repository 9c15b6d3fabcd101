"""Warnings where an estimator artefact is likely: what to doubt before trusting a compression verdict.

Reads a sweep's finished trials: ``runs`` (:func:`~ib_sweeps.analysis.tables.load_runs`,
one row per trial with its logged config params, ``estimators.<label>.*`` and
``model.activation``) and ``table`` (:func:`~ib_sweeps.analysis.stats.compression_table`,
one row per trial x layer x estimator; compression in bits). Three checks:

* ``clipped_range``: binning over a fixed ``range`` (``n_bins`` edges, no
  ``bin_size``) of hidden layers whose activation is unbounded (relu, elu,
  linear, softplus ...) or reaches outside the range; bounded ones are
  :data:`ib_sweeps.models.BOUNDED_RANGES`. Values beyond the range are lumped
  into the end bins, so activations that grow during training lose resolution
  and read as compression (the IDNNs code bins ``linspace(-1, 1, 30)``).
* ``linear_compression``: a hidden layer with the linear activation compresses
  in at least half its seeds. Saxe et al. (ICLR 2018) show that linear
  networks do not compress; they read such a drop as an artefact of the
  estimator (binning's resolution against growing weights).
* ``all_compress``: an estimator says the last hidden layer compresses in at
  least half the seeds of every condition (two or more conditions): it may
  not discriminate between them.

Each warning is a dict: ``code``, ``message`` (one sentence) and ``numbers``
(estimator, condition, layers, and per layer ``compress`` k/n seeds and
``mean_compression`` bits).
"""

from __future__ import annotations

import json
import math

from ib_sweeps.models import BOUNDED_RANGES

ACTIVATION = "model.activation"  # the logged param (or axis) of the hidden layers' activation
LINEAR = "linear"


def artefact_warnings(runs, table, order: list[str] | None = None) -> list[dict]:
    """Every warning of the three checks (module docstring), in order: clipped, linear, all compress.

    Within a check, estimators by name and conditions in ``order`` (default: by name).
    """
    if not len(table) or not len(runs):
        return []
    rank = {c: i for i, c in enumerate(order or [])}
    key = table["condition"].map(lambda c: (rank.get(c, len(rank)), c))
    table = table.assign(_order=key).sort_values(["estimator", "_order", "layer_index"], kind="stable")
    return clipped_range(runs, table) + linear_compression(runs, table) + all_compress(table)


def clipped_range(runs, table) -> list[dict]:
    """``clipped_range`` per (fixed-range binning estimator, condition) with hidden layers it may clip."""
    out = []
    hidden = _with_activation(runs, table)
    for (est, cond), g in hidden.groupby(["estimator", "condition"], sort=False):
        bins = _fixed_range(runs[runs["run_id"].isin(g["run_id"])], est)
        if bins is None:
            continue
        lo, hi = bins
        clipped = g[g["activation"].map(lambda a, lo=lo, hi=hi: _outside(a, lo, hi))]
        if not len(clipped):
            continue
        acts = sorted(set(clipped["activation"]))
        layers = _per_layer(clipped)
        out.append(_warning(
            "clipped_range",
            f"{est} bins over the fixed range [{lo:g}, {hi:g}], which does not bound the {', '.join(acts)} layers "
            f"of {cond} ({', '.join(layers)}): values beyond it fall into the end bins, so their compression "
            f"(mean {_span(layers)} bits) may be an artefact of clipping",
            est, cond, layers, range=[lo, hi], activations=acts,
        ))  # fmt: skip
    return out


def linear_compression(runs, table) -> list[dict]:
    """``linear_compression`` per (estimator, condition) whose linear hidden layers compress in >= half the seeds."""
    out = []
    hidden = _with_activation(runs, table)
    linear = hidden[hidden["activation"] == LINEAR]
    for (est, cond), g in linear.groupby(["estimator", "condition"], sort=False):
        layers = {k: v for k, v in _per_layer(g).items() if v["fraction"] >= 0.5}
        if not layers:
            continue
        out.append(_warning(
            "linear_compression",
            f"{est} finds compression in linear layers of {cond} ({_seeds(layers)}, mean {_span(layers)} bits): "
            "Saxe et al. (ICLR 2018) show linear networks do not compress and read this as an estimator artefact",
            est, cond, layers,
        ))  # fmt: skip
    return out


def all_compress(table) -> list[dict]:
    """``all_compress`` per estimator whose last hidden layer compresses in >= half the seeds of every condition."""
    out = []
    last = table[table["is_last_hidden"] & ~table["is_output"]]
    for est, g in last.groupby("estimator", sort=False):
        per_cond = {cond: _stats(c) for cond, c in g.groupby("condition", sort=False)}
        if len(per_cond) < 2 or any(v["fraction"] < 0.5 for v in per_cond.values()):
            continue
        out.append({
            "code": "all_compress",
            "message": f"{est} says the last hidden layer compresses in all {len(per_cond)} conditions "
            f"({_seeds(per_cond)}): it may not discriminate between them",
            "numbers": {"estimator": est, "conditions": per_cond},
        })  # fmt: skip
    return out


# -- helpers --------------------------------------------------------------------------------------------------


def _with_activation(runs, table):
    """Hidden-layer rows of ``table`` with their layer's ``activation`` (rows without a known one dropped)."""
    if ACTIVATION not in runs:
        return table.iloc[0:0].assign(activation=[])
    act = dict(zip(runs["run_id"], runs[ACTIVATION], strict=True))
    rows = table[~table["is_output"]]
    names = [_layer_activation(act.get(r), int(i)) for r, i in zip(rows["run_id"], rows["layer_index"], strict=True)]
    rows = rows.assign(activation=names)
    return rows[rows["activation"].notna()]


def _layer_activation(value, index: int) -> str | None:
    """The activation of hidden layer ``index`` (1-based) from ``model.activation``: a name or a list of them."""
    if isinstance(value, str) and value.startswith("["):
        value = json.loads(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and 0 < index <= len(value):
        return str(value[index - 1])
    return None


def _fixed_range(runs, est: str) -> tuple[float, float] | None:
    """(lo, hi) when every trial of ``runs`` ran ``est`` as binning over a fixed range, else None."""
    keys = [f"estimators.{est}.{k}" for k in ("method", "range", "bin_size")]
    if not all(k in runs for k in keys) or not len(runs):
        return None
    ranges = set()
    for method, bins, size in zip(*(runs[k] for k in keys), strict=True):
        if method != "binning" or _given(size) or not _given(bins):
            return None
        ranges.add(tuple(float(x) for x in json.loads(bins)))
    return ranges.pop() if len(ranges) == 1 else None


def _given(value) -> bool:
    return value is not None and value != "null" and not (isinstance(value, float) and math.isnan(value))


def _outside(activation: str, lo: float, hi: float) -> bool:
    bounded = BOUNDED_RANGES.get(activation)
    return bounded is None or bounded[0] < lo or bounded[1] > hi


def _stats(g) -> dict:
    k, n = int(g["compresses"].sum()), len(g)
    return {"compress": f"{k}/{n}", "fraction": k / n if n else math.nan,
            "mean_compression": float(g["compression"].mean())}  # fmt: skip


def _per_layer(g) -> dict:
    return {
        layer: _stats(rows) for layer, rows in g.sort_values("layer_index", kind="stable").groupby("layer", sort=False)
    }


def _seeds(per: dict) -> str:
    return ", ".join(f"{k} {v['compress']} seeds" for k, v in per.items())


def _span(per: dict) -> str:
    means = [v["mean_compression"] for v in per.values()]
    lo, hi = min(means), max(means)
    return f"{lo:.2f}" if math.isclose(lo, hi, abs_tol=0.005) else f"{lo:.2f}-{hi:.2f}"


def _warning(code: str, message: str, est: str, cond: str, layers: dict, **numbers) -> dict:
    return {"code": code, "message": message,
            "numbers": {"estimator": est, "condition": cond, **numbers, "layers": layers}}  # fmt: skip
