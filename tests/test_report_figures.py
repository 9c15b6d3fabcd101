"""The report's figures (ib_sweeps/analysis/figures.py) draw the pixels of the plain pyplot code they replaced.

The reference below is that code (commit 19182eb): pyplot figures, one pandas
filter per panel and series, one scatter per curve, saved with ``savefig``.
The figures now are drawn on plot_render's canvas, grouped once, one scatter
per panel, laid out and drawn once (:func:`figures.png`). Same tolerance as
tests/test_plots.py: at most 1 of 255 in at most 10 pixels. Information in bits.
"""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ib_sweeps import records
from ib_sweeps.analysis import compression_table, figures
from ib_sweeps.analysis import synthetic as syn
from ib_sweeps.analysis.intervals import t_mean
from ib_sweeps.analysis.stats import layer_mask
from ib_sweeps.plots import epoch_norm, style

ORDER = ["activation=tanh", "activation=relu", "activation=linear"]  # "activation=elu" is not named: drawn last


def _trace() -> pd.DataFrame:
    """4 conditions x 3 seeds x 3 layers (the last the output) x 2 estimators, 40 log-spaced epochs.

    Rows ordered by epoch, so every curve's rows are interleaved with the others' (grouping must keep the
    order of appearance). Gradient SNR is missing for ``linear`` (no twin axis there).
    """
    epochs = np.r_[0, np.unique(np.geomspace(1, 3000, 45).astype(int))][:40]
    rng = np.random.default_rng(0)
    frames = []
    for c, act in enumerate(["relu", "tanh", "elu", "linear"]):
        for seed in range(3):
            run = f"run-{act}-{seed}"
            loss = syn.kinked(epochs, 200 + 100 * c, -0.4, -0.05) * (1 + 0.02 * rng.random(len(epochs)))
            snr = np.full(len(epochs), np.nan) if act == "linear" else 30 / np.sqrt(epochs + 1)
            for est in ("binning", "kde"):
                for j in (1, 2, 3):
                    ixt = syn.rise_fall(epochs, 300, 9 - j, 4 + c - j) + 0.1 * rng.standard_normal(len(epochs))
                    frames.append(pd.DataFrame({
                        "run_id": run, "condition": f"activation={act}", "seed": seed, "estimator": est,
                        "layer": f"layer_{j}", "epoch": epochs, "ixt": ixt,
                        "iyt": syn.rise_fall(epochs, 100, 0.9 - 0.1 * j, 0.95 - 0.1 * j), "layer_index": j,
                        "n_layers": 3, records.LOSS_TRAIN: loss, records.grad_column("snr"): snr,
                    }))  # fmt: skip
    return pd.concat(frames, ignore_index=True).sort_values("epoch", kind="stable", ignore_index=True)


@pytest.fixture(scope="module")
def data():
    trace = _trace()
    return trace, compression_table(trace)


def _decoded(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), int)


def _plain_png(fig, dpi) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    figures._plt().close(fig)
    return buf.getvalue()


CASES = {
    "compression_by_condition": lambda m, t, tab: m.compression_by_condition(tab, ["binning", "kde"], order=ORDER),
    "plane_grid": lambda m, t, tab: m.plane_grid(t, "binning", ORDER),
    "information_vs_epoch": lambda m, t, tab: m.information_vs_epoch(t, "kde", ORDER),
    "timing": lambda m, t, tab: m.timing(t, tab, "binning", order=ORDER),
}


@pytest.mark.parametrize(("name", "dpi"), [*((name, 90) for name in CASES), ("plane_grid", 72)])
def test_report_figures_draw_the_pixels_of_the_plain_pyplot_code(data, name, dpi):
    """At 90 dpi as the report draws them (figures.png); the paper table saves the planes at 72 with savefig."""
    trace, table = data
    plain = _plain_png(CASES[name](PLAIN, trace, table), dpi)
    fig = CASES[name](figures, trace, table)
    ours = figures.png(fig, dpi) if dpi == 90 else _saved(fig, dpi)
    a, b = _decoded(plain), _decoded(ours)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    diff = np.abs(a - b)
    assert diff.max() <= 1 and np.count_nonzero(diff.max(axis=-1)) <= 10, (name, diff.max())


def _saved(fig, dpi) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # as paper_table does: savefig on a figure of figures.py
    return buf.getvalue()


def test_png_is_a_png_of_the_figure_at_that_dpi(data):
    _, table = data
    fig = figures.compression_by_condition(table, ["binning"], order=ORDER)
    with Image.open(io.BytesIO(figures.png(fig, 90))) as im:
        w, h = fig.get_size_inches()
        assert im.size == (round(w * 90), round(h * 90)) and im.mode == "RGBA"
        assert im.info["dpi"] == pytest.approx((90, 90), abs=0.01)


# -- the reference: analysis/figures.py at 19182eb, as it was (pyplot, pandas filters, one scatter per curve) --

MAX_PANELS = 12
_SNR = records.grad_column("snr")


