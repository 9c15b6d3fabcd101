"""Figures of a trial, drawn from its :class:`~ib_sweeps.trace.Trace` (matplotlib, Agg).

Each figure is a frame (figure, axes, scales, fixed bounds, axis labels) and
the data drawn into it. :func:`save_all` keeps its frames between calls (a few
per process, keyed by what shapes them) and removes the data again after each
save: building a frame's log-axis ticks was most of a figure's cost, and a
process saves the figures of many trials (trial arrays, Ray workers). A reused
frame gives the same pixels as a new one (tests/test_plots.py).

What else recurs from trial to trial is kept too, each with the pixels
matplotlib draws (to 1 of 255 in a few pixels): every axis as an image, by its
view and place (:class:`~ib_sweeps.plot_render.KeptAxis`); a legend whose entries recur
(:func:`_legend`); glyph layouts and bitmaps in the renderer
(:mod:`ib_sweeps.plot_render`). Files are written by :func:`~ib_sweeps.plot_render.write_png`.

Also the colour-blind-safe styles shared with the sweep report (:func:`style`):
Okabe & Ito's eight colours, each paired with its own marker and line style, so
series stay apart in grey print and for every common colour-vision deficiency.
"""

from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

from ib_sweeps import records
from ib_sweeps.plot_render import canvas_class, keep_axes, leader, write_png

_LOSSES = (records.LOSS_TRAIN, records.LOSS_TEST)

# Okabe & Ito (2008), "Color Universal Design"; yellow last, as it is faint on white.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (8, 2, 2, 2)))
DPI = 110
PNG_COMPRESSION = 1  # zlib level (write_png): half the encoding time of the default 6, files ~15 % larger
LABEL_GAP = 0.05  # least vertical distance between two layer labels, as a fraction of the axes height


def style(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th series (distinct for the first 8, then repeating)."""
    n = len(OKABE_ITO)
    return {"color": OKABE_ITO[i % n], "marker": MARKERS[i % n], "linestyle": LINESTYLES[i % n]}


def epoch_norm(epochs):
    """Logarithmic colour scale for ``epochs + 1`` (so epoch 0 is drawn, at 1): log-spaced schedules spread out."""
    from matplotlib.colors import LogNorm

    top = float(np.max(epochs)) + 1 if len(epochs) else 2.0
    return LogNorm(1.0, max(top, 2.0))


def spread_labels(ax, points, names, gap: float = LABEL_GAP) -> list:
    """Label ``points`` (data coordinates, linear axes with limits set) without overlaps.

    Labels sit right of their point (left of it near the right edge), moved
    apart vertically to at least ``gap`` of the axes height, with a leader line
    to the point. Returns the text artists.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    frac = [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in points]
    order = sorted(range(len(frac)), key=lambda i: frac[i][1])
    ys: dict[int, float] = {}
    last = -np.inf
    for i in order:
        ys[i] = last = max(frac[i][1], last + gap)
    shift = max(0.0, last - 0.97)  # keep the top label inside the axes
    texts = []
    for i, name in enumerate(names):
        fx, fy = frac[i]
        right = fx > 0.8
        texts.append(
            ax.annotate(
                name,
                (fx, fy),
                xytext=(fx + (-0.06 if right else 0.06), ys[i] - shift),
                xycoords="axes fraction",
                textcoords="axes fraction",
                ha="right" if right else "left",
                va="center",
                fontsize=8,
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6, "connectionstyle": leader},
            )
        )
    return texts


