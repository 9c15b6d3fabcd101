"""The raw trace of a trial: every measured epoch's information, and the loss curves.

Saved as ``trace.npz`` (numpy, no pickles) with these arrays:

* ``format_version`` int: the file's format (:data:`ib_sweeps.records.TRACE_FORMAT`, now 2).
  Files without it (format 1, written before it existed) are read too; they
  may lack ``reasons``, the ``pooled_*`` and the ``grad*`` arrays, read as
  every epoch ``scheduled``, no pooled estimates, no gradient statistics.
  A newer format, or a file lacking an array its format requires, is refused.
* ``epochs`` int (m,): measured epochs, increasing; 0 is the untrained network.
* ``reasons`` str (m,): why each epoch was measured: ``scheduled`` or ``backtracked``.
* ``ixt``, ``iyt`` float (m, n_estimators, n_layers): I(X;T), I(Y;T) in bits.
* ``estimators``, ``layers`` str: metric-key names of the estimators and layers.
* ``history`` float (n_epochs + 1, 4): per-epoch loss and accuracy, columns
  ``history_keys`` (:data:`ib_sweeps.records.HISTORY`: ``loss/train``,
  ``accuracy/train``, ``loss/test``, ``accuracy/test``); row e is epoch e.
  Rows after a divergence are NaN.
* ``h_x``, ``h_y`` float: H(X) and H(Y) in bits of the measured inputs.
* ``pooled_window`` int (0: none), ``pooled_estimators`` str, ``pooled_epochs``
  int (p,): pooled ("as-if-random") estimates over windows of that many epochs,
  each ending at its ``pooled_epochs`` entry; ``pooled_ixt``, ``pooled_iyt``
  float (p, n_pooled_estimators, n_layers) in bits. Empty without a ``pooled``
  config section (and in traces written before it existed).
* ``grad_keys`` str (3,): ``mean_norm``, ``std_norm``, ``snr``; ``grad`` float32
  (n_epochs + 1, n_layers, 3): every epoch's minibatch-gradient statistics of
  each layer (:mod:`ib_sweeps.gradients`); row e is epoch e, row 0 and rows
  not trained are NaN. Empty (0, n_layers, 3) with ``train.gradient_stats:
  false`` (and in traces written before it existed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ib_sweeps import records


def plane_metrics(keys, layers, ixt, iyt) -> dict[str, float]:
    """Flat metric dict ``ixt/<estimator>/<layer>``, ``iyt/...`` (bits) of one measurement (records.plane_metrics)."""
    return records.plane_metrics(keys, layers, ixt, iyt)


@dataclass
class Trace:
    estimators: list[str]
    layers: list[str]
    history_keys: list[str]
    h_x: float
    h_y: float
    history: np.ndarray
    epochs: list[int] = field(default_factory=list)
    ixt: list[np.ndarray] = field(default_factory=list)
    iyt: list[np.ndarray] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    pooled_window: int = 0
    pooled_estimators: list[str] = field(default_factory=list)
    pooled_epochs: list[int] = field(default_factory=list)
    pooled_ixt: list[np.ndarray] = field(default_factory=list)
    pooled_iyt: list[np.ndarray] = field(default_factory=list)
    grad: np.ndarray | None = None  # (n_epochs + 1, n_layers, 3), None without gradient statistics

    def add(self, epoch: int, ixt: np.ndarray, iyt: np.ndarray, reason: str = "scheduled") -> None:
        """Record one measured epoch (any order); ``ixt``/``iyt`` are (n_estimators, n_layers) in bits."""
        self.epochs.append(int(epoch))
        self.ixt.append(np.asarray(ixt, dtype=np.float64))
        self.iyt.append(np.asarray(iyt, dtype=np.float64))
        self.reasons.append(reason)

    def add_pooled(self, end_epoch: int, ixt: np.ndarray, iyt: np.ndarray) -> None:
        """Record one window's pooled estimates; ``ixt``/``iyt`` are (n_pooled_estimators, n_layers) in bits."""
        self.pooled_epochs.append(int(end_epoch))
        self.pooled_ixt.append(np.asarray(ixt, dtype=np.float64))
        self.pooled_iyt.append(np.asarray(iyt, dtype=np.float64))

    def sorted(self) -> Trace:
        """The same trace with measured epochs in increasing order."""
        order = np.argsort(self.epochs, kind="stable")
        pick = [int(i) for i in order]
        return replace(
            self,
            epochs=[self.epochs[i] for i in pick],
            ixt=[self.ixt[i] for i in pick],
            iyt=[self.iyt[i] for i in pick],
            reasons=[self.reasons[i] for i in pick],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The npz arrays, epochs sorted."""
        t = self.sorted()
        shape = (0, len(self.estimators), len(self.layers))
        pooled_shape = (0, len(self.pooled_estimators), len(self.layers))
        return {
            "format_version": np.int64(records.TRACE_FORMAT),
            "epochs": np.asarray(t.epochs, dtype=np.int64),
            "reasons": np.asarray(t.reasons, dtype=str),
            "ixt": np.stack(t.ixt) if t.ixt else np.zeros(shape),
            "iyt": np.stack(t.iyt) if t.iyt else np.zeros(shape),
            "estimators": np.asarray(self.estimators, dtype=str),
            "layers": np.asarray(self.layers, dtype=str),
            "history_keys": np.asarray(self.history_keys, dtype=str),
            "history": self.history,
            "h_x": np.float64(self.h_x),
            "h_y": np.float64(self.h_y),
            "pooled_window": np.int64(self.pooled_window),
            "pooled_estimators": np.asarray(self.pooled_estimators, dtype=str),
            "pooled_epochs": np.asarray(self.pooled_epochs, dtype=np.int64),
            "pooled_ixt": np.stack(self.pooled_ixt) if self.pooled_ixt else np.zeros(pooled_shape),
            "pooled_iyt": np.stack(self.pooled_iyt) if self.pooled_iyt else np.zeros(pooled_shape),
            "grad_keys": np.asarray(records.GRAD_STATS, dtype=str),
            "grad": self.grad if self.grad is not None else np.zeros((0, len(self.layers), len(records.GRAD_STATS))),
        }

    def save(self, path: str | Path) -> Path:
        np.savez_compressed(path, **self.arrays())
        return Path(path)


def load(path: str | Path) -> Trace:
    """Read a ``trace.npz`` written by :meth:`Trace.save`, of the current format or an older one (module docstring)."""
    with np.load(path, allow_pickle=False) as z:
        version = int(z["format_version"]) if "format_version" in z else 1
        try:
            required = records.trace_arrays(version)
        except ValueError as err:
            raise ValueError(f"{path}: {err}; a newer ib-sweeps wrote it") from None
        missing = [name for name in required if name not in z]
        if missing:
            raise ValueError(f"{path}: not a trace.npz of format {version}: lacks {', '.join(missing)}")
        if "grad_keys" in z and z["grad"].size and tuple(z["grad_keys"].tolist()) != records.GRAD_STATS:
            raise ValueError(f"{path}: gradient statistics {z['grad_keys'].tolist()}; expected {records.GRAD_STATS}")
        return Trace(
            estimators=z["estimators"].tolist(),
            layers=z["layers"].tolist(),
            history_keys=z["history_keys"].tolist(),
            h_x=float(z["h_x"]),
            h_y=float(z["h_y"]),
            history=z["history"],
            epochs=z["epochs"].tolist(),
            ixt=list(z["ixt"]),
            iyt=list(z["iyt"]),
            reasons=z["reasons"].tolist() if "reasons" in z else ["scheduled"] * len(z["epochs"]),  # format 1
            grad=z["grad"] if "grad" in z and z["grad"].size else None,
            **_pooled(z),
        )


def _pooled(z) -> dict:
    if "pooled_window" not in z:  # format 1, written before pooled estimates existed
        return {}
    return {
        "pooled_window": int(z["pooled_window"]),
        "pooled_estimators": z["pooled_estimators"].tolist(),
        "pooled_epochs": z["pooled_epochs"].tolist(),
        "pooled_ixt": list(z["pooled_ixt"]),
        "pooled_iyt": list(z["pooled_iyt"]),
    }
