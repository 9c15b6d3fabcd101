"""Per-trial statistics of the information plane, and the phase-transition epochs.

For every trial, layer and estimator (information in bits, epochs as logged):

* ``ixt_peak`` and ``peak_epoch``: the largest I(X;T) and the first epoch it is
  reached; ``fitting_epochs``: the length of the fitting phase, from the first
  measured epoch to the peak.
* ``ixt_final``, ``iyt_final``, ``iyt_peak``: at the last measured epoch / largest.
* ``compression`` = peak - final (>= 0) and ``compression_rel`` = that / peak.
* ``compresses``: I(X;T) falls below ``peak - threshold`` after the peak and
  stays there at every later measured epoch (a dip that recovers does not
  count), with ``threshold = max(threshold_bits, threshold_rel * peak)``;
  ``onset_epoch``: the first epoch of that final stretch (NaN when none).
* ``loss_kink_epoch``: the kink of the training loss, the breakpoint of the
  best two-segment (continuous, hinge) fit of log loss against log epoch: the
  end of Shwartz-Ziv & Tishby's fast "drift" phase.
  The fit starts where the loss has fallen 10 % below its first value (an
  initial plateau would otherwise draw the break to its end).
* ``accuracy_train_final``, ``accuracy_test_final``: the trial's training and
  test accuracy at its last measured epoch (fractions in [0, 1], not bits; NaN
  where the trace holds none there), and ``generalisation_gap`` = train - test
  (a fraction): for Saxe et al.'s (2018) "networks that do not compress
  generalise as well".
* ``snr_drop_epoch``: the first epoch after the peak of the layer's gradient
  signal-to-noise ratio (running median of 5 measured epochs) where it falls
  below 1: the gradient noise outweighs its mean, the start of the "diffusion"
  phase; NaN where the trial logged no gradients or the SNR never crosses 1.
"""

from __future__ import annotations

import numpy as np

from ib_sweeps import records
from ib_sweeps.analysis.tables import GRADIENT, RUN_COLUMNS
from ib_sweeps.claims.base import layer_mask  # noqa: F401 (the claims' layer names; figures use it)

TRIAL_KEYS = ("run_id", "estimator", "layer")


def compression_table(trace, threshold_bits: float = 0.1, threshold_rel: float = 0.05):
    """One row per trial x layer x estimator of ``trace`` (from :func:`load_trace`); see the module docstring.

    Also carries the trace's run columns (condition, seed, axes), ``layer_index``,
    ``n_layers``, ``is_output`` and ``is_last_hidden`` (the layer before the output).
    """
    import pandas as pd

    if not len(trace):
        return pd.DataFrame(columns=[*RUN_COLUMNS, "estimator", "layer", "compression", "compresses"])
    meta_cols = [c for c in trace.columns if c not in _TRACE_VALUES]
    trace = trace.sort_values([*TRIAL_KEYS, "epoch"], kind="stable")
    meta = trace[meta_cols].to_numpy(dtype=object)
    epochs_all, ixt_all, iyt_all = (trace[c].to_numpy(float) for c in ("epoch", records.IXT, records.IYT))
    loss_all = trace[records.LOSS_TRAIN].to_numpy(float) if records.LOSS_TRAIN in trace else None
    snr_all = trace[_SNR].to_numpy(float) if _SNR in trace else None
    accuracy = [trace[c].to_numpy(float) if c in trace else None for c in _ACCURACY]
    rows, kinks = [], {}
    for keys, idx in trace.groupby(list(TRIAL_KEYS), sort=False).indices.items():
        epochs = epochs_all[idx].astype(np.int64)
        row = dict(zip(meta_cols, meta[idx[0]], strict=True))
        row.update(_plane_stats(epochs, ixt_all[idx], iyt_all[idx], threshold_bits, threshold_rel))
        if keys[0] not in kinks:
            kinks[keys[0]] = loss_kink(epochs, loss_all[idx]) if loss_all is not None else np.nan
        row["loss_kink_epoch"] = kinks[keys[0]]
        row["snr_drop_epoch"] = _snr_drop(epochs, snr_all[idx]) if snr_all is not None else np.nan
        row.update(_final_accuracy(*(a[idx[-1]] if a is not None else np.nan for a in accuracy)))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["is_output"] = out["layer_index"] == out["n_layers"]
    out["is_last_hidden"] = out["layer_index"] == np.maximum(out["n_layers"] - 1, 1)
    return out


_SNR = records.grad_column("snr")
_ACCURACY = (records.ACCURACY_TRAIN, records.ACCURACY_TEST)
_TRACE_VALUES = {"epoch", *records.PLANE, *records.HISTORY, *GRADIENT}