def _grid(n: int, width: float = 3.4, height: float = 2.9, cols: int = 4):
    plt = figures._plt()
    cols = min(cols, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _conditions(frame, order=None) -> list[str]:
    present = dict.fromkeys(frame["condition"])
    return [c for c in (order or ()) if c in present] + [c for c in present if c not in set(order or ())]


def _top(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) and v.max() > 0 else 1.0


def plane_grid(trace, estimator: str, order=None):
    sub = trace[trace["estimator"] == estimator]
    conds = _conditions(sub, order)[:MAX_PANELS]
    fig, axes = _grid(len(conds))
    norm = epoch_norm(sub["epoch"].to_numpy())
    xmax, ymax = _top(sub["ixt"]), _top(sub["iyt"])
    sc = None
    for ax, cond in zip(axes, conds, strict=False):
        c = sub[sub["condition"] == cond]
        for (_, _), g in c.groupby(["run_id", "layer"], sort=False):
            ax.plot(g["ixt"], g["iyt"], color="0.8", lw=0.6, zorder=1)
            sc = ax.scatter(g["ixt"], g["iyt"], c=g["epoch"] + 1, cmap="viridis", norm=norm, s=5, zorder=2)
        ax.set_title(f"{cond} ({c['seed'].nunique()} seeds)", fontsize=9)
        ax.set_xlim(0, xmax * 1.05)
        ax.set_ylim(0, ymax * 1.05)
        ax.set_xlabel("I(X;T) [bits]", fontsize=8)
        ax.set_ylabel("I(Y;T) [bits]", fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=axes[: len(conds)], label="epoch + 1 (log scale)", shrink=0.8)
    fig.suptitle(f"Information planes by condition ({estimator}); one curve per layer and seed")
    return fig


def compression_by_condition(table, estimators: list[str], layer: str = "last_hidden", order=None):
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
                yerr = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None
                ax.errorbar(i + 0.3, mean, yerr=yerr, fmt="s", color="k", capsize=3, zorder=3)
        ax.set_xticks(range(len(conds)), conds, rotation=30, ha="right", fontsize=8)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylabel("compression = peak - final I(X;T) [bits]", fontsize=8)
        ax.set_title(f"{layer}, {est}", fontsize=9)
    fig.suptitle("Compression by condition\n(dots: seeds; squares: mean, t 95 % CI)", fontsize=10)
    return fig


def information_vs_epoch(trace, estimator: str, order=None):
    plt = figures._plt()
    sub = trace[trace["estimator"] == estimator]
    layers = sorted(sub["layer"].unique(), key=lambda s: int(s.rsplit("_", 1)[-1]))[:8]
    conds = _conditions(sub, order)[:10]
    every = _conditions(trace, order)
    fig, axes = plt.subplots(2, max(len(layers), 1), figsize=(2.8 * max(len(layers), 1), 5.2), squeeze=False,
                             constrained_layout=True, sharex=True)  # fmt: skip
    for j, layer in enumerate(layers):
        for cond in conds:
            c = sub[(sub["layer"] == layer) & (sub["condition"] == cond)]
            for n, (_, g) in enumerate(c.groupby("run_id", sort=False)):
                for row, q in enumerate(("ixt", "iyt")):
                    st = style(every.index(cond))
                    axes[row, j].plot(g["epoch"] + 1, g[q], color=st["color"], ls=st["linestyle"], lw=0.9, alpha=0.8,
                                      label=cond if (n == 0 and row == 0 and j == 0) else None)  # fmt: skip
        axes[0, j].set_title(layer, fontsize=9)
        axes[1, j].set_xscale("log")
        axes[1, j].set_xlabel("epoch + 1", fontsize=8)
    axes[0, 0].set_ylabel("I(X;T) [bits]")
    axes[1, 0].set_ylabel("I(Y;T) [bits]")
    if conds:
        rows = math.ceil(len(conds) / 5)
        fig.legend(loc="outside lower center", ncol=math.ceil(len(conds) / rows), fontsize=8)
    fig.suptitle(f"Information against epoch ({estimator}); one line per seed")
    return fig


def timing(trace, table, estimator: str, layer: str = "last_hidden", order=None):
    sub = trace[(trace["estimator"] == estimator)]
    rows = table[(table["estimator"] == estimator) & layer_mask(table, layer)]
    conds = _conditions(rows, order)[:MAX_PANELS]
    fig, axes = _grid(len(conds), width=3.8, height=3.0, cols=3)
    marks = (("onset_epoch", "compression onset", "C3"), ("loss_kink_epoch", "loss kink", "C0"),
             ("snr_drop_epoch", "SNR drop", "C2"))  # fmt: skip
    for ax, cond in zip(axes, conds, strict=False):
        r = rows[rows["condition"] == cond]
        for run_id in r["run_id"]:
            g = sub[(sub["run_id"] == run_id) & (sub["layer"] == r.loc[r["run_id"] == run_id, "layer"].iloc[0])]
            ax.plot(g["epoch"] + 1, g[records.LOSS_TRAIN], color="C0", lw=0.8, alpha=0.6)
            if g[_SNR].notna().any():
                twin = getattr(ax, "_snr_twin", None) or ax.twinx()
                ax._snr_twin = twin
                twin.plot(g["epoch"] + 1, g[_SNR], color="C2", lw=0.8, alpha=0.6)
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


PLAIN = SimpleNamespace(plane_grid=plane_grid, compression_by_condition=compression_by_condition,
                        information_vs_epoch=information_vs_epoch, timing=timing)  # fmt: skip
