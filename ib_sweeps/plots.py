"""Figures of a trial, drawn from its :class:`~ib_sweeps.trace.Trace` (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def information_plane(trace, estimator: int = 0):
    """I(Y;T) against I(X;T), one curve per layer, points coloured by epoch (bits).

    Axes are bounded by H(X) and H(Y) of the measured inputs (dashed lines).
    """
    plt = _plt()
    epochs = np.asarray(trace.epochs)
    ixt, iyt = np.stack(trace.ixt)[:, estimator], np.stack(trace.iyt)[:, estimator]
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    norm = plt.Normalize(epochs.min(), max(epochs.max(), 1))
    for j, name in enumerate(trace.layers):
        ax.plot(ixt[:, j], iyt[:, j], color="0.75", lw=0.8, zorder=1)
        sc = ax.scatter(ixt[:, j], iyt[:, j], c=epochs, cmap="viridis", norm=norm, s=12, zorder=2)
        ax.annotate(name, (ixt[-1, j], iyt[-1, j]), xytext=(4, -10), textcoords="offset points", fontsize=8)
    ax.axvline(trace.h_x, ls="--", color="0.5", lw=0.8)
    ax.axhline(trace.h_y, ls="--", color="0.5", lw=0.8)
    ax.set_xlim(0, trace.h_x * 1.03)
    ax.set_ylim(0, trace.h_y * 1.05)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(Y;T) [bits]")
    ax.set_title(f"Information plane ({trace.estimators[estimator]})")
    fig.colorbar(sc, ax=ax, label="epoch")
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
            (line,) = ax.plot(epochs, values[:, j], label=name, lw=1.2)
            if back.any():
                ax.plot(epochs[back], values[back, j], "x", ms=3, color=line.get_color())
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
        ax = ax_loss if key.startswith("loss") else ax_acc
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
        for ax, values, style, label in (
            (ax_norm, g[:, j, 0], "-", f"{name} mean"),
            (ax_norm, g[:, j, 1], "--", f"{name} std"),
            (ax_snr, g[:, j, 2], "-", name),
        ):
            x, mean, lo, hi = _log_binned(epochs, values)  # zeros (full-batch std) have no place on a log axis
            ax.plot(x, mean, style, color=f"C{j}", lw=1.5, label=label)
            if ax is ax_snr:
                ax.fill_between(x, lo, hi, color=f"C{j}", alpha=0.15, lw=0)
    if not np.isfinite(g[..., 2]).any():
        ax_snr.text(0.5, 0.5, "SNR undefined:\nstd is 0 (one batch per epoch)", ha="center", transform=ax_snr.transAxes)
    h = np.asarray(trace.history)
    for i, key in enumerate(trace.history_keys):
        if key.startswith("loss"):
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