def _plane_stats(epochs, ixt, iyt, threshold_bits, threshold_rel) -> dict:
    ok = np.isfinite(ixt)
    if not ok.any():
        return {"ixt_peak": np.nan, "compresses": False, "onset_epoch": np.nan}
    e, x = epochs[ok], ixt[ok]
    k = int(np.argmax(x))
    peak, final = float(x[k]), float(x[-1])
    onset = compression_onset(e, x, threshold_bits, threshold_rel)
    y = iyt[np.isfinite(iyt)]
    return {
        "peak_epoch": int(e[k]),
        "ixt_peak": peak,
        "ixt_final": final,
        "compression": peak - final,
        "compression_rel": (peak - final) / peak if peak > 0 else 0.0,
        "fitting_epochs": int(e[k] - e[0]),
        "compresses": onset is not None,
        "onset_epoch": float(onset) if onset is not None else np.nan,
        "iyt_final": float(y[-1]) if len(y) else np.nan,
        "iyt_peak": float(y.max()) if len(y) else np.nan,
        "final_epoch": int(e[-1]),
    }


def _final_accuracy(train: float, test: float) -> dict:
    """Accuracies (fractions) at the last measured epoch and the generalisation gap, train - test."""
    return {"accuracy_train_final": train, "accuracy_test_final": test, "generalisation_gap": train - test}


def compression_onset(epochs, ixt, threshold_bits: float = 0.1, threshold_rel: float = 0.05):
    """First epoch after the peak from which I(X;T) stays below ``peak - threshold`` to the end, or None.

    ``threshold = max(threshold_bits, threshold_rel * peak)``. A drop that
    recovers above the line later does not count (not a dip): only the final
    stretch below it does.
    """
    x = np.asarray(ixt, dtype=float)
    k = int(np.argmax(x))
    line = x[k] - max(threshold_bits, threshold_rel * x[k])
    above = np.flatnonzero(x[k:] > line) + k  # epochs at or above the line (the peak is one)
    first_below = above[-1] + 1
    return epochs[first_below] if first_below < len(x) else None


def breakpoint(x, y, min_points: int = 3) -> tuple[float, float, float] | None:
    """Best continuous two-segment (hinge) least-squares fit of ``y`` against ``x``.

    Returns (breakpoint x, slope before, slope after), or None with fewer than
    ``2 * min_points`` finite points. The breakpoint is chosen among the data's
    own x values, each segment keeping at least ``min_points`` points.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 2 * min_points:
        return None
    cands = np.arange(min_points - 1, n - min_points)
    hinge = np.maximum(x[None, :] - x[cands, None], 0.0)  # (c, n)
    # Least squares of y ~ a + b x + c hinge, for every candidate at once (normal equations, 3x3).
    ones = np.ones_like(x)
    cols = [np.broadcast_to(ones, hinge.shape), np.broadcast_to(x, hinge.shape), hinge]
    gram = np.stack([np.stack([(u * v).sum(1) for v in cols], -1) for u in cols], -2)
    rhs = np.stack([(u * y).sum(1) for u in cols], -1)
    coef = (np.linalg.pinv(gram) @ rhs[..., None])[..., 0]  # (c, 3); pinv: safe when a column is constant
    fit = coef[:, :1] + coef[:, 1:2] * x[None] + coef[:, 2:3] * hinge
    sse = ((fit - y[None]) ** 2).sum(1)
    best = int(np.argmin(sse))
    b, c = coef[best, 1], coef[best, 2]
    return float(x[cands[best]]), float(b), float(b + c)


def _log_breakpoint(epochs, values) -> tuple[float, float, float] | None:
    e, v = np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)
    ok = (e > 0) & (v > 0) & np.isfinite(v)
    found = breakpoint(np.log10(e[ok]), np.log10(v[ok]))
    return None if found is None else (float(10 ** found[0]), found[1], found[2])


def loss_kink(epochs, loss) -> float:
    """Epoch of the training loss's kink (see the module docstring); NaN without enough finite values."""
    e, loss = np.asarray(epochs), np.asarray(loss, dtype=float)
    ok = np.isfinite(loss)
    e, loss = e[ok], loss[ok]
    if not len(loss):
        return np.nan
    # Skip an initial plateau: the fit starts where the loss has fallen 10 % below its first value.
    fallen = loss <= 0.9 * loss[0]
    start = int(np.argmax(fallen)) if fallen.any() else 0
    found = _log_breakpoint(e[start:], loss[start:])
    return _nearest(e, found[0]) if found else np.nan


def _snr_drop(epochs, snr) -> float:
    ok = np.isfinite(snr)
    return snr_drop(epochs[ok], snr[ok]) if ok.any() else np.nan


def snr_drop(epochs, snr, window: int = 5) -> float:
    """First epoch after the SNR's peak where it falls below 1, or NaN (never above 1, or never falls below).

    SNR = ||mean|| / ||std|| of the minibatch gradients: below 1 the gradient noise
    outweighs the mean, Shwartz-Ziv & Tishby's move from "drift" to "diffusion".
    A running median over ``window`` measured epochs keeps a single noisy point
    from deciding.
    """
    from scipy.ndimage import median_filter

    e, v = np.asarray(epochs), np.asarray(snr, dtype=float)
    if len(v) == 0:
        return np.nan
    smooth = median_filter(v, size=min(window, len(v)), mode="nearest")
    k = int(np.argmax(smooth))
    if smooth[k] <= 1:
        return np.nan
    below = np.flatnonzero(smooth[k:] < 1)
    return float(e[k + below[0]]) if len(below) else np.nan


def _nearest(epochs, x: float) -> float:
    e = np.asarray(epochs, dtype=float)
    return float(e[np.argmin(np.abs(e - x))])