def _figure(width: float, height: float, ncols: int = 1, *, left=0.75, right=0.2, bottom=0.55, top=0.4, gap=0.8):
    """A ``width`` x ``height`` inch Figure on its own Agg canvas, ``ncols`` axes in a row, fixed margins in inches.

    Fixed margins instead of constrained layout, which measured every tick label
    of every axis again at each save (more than half of :func:`save_all`'s time);
    ``gap`` is the space between two axes, room for the right one's y label.
    No pyplot: no global figure registry to close figures in.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    canvas_class()(fig)
    axes = fig.subplots(1, ncols)
    keep_axes(fig)
    axes_width = (width - left - right - (ncols - 1) * gap) / ncols
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap / axes_width)  # fmt: skip
    return fig, axes


def _legend(ax, **kwargs) -> list:
    """``ax.legend(**kwargs)``, kept in the frame for the next trace where that one's would look the same.

    A new legend lays out its entries anew (a quarter of the time to add a
    figure's data). One of lines only whose entries the next trace's equal
    (labels, colours, line styles, widths, markers, in order) is kept, and
    finds its best place among that trace's data when drawn. Returns what to
    remove after the save: a legend that is not kept, else nothing.
    """
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    look = None
    if all(isinstance(h, Line2D) for h in handles):
        styles = [(h.get_color(), h.get_linestyle(), h.get_linewidth(), h.get_marker(), h.get_markersize(),
                   h.get_alpha()) for h in handles]  # fmt: skip
        look = (labels, sorted(kwargs.items()), styles)
    kept = ax.get_legend()
    if kept is not None and look is not None and getattr(kept, "_ib_look", None) == look:
        return []
    if kept is not None:
        kept.remove()
    legend = ax.legend(handles, labels, **kwargs)
    legend._ib_look = look
    return [] if look is not None else [legend]


def _forget(ax) -> None:
    """Start ``ax`` afresh for new data: data limits from the frame's own lines only, colour cycle from the start.

    The view is first set to one fixed range (autoscaling stays on): a bound line (``axhline``) enters the
    data limits through the current view, so after another trace its limit could differ in the last bit,
    and an axes edge on a half pixel be drawn one pixel off.
    """
    ax.set_xlim(1, 10, auto=None)
    ax.set_ylim(1, 10, auto=None)
    ax.relim()
    ax.set_prop_cycle(None)


def information_plane(trace, estimator: int = 0):
    """I(Y;T) against I(X;T), one curve per layer, points coloured by epoch on a log scale (bits).

    Axes are bounded by H(X) and H(Y) of the measured inputs (dashed lines).
    Each layer has its own marker and a label at its last point, moved clear
    of the others (:func:`spread_labels`).
    """
    fig = _plane_frame(*_plane_key(trace))
    _plane_data(fig, trace, estimator)
    return fig


def _plane_key(trace) -> tuple:
    return float(trace.h_x), float(trace.h_y), int(np.max(trace.epochs, initial=0))


def _plane_frame(h_x: float, h_y: float, last_epoch: int):
    """The information plane without data: limits, bounds H(X) and H(Y), axis labels, colour bar of the epochs."""
    from matplotlib.cm import ScalarMappable

    fig, ax = _figure(7, 5, right=0.1)
    ax.axvline(h_x, ls="--", color="0.5", lw=0.8, zorder=2.5)  # over the points
    ax.axhline(h_y, ls="--", color="0.5", lw=0.8, zorder=2.5)
    ax.set_xlim(0, h_x * 1.03)
    ax.set_ylim(0, h_y * 1.05)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(Y;T) [bits]")
    fig.colorbar(ScalarMappable(epoch_norm([last_epoch]), "viridis"), ax=ax, label="epoch + 1 (log scale)")
    keep_axes(fig)  # the colour bar's
    return fig


def _plane_data(fig, trace, estimator: int) -> list:
    """Draw one estimator's curves, points and layer labels into a :func:`_plane_frame`; return what was drawn."""
    ax = fig.axes[0]
    epochs = np.asarray(trace.epochs)
    ixt, iyt = np.stack(trace.ixt)[:, estimator], np.stack(trace.iyt)[:, estimator]
    norm = epoch_norm(epochs)
    drawn: list = []
    for j in range(len(trace.layers)):
        drawn += ax.plot(ixt[:, j], iyt[:, j], color="0.75", lw=0.8, zorder=1)
        drawn.append(ax.scatter(ixt[:, j], iyt[:, j], c=epochs + 1, cmap="viridis", norm=norm, s=14, zorder=2,
                                marker=MARKERS[j % len(MARKERS)], linewidths=0))  # fmt: skip
    last = [np.flatnonzero(np.isfinite(ixt[:, j]) & np.isfinite(iyt[:, j])) for j in range(len(trace.layers))]
    labelled = [j for j in range(len(trace.layers)) if len(last[j])]  # a layer with no finite point has no label
    points = [(ixt[last[j][-1], j], iyt[last[j][-1], j]) for j in labelled]
    drawn += spread_labels(ax, points, [trace.layers[j] for j in labelled])
    ax.set_title(f"Information plane ({trace.estimators[estimator]}); labels at the last epoch")
    return drawn


def information_vs_epoch(trace, estimator: int = 0):
    """I(X;T) and I(Y;T) in bits against epoch (log axis), one line per layer."""
    fig = _epoch_frame(*_epoch_key(trace))
    _epoch_data(fig, trace, estimator)
    return fig


def _epoch_key(trace) -> tuple:
    return float(trace.h_x), float(trace.h_y)


def _epoch_frame(h_x: float, h_y: float):
    """Information against epoch without data: log epoch axes, bounds H(X) and H(Y), axis labels."""
    fig, axes = _figure(11, 4, 2)
    for ax, label, bound in ((axes[0], "I(X;T) [bits]", h_x), (axes[1], "I(Y;T) [bits]", h_y)):
        ax.axhline(bound, ls="--", color="0.5", lw=0.8, zorder=2.5)  # over the curves
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    return fig


def _epoch_data(fig, trace, estimator: int) -> list:
    """Draw one estimator's curves and legend into an :func:`_epoch_frame`; return what was drawn."""
    epochs = np.maximum(np.asarray(trace.epochs), 0.5)  # epoch 0 drawn at 0.5 on the log axis
    back = np.asarray(trace.reasons) == "backtracked"
    drawn: list = []
    for ax, values in zip(
        fig.axes, (np.stack(trace.ixt)[:, estimator], np.stack(trace.iyt)[:, estimator]), strict=True
    ):
        _forget(ax)
        for j, name in enumerate(trace.layers):
            st = style(j)
            drawn += ax.plot(epochs, values[:, j], label=name, lw=1.2, color=st["color"], linestyle=st["linestyle"])
            if back.any():
                drawn += ax.plot(epochs[back], values[back, j], "x", ms=3, color=st["color"])
    drawn += _legend(fig.axes[1], fontsize=8)
    note = "; x: backtracked epochs" if "backtracked" in trace.reasons else ""
    fig.suptitle(f"Information vs epoch ({trace.estimators[estimator]}){note}")
    return drawn


def learning_curves(trace):
    """Per-epoch train/test loss (log scale) and accuracy."""
    fig = _curves_frame()
    _curves_data(fig, trace)
    return fig


def _curves_frame():
    fig, (ax_loss, ax_acc) = _figure(11, 4, 2, top=0.2)
    ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
    return fig


def _curves_data(fig, trace) -> list:
    ax_loss, ax_acc = fig.axes
    h = np.asarray(trace.history)
    epochs = np.arange(len(h))
    drawn: list = []
    for ax in (ax_loss, ax_acc):
        _forget(ax)
    for i, key in enumerate(trace.history_keys):
        drawn += (ax_loss if key in _LOSSES else ax_acc).plot(epochs, h[:, i], label=key, lw=1)
    return drawn + _legend(ax_loss, fontsize=8) + _legend(ax_acc, fontsize=8)


def _log_binned(epochs, values, n_bins: int = 60):
    """Positive ``values`` (n, k) in log-spaced epoch bins: bin centres (b,), geometric means, 10th, 90th percentiles.

    ``epochs`` (n,) increasing. Values not finite or not positive are left
    out; where none is left in a bin, that column's statistics are NaN. Bins
    without epochs are dropped. The statistics are (b, k) arrays.
    """
    edges = np.unique(np.geomspace(1, epochs.max() + 1, n_bins + 1).astype(int))
    starts = np.searchsorted(epochs, edges)  # epochs increase: bin b holds rows starts[b]:starts[b + 1]
    full = np.flatnonzero(np.diff(starts))
    v = np.where(np.isfinite(values) & (values > 0), values, np.nan).astype(np.float64)
    blocks = [v[starts[b] : starts[b + 1]] for b in full]
    with warnings.catch_warnings():  # a column with no positive value in a bin: NaN there, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.exp(np.reshape([np.nanmean(np.log(block), axis=0) for block in blocks], (len(full), v.shape[1])))
        pct = np.reshape([_percentiles(block, [10, 90]) for block in blocks], (len(full), 2, v.shape[1]))
    return np.sqrt(edges[full] * edges[full + 1]), mean, pct[:, 0], pct[:, 1]


def _percentiles(block, q):
    """``np.nanpercentile(block, q, axis=0)``; ``np.percentile`` where nothing is NaN (many times faster)."""
    return np.nanpercentile(block, q, axis=0) if np.isnan(block).any() else np.percentile(block, q, axis=0)


def gradients(trace):
    """Per-layer minibatch-gradient mean and std norms, their SNR, and the loss, against epoch (log-log).

    As Shwartz-Ziv & Tishby (2017) Fig. 4. Every epoch's values are summarised
    in log-spaced epoch bins: the geometric mean as a line (mean norm solid,
    std norm dashed), the 10th-90th percentile of the SNR as a band.
    """
    binned = _binned_gradients(trace)
    fig = _gradients_frame(*_gradients_key(trace, binned))
    _gradients_data(fig, trace, binned)
    return fig


def _binned_gradients(trace):
    """Bin centres (b,) and the geometric mean, 10th and 90th percentile (b, n_layers, 3) of every series."""
    g = np.asarray(trace.grad)[1:]  # epoch 0 trained on no batch
    x, *stats = _log_binned(np.arange(1, len(g) + 1), g.reshape(len(g), -1))
    return x, *(a.reshape(len(x), *g.shape[1:]) for a in stats)


def _gradients_key(trace, binned) -> tuple[bool, bool, bool]:
    """Which panels (norms, SNR, loss) have data: only those get log scales (an empty one has no log scale)."""
    mean = binned[1]
    loss = len(trace.history) > 1 and any(key in _LOSSES for key in trace.history_keys)
    return bool(np.isfinite(mean[..., :2]).any()), bool(np.isfinite(mean[..., 2]).any()), loss


def _gradients_frame(norms: bool, snr: bool, loss: bool):
    fig, axes = _figure(15, 4.2, 3, left=0.95, gap=1.15)  # room for minor log labels (6×10⁻¹) and an axis label
    for ax, label, has_data in zip(
        axes, ("gradient norm", "SNR = ||mean|| / ||std||", "loss"), (norms, snr, loss), strict=True
    ):
        if has_data:
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    fig.suptitle("Minibatch gradients per layer (kernel weights): drift (SNR high) and diffusion (SNR low)")
    return fig


def _gradients_data(fig, trace, binned) -> list:
    ax_norm, ax_snr, ax_loss = fig.axes[:3]
    x, mean, lo, hi = binned
    drawn: list = []
    for ax in (ax_norm, ax_snr, ax_loss):
        _forget(ax)
    for j, name in enumerate(trace.layers):
        colour = style(j)["color"]
        for ax, k, line, label in ((ax_norm, 0, "-", f"{name} mean"), (ax_norm, 1, "--", f"{name} std"),
                                   (ax_snr, 2, "-", name)):  # fmt: skip
            ok = np.isfinite(mean[:, j, k])  # zeros (full-batch std) have no place on a log axis
            drawn += ax.plot(x[ok], mean[ok, j, k], line, color=colour, lw=1.5, label=label)
            if ax is ax_snr:
                drawn.append(ax.fill_between(x[ok], lo[ok, j, k], hi[ok, j, k], color=colour, alpha=0.15, lw=0))
    if not np.isfinite(np.asarray(trace.grad)[1:, :, 2]).any():
        drawn.append(ax_snr.text(0.5, 0.5, "SNR undefined:\nstd is 0 (one batch per epoch)", ha="center",
                                 transform=ax_snr.transAxes))  # fmt: skip
    h = np.asarray(trace.history)
    for i, key in enumerate(trace.history_keys):
        if key in _LOSSES:
            drawn += ax_loss.plot(np.arange(1, len(h)), h[1:, i], lw=1, label=key)
    return drawn + _legend(ax_norm, fontsize=7, ncol=2) + _legend(ax_snr, fontsize=7) + _legend(ax_loss, fontsize=7)


_FRAMES = threading.Lock()  # a frame is drawn into by one save_all at a time


@functools.lru_cache(maxsize=8)
def _frame(build, *key):
    """``build(*key)``, kept for the next figure of the same kind and key (module docstring)."""
    return build(*key)


def save_all(trace, directory) -> list:
    """Write every figure as PNG into ``directory``; return the paths (reusing kept frames, module docstring)."""
    from pathlib import Path

    trace = trace.sorted()
    out = Path(directory)
    figures = [("learning_curves.png", _curves_frame, (), functools.partial(_curves_data, trace=trace))]
    if trace.grad is not None and len(trace.grad) > 1:
        binned = _binned_gradients(trace)
        figures.append(("gradients.png", _gradients_frame, _gradients_key(trace, binned),
                        functools.partial(_gradients_data, trace=trace, binned=binned)))  # fmt: skip
    for i, name in enumerate(trace.estimators):
        figures.append((f"info_plane_{name}.png", _plane_frame, _plane_key(trace),
                        functools.partial(_plane_data, trace=trace, estimator=i)))  # fmt: skip
        figures.append((f"info_vs_epoch_{name}.png", _epoch_frame, _epoch_key(trace),
                        functools.partial(_epoch_data, trace=trace, estimator=i)))  # fmt: skip
    with _FRAMES:
        for filename, build, key, draw in figures:
            fig = _frame(build, *key)
            try:
                drawn = draw(fig)
                write_png(fig, out / filename, PNG_COMPRESSION)
                for artist in drawn:
                    artist.remove()
            except BaseException:
                _frame.cache_clear()  # a frame something went wrong in is not drawn into again
                raise
    return [out / filename for filename, *_ in figures]
