"""A finished trial's headline numbers: what Ray Tune sees, what Optuna optimises, the parent's table.

Keys (information in bits):

* ``ixt_peak/<estimator>/<layer>``, ``ixt_final/...``, ``iyt_final/...``;
* ``compression/<estimator>/<layer>``: peak minus final I(X;T) (>= 0);
* the same with ``last_hidden`` for the last hidden layer (the one before the output);
* ``loss/train``, ``accuracy/train``, ``loss/test``, ``accuracy/test`` at the last epoch.

A trial logs each as ``summary/<key>``; the names are built by :mod:`ib_sweeps.records`.
"""

from __future__ import annotations

import numpy as np

from ib_sweeps import records
from ib_sweeps.trace import Trace

STATS = records.SUMMARY_STATS  # ixt_peak, ixt_final, iyt_final, compression
HISTORY = records.HISTORY  # loss/train, accuracy/train, loss/test, accuracy/test


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
                    out[records.summary_stat(stat, est, layer)] = float(values[i, j])
                    if layer == hidden:
                        out[records.summary_stat(stat, est, records.LAST_HIDDEN)] = float(values[i, j])
    rows = trace.history[~np.isnan(trace.history).any(axis=1)]
    if len(rows):
        for key in HISTORY:
            if key in trace.history_keys:
                out[key] = float(rows[-1, trace.history_keys.index(key)])
    return out


def is_known_metric(metric: str) -> bool:
    """Whether ``metric`` is one :func:`trial_summary` can produce (for checking a search objective)."""
    return metric in HISTORY or records.parse_summary_stat(metric) is not None
