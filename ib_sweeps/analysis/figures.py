"""Figures of a sweep, drawn from the tidy tables (matplotlib, Agg). Information in bits.

* :func:`plane_grid`: one information plane per condition, seeds overlaid, colour = epoch;
* :func:`compression_by_condition`: per-seed compression and the mean with a t 95 % interval;
* :func:`information_vs_epoch`: I(X;T) and I(Y;T) against epoch, one column per layer;
* :func:`timing`: training loss and gradient SNR against epoch with the compression onset,
  loss kink and SNR drop marked (the stochastic-gradient phase hypothesis).

Each figure is a :class:`~matplotlib.figure.Figure` on the Agg canvas of
:func:`ib_sweeps.plot_render.canvas_class` (kept glyph layouts and bitmaps,
one mathtext parser a process), without pyplot; :func:`png` draws it once,
laid out once (``savefig`` lays out in a draw of its own first). The pixels
and PNG bytes are those of pyplot figures saved with ``savefig``
(tests/test_report_figures.py). Series are grouped with one ``groupby`` per
figure, and each plane panel's points are one scatter (drawn in the order the
per-curve scatters drew them).

Every figure takes ``order``: the conditions in the order to draw them (the
report passes the sweep file's axis-value order, so tables, panels and legends
agree); conditions it does not name follow in order of appearance. A condition
keeps its colour, marker and line style (:func:`ib_sweeps.plots.style`,
Okabe-Ito) in every figure.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ib_sweeps import records
from ib_sweeps.analysis.intervals import t_mean
from ib_sweeps.analysis.stats import layer_mask
from ib_sweeps.plot_render import canvas_class
from ib_sweeps.plots import epoch_norm, style

MAX_PANELS = 12
_SNR = records.grad_column("snr")  # the trace's column of each layer's gradient SNR


def _plt():
    """pyplot on the Agg backend (for callers that close figures through it; the figures here do not need it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig, dpi: float = 90) -> bytes:
    """``fig`` as PNG bytes at ``dpi``: those of ``fig.savefig(buf, format="png", dpi=dpi)``, drawn once.

    ``savefig`` first draws a constrained-layout figure without output to lay
    it out, then again to the canvas; here the one draw lays it out
    (Figure.draw runs the layout engine first). Changes ``fig``'s DPI.
    """
    fig.set_dpi(dpi)
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    return buf.getvalue()


def _figure(rows: int, cols: int, width: float, height: float, **subplots):
    """A ``width`` x ``height`` inch constrained-layout Figure on a :func:`canvas_class` canvas; axes (rows, cols)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    canvas_class()(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, **subplots)


def _grid(n: int, width: float = 3.4, height: float = 2.9, cols: int = 4):
    cols = min(cols, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = _figure(rows, cols, width * cols, height * rows)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _groups(frame, keys) -> list[np.ndarray]:
    """Row positions of each group of ``frame`` by ``keys``, as ``frame.groupby(keys, sort=False)`` gives them.

    Groups in order of first appearance, rows in frame order; rows with a missing key in no group.
    """
    codes = frame.groupby(keys, sort=False).ngroup().to_numpy()  # -1: a missing key
    rows = np.argsort(codes, kind="stable")
    rows = rows[codes[rows] >= 0]
    return np.split(rows, np.flatnonzero(np.diff(codes[rows])) + 1) if len(rows) else []


def _conditions(frame, order=None) -> list[str]:
    """Conditions present in ``frame``: those in ``order`` first, in that order, then the rest as they appear."""
    present = dict.fromkeys(frame["condition"].unique())  # in order of appearance, without 10^5 Python strings
    return [c for c in (order or ()) if c in present] + [c for c in present if c not in set(order or ())]


def plane_grid(trace, estimator: str, order=None):
    """Information planes, one panel per condition (first 12), every seed and layer; colour = epoch (log)."""
    sub = trace[trace["estimator"] == estimator]
    conds = _conditions(sub, order)[:MAX_PANELS]
    fig, axes = _grid(len(conds))
    norm = epoch_norm(sub["epoch"].to_numpy())
    xmax, ymax = _top(sub["ixt"]), _top(sub["iyt"])
    sc = None
    for ax, cond in zip(axes, conds, strict=False):
        c = sub[sub["condition"] == cond]
        x, y, colour = c["ixt"].to_numpy(float), c["iyt"].to_numpy(float), c["epoch"].to_numpy() + 1
        curves = _groups(c, ["run_id", "layer"])
        for rows in curves:  # a line each: one path would blend the antialiased edges where curves cross otherwise
            ax.plot(x[rows], y[rows], color="0.8", lw=0.6, zorder=1)
        if curves:  # one collection: its points drawn in the order one scatter per curve drew them
            rows = np.concatenate(curves)
            sc = ax.scatter(x[rows], y[rows], c=colour[rows], cmap="viridis", norm=norm, s=5, zorder=2)
        ax.set_title(f"{cond} ({c['seed'].nunique()} seeds)", fontsize=9)
        ax.set_xlim(0, xmax * 1.05)
        ax.set_ylim(0, ymax * 1.05)
        ax.set_xlabel("I(X;T) [bits]", fontsize=8)
        ax.set_ylabel("I(Y;T) [bits]", fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=axes[: len(conds)], label="epoch + 1 (log scale)", shrink=0.8)
    fig.suptitle(f"Information planes by condition ({estimator}); one curve per layer and seed")
    return fig


def _top(values) -> float:
    """Largest finite value, or 1 when there is none (an axis limit)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) and v.max() > 0 else 1.0


