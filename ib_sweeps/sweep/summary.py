"""A finished trial's headline numbers: what Ray Tune sees, what Optuna optimises, the parent's table.

Keys (information in bits):

* ``ixt_peak/<estimator>/<layer>``, ``ixt_final/...``, ``iyt_final/...``;
* ``compression/<estimator>/<layer>``: peak minus final I(X;T) (>= 0);
* the same with ``last_hidden`` for the last hidden layer (the one before the output);
* ``loss/train``, ``loss/test``, ``accuracy/train``, ``accuracy/test`` at the last epoch.
"""

from __future__ import annotations

import numpy as np

from ib_sweeps.trace import Trace

STATS = ("ixt_peak", "ixt_final", "iyt_final", "compression")
HISTORY = ("loss/train", "loss/test", "accuracy/train", "accuracy/test")


def trial_summary(trace: Trace) -> dict[str, float]:
    """Headline metrics of one trial's trace (see the module docstring)."""
    out: dict[str, float] = {}
    arrays = trace.arrays()
    if len(arrays["epochs"]):
        ixt, iyt = arrays["ixt"], arrays["iyt"]  # (m, n_est, n_layers)
        stats = {
            "ixt_peak": ixt.max(axis=0),
            "ixt_final": ixt[-1],
            "iyt_final": iyt[-1],
            "compression": ixt.max(axis=0) - ixt[-1],
        }
        names = list(trace.layers)
        hidden = names[-2] if len(names) >= 2 else names[-1]
        for stat, values in stats.items():
            for i, est in enumerate(trace.estimators):
                for j, layer in enumerate(names):
                    out[f"{stat}/{est}/{layer}"] = float(values[i, j])
                    if layer == hidden:
                        out[f"{stat}/{est}/last_hidden"] = float(values[i, j])
    rows = trace.history[~np.isnan(trace.history).any(axis=1)]
    if len(rows):
        for key in HISTORY:
            if key in trace.history_keys:
                out[key] = float(rows[-1, trace.history_keys.index(key)])
    return out


def is_known_metric(metric: str) -> bool:
    """Whether ``metric`` is one :func:`trial_summary` can produce (for checking a search objective)."""
    parts = metric.split("/")
    return metric in HISTORY or (len(parts) == 3 and parts[0] in STATS)
