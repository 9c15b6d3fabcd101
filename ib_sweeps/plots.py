"""Figures of a trial, drawn from its :class:`~ib_sweeps.trace.Trace` (matplotlib, Agg).

Also the colour-blind-safe styles shared with the sweep report (:func:`style`):
Okabe & Ito's eight colours, each paired with its own marker and line style, so
series stay apart in grey print and for every common colour-vision deficiency.
"""

from __future__ import annotations

import numpy as np

from ib_sweeps import records

_LOSSES = (records.LOSS_TRAIN, records.LOSS_TEST)

# Okabe & Ito (2008), "Color Universal Design"; yellow last, as it is faint on white.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (8, 2, 2, 2)))
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
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6},
            )
        )
    return texts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def information_plane(trace, estimator: int = 0):
    """I(Y;T) against I(X;T), one curve per layer, points coloured by epoch on a log scale (bits).

    Axes are bounded by H(X) and H(Y) of the measured inputs (dashed lines).
    Each layer has its own marker and a label at its last point, moved clear
    of the others (:func:`spread_labels`).
    """
    plt = _plt()
    epochs = np.asarray(trace.epochs)
    ixt, iyt = np.stack(trace.ixt)[:, estimator], np.stack(trace.iyt)[:, estimator]
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    norm = epoch_norm(epochs)
    for j in range(len(trace.layers)):
        ax.plot(ixt[:, j], iyt[:, j], color="0.75", lw=0.8, zorder=1)
        sc = ax.scatter(ixt[:, j], iyt[:, j], c=epochs + 1, cmap="viridis", norm=norm, s=14, zorder=2,
                        marker=MARKERS[j % len(MARKERS)], linewidths=0)  # fmt: skip
    ax.axvline(trace.h_x, ls="--", color="0.5", lw=0.8)
    ax.axhline(trace.h_y, ls="--", color="0.5", lw=0.8)
    ax.set_xlim(0, trace.h_x * 1.03)
    ax.set_ylim(0, trace.h_y * 1.05)
    last = [np.flatnonzero(np.isfinite(ixt[:, j]) & np.isfinite(iyt[:, j])) for j in range(len(trace.layers))]
    labelled = [j for j in range(len(trace.layers)) if len(last[j])]  # a layer with no finite point has no label
    points = [(ixt[last[j][-1], j], iyt[last[j][-1], j]) for j in labelled]
    spread_labels(ax, points, [trace.layers[j] for j in labelled])
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(Y;T) [bits]")
    ax.set_title(f"Information plane ({trace.estimators[estimator]}); labels at the last epoch")
    fig.colorbar(sc, ax=ax, label="epoch + 1 (log scale)")
    return fig