def compression_by_condition(table, estimators: list[str], layer: str = "last_hidden", order=None):
    """Compression (bits) of one layer per condition: seeds as dots, mean and t 95 % CI as a bar."""
    fig, axes = _grid(len(estimators), width=max(6.0, 0.9 * table["condition"].nunique() + 2), height=3.6, cols=2)
    every = _conditions(table, order)
    for ax, est in zip(axes, estimators, strict=False):
        sub = table[(table["estimator"] == est) & layer_mask(table, layer)]
        conds = _conditions(sub, every)
        for i, cond in enumerate(conds):
            vals = sub.loc[sub["condition"] == cond, "compression"].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(vals))
            st = style(every.index(cond))
            ax.scatter(i + jitter, vals, s=16, color=st["color"], marker=st["marker"], alpha=0.8, zorder=2)
            mean, lo, hi = t_mean(vals)
            if np.isfinite(mean):
                yerr = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None  # one seed: no interval
                ax.errorbar(i + 0.3, mean, yerr=yerr, fmt="s", color="k", capsize=3, zorder=3)
        ax.set_xticks(range(len(conds)), conds, rotation=30, ha="right", fontsize=8)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylabel("compression = peak - final I(X;T) [bits]", fontsize=8)
        ax.set_title(f"{layer}, {est}", fontsize=9)
    fig.suptitle("Compression by condition\n(dots: seeds; squares: mean, t 95 % CI)", fontsize=10)
    return fig