def information_vs_epoch(trace, estimator: int = 0):
    """I(X;T) and I(Y;T) in bits against epoch (log axis), one line per layer."""
    plt = _plt()
    epochs = np.maximum(np.asarray(trace.epochs), 0.5)  # epoch 0 drawn at 0.5 on the log axis
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, values, label, bound in (
        (axes[0], np.stack(trace.ixt)[:, estimator], "I(X;T) [bits]", trace.h_x),
        (axes[1], np.stack(trace.iyt)[:, estimator], "I(Y;T) [bits]", trace.h_y),
    ):
        back = np.asarray(trace.reasons) == "backtracked"
        for j, name in enumerate(trace.layers):
            st = style(j)
            ax.plot(epochs, values[:, j], label=name, lw=1.2, color=st["color"], linestyle=st["linestyle"])
            if back.any():
                ax.plot(epochs[back], values[back, j], "x", ms=3, color=st["color"])
        ax.axhline(bound, ls="--", color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[1].legend(fontsize=8)
    note = "; x: backtracked epochs" if "backtracked" in trace.reasons else ""
    fig.suptitle(f"Information vs epoch ({trace.estimators[estimator]}){note}")
    return fig


def learning_curves(trace):
    """Per-epoch train/test loss (log scale) and accuracy."""
    plt = _plt()
    h = np.asarray(trace.history)
    epochs = np.arange(len(h))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for i, key in enumerate(trace.history_keys):
        ax = ax_loss if key in _LOSSES else ax_acc
        ax.plot(epochs, h[:, i], label=key, lw=1)
    ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return fig


def _log_binned(epochs, values, n_bins: int = 60):
    """Positive ``values`` in log-spaced epoch bins: (bin centres, geometric means, 10th and 90th percentiles).

    Empty bins are dropped.
    """
    edges = np.unique(np.geomspace(1, epochs.max() + 1, n_bins + 1).astype(int))
    which = np.digitize(epochs, edges) - 1
    ok = np.isfinite(values) & (values > 0)
    rows = []
    for b in range(len(edges) - 1):
        v = values[ok & (which == b)]
        if len(v):
            rows.append((np.sqrt(edges[b] * edges[b + 1]), np.exp(np.log(v).mean()), *np.percentile(v, [10, 90])))
    return np.asarray(rows).reshape(-1, 4).T


def gradients(trace):
    """Per-layer minibatch-gradient mean and std norms, their SNR, and the loss, against epoch (log-log).

    As Shwartz-Ziv & Tishby (2017) Fig. 4. Every epoch's values are summarised
    in log-spaced epoch bins: the geometric mean as a line (mean norm solid,
    std norm dashed), the 10th-90th percentile of the SNR as a band.
    """
    plt = _plt()
    g = np.asarray(trace.grad)[1:]  # epoch 0 trained on no batch
    epochs = np.arange(1, len(g) + 1)
    fig, (ax_norm, ax_snr, ax_loss) = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for j, name in enumerate(trace.layers):
        for ax, values, line, label in (
            (ax_norm, g[:, j, 0], "-", f"{name} mean"),
            (ax_norm, g[:, j, 1], "--", f"{name} std"),
            (ax_snr, g[:, j, 2], "-", name),
        ):
            x, mean, lo, hi = _log_binned(epochs, values)  # zeros (full-batch std) have no place on a log axis
            ax.plot(x, mean, line, color=style(j)["color"], lw=1.5, label=label)
            if ax is ax_snr:
                ax.fill_between(x, lo, hi, color=style(j)["color"], alpha=0.15, lw=0)
    if not np.isfinite(g[..., 2]).any():
        ax_snr.text(0.5, 0.5, "SNR undefined:\nstd is 0 (one batch per epoch)", ha="center", transform=ax_snr.transAxes)
    h = np.asarray(trace.history)
    for i, key in enumerate(trace.history_keys):
        if key in _LOSSES:
            ax_loss.plot(np.arange(1, len(h)), h[1:, i], lw=1, label=key)
    for ax, label in ((ax_norm, "gradient norm"), (ax_snr, "SNR = ||mean|| / ||std||"), (ax_loss, "loss")):
        if any(len(line.get_ydata()) for line in ax.get_lines()):  # an empty panel has no log scale
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7, ncol=2 if ax is ax_norm else 1)
    fig.suptitle("Minibatch gradients per layer (kernel weights): drift (SNR high) and diffusion (SNR low)")
    return fig


def save_all(trace, directory) -> list:
    """Write every figure as PNG into ``directory``; return the paths."""
    from pathlib import Path

    plt = _plt()
    trace = trace.sorted()
    out, paths = Path(directory), []
    figures = [("learning_curves.png", learning_curves(trace))]
    if trace.grad is not None and len(trace.grad) > 1:
        figures.append(("gradients.png", gradients(trace)))
    for i, name in enumerate(trace.estimators):
        figures.append((f"info_plane_{name}.png", information_plane(trace, i)))
        figures.append((f"info_vs_epoch_{name}.png", information_vs_epoch(trace, i)))
    for filename, fig in figures:
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)
        paths.append(out / filename)
    return paths