def information_vs_epoch(trace, estimator: str, order=None):
    """I(X;T) (top) and I(Y;T) (bottom) against epoch, one column per layer; one colour and line style per condition."""
    sub = trace[trace["estimator"] == estimator]
    layers = sorted(sub["layer"].unique(), key=lambda s: int(s.rsplit("_", 1)[-1]))[:8]
    conds = _conditions(sub, order)[:10]
    every = _conditions(trace, order)  # a condition's style does not depend on which others are drawn
    fig, axes = _figure(2, max(len(layers), 1), 2.8 * max(len(layers), 1), 5.2, sharex=True)
    runs: dict = {}  # (layer, condition) -> row positions of each run, in order of appearance
    layer_of, cond_of = sub["layer"].to_numpy(), sub["condition"].to_numpy()
    for rows in _groups(sub, ["layer", "condition", "run_id"]):
        runs.setdefault((layer_of[rows[0]], cond_of[rows[0]]), []).append(rows)
    epoch = sub["epoch"].to_numpy() + 1
    values = sub["ixt"].to_numpy(float), sub["iyt"].to_numpy(float)
    for j, layer in enumerate(layers):
        for cond in conds:
            st = style(every.index(cond))
            for n, rows in enumerate(runs.get((layer, cond), [])):
                for row, v in enumerate(values):
                    axes[row, j].plot(epoch[rows], v[rows], color=st["color"], ls=st["linestyle"], lw=0.9, alpha=0.8,
                                      label=cond if (n == 0 and row == 0 and j == 0) else None)  # fmt: skip
        axes[0, j].set_title(layer, fontsize=9)
        axes[1, j].set_xscale("log")
        axes[1, j].set_xlabel("epoch + 1", fontsize=8)
    axes[0, 0].set_ylabel("I(X;T) [bits]")
    axes[1, 0].set_ylabel("I(Y;T) [bits]")
    if conds:
        rows = math.ceil(len(conds) / 5)  # balanced columns, read top to bottom, left to right
        fig.legend(loc="outside lower center", ncol=math.ceil(len(conds) / rows), fontsize=8)
    fig.suptitle(f"Information against epoch ({estimator}); one line per seed")
    return fig


def timing(trace, table, estimator: str, layer: str = "last_hidden", order=None):
    """Per condition: training loss and gradient SNR (log-log) with onset, loss kink and SNR drop (medians)."""
    sub = trace[(trace["estimator"] == estimator)]
    rows = table[(table["estimator"] == estimator) & layer_mask(table, layer)]
    conds = _conditions(rows, order)[:MAX_PANELS]
    fig, axes = _grid(len(conds), width=3.8, height=3.0, cols=3)
    marks = (("onset_epoch", "compression onset", "C3"), ("loss_kink_epoch", "loss kink", "C0"),
             ("snr_drop_epoch", "SNR drop", "C2"))  # fmt: skip
    curves = {}  # (run id, layer) -> row positions of sub
    run_of, layer_of = sub["run_id"].to_numpy(), sub["layer"].to_numpy()
    for positions in _groups(sub, ["run_id", "layer"]):
        curves[run_of[positions[0]], layer_of[positions[0]]] = positions
    empty = np.zeros(0, int)
    epoch = sub["epoch"].to_numpy() + 1
    loss, snr = sub[records.LOSS_TRAIN].to_numpy(float), sub[_SNR].to_numpy(float)
    for ax, cond in zip(axes, conds, strict=False):
        r = rows[rows["condition"] == cond]
        run_layer = {}  # a run's layer: that of its first row here
        for run_id, name in zip(r["run_id"], r["layer"], strict=True):
            run_layer.setdefault(run_id, name)
        for run_id in r["run_id"]:
            g = curves.get((run_id, run_layer[run_id]), empty)
            ax.plot(epoch[g], loss[g], color="C0", lw=0.8, alpha=0.6)
            if not np.isnan(snr[g]).all():
                twin = getattr(ax, "_snr_twin", None) or ax.twinx()
                ax._snr_twin = twin
                twin.plot(epoch[g], snr[g], color="C2", lw=0.8, alpha=0.6)
                twin.set_yscale("log")
                twin.set_ylabel("gradient SNR", color="C2", fontsize=8)
        for col, label, colour in marks:
            med = r[col].median()
            if np.isfinite(med):
                ax.axvline(med + 1, color=colour, ls="--", lw=1, label=f"{label} (median {med:.0f})")
        ax.set_xscale("log")
        if ax.lines and np.nanmax([np.nanmax(np.r_[line.get_ydata(), -1.0]) for line in ax.lines]) > 0:
            ax.set_yscale("log")
        ax.set_title(cond, fontsize=9)
        ax.set_xlabel("epoch + 1", fontsize=8)
        ax.set_ylabel("training loss", color="C0", fontsize=8)
        ax.legend(fontsize=6, loc="lower left")
    fig.suptitle(f"Phase timing of {layer} ({estimator}): loss, gradient SNR and compression onset")
    return fig
