"""Pooled ("as-if-random") estimates in a trial: the ``pooled:`` config section and its windows.

The dissertation's as-if-random experiment (Sec. 3.4): late in training the
weights barely move, so the last W epochs are treated as W draws of random
weights. The activity of the W epochs of a window is pooled into one sample
of n_inputs x W rows, one per (input, epoch), with X still the input's
identity, and each estimator's I(X;T), I(Y;T) (bits) are computed on it
(:meth:`~ib_sweeps.estimators.Estimator.pooled_information_plane`). A
deterministic network's I(X;T) can then fall below H(X).

The trial keeps the activity of every epoch of a window while it trains past
it (the core stops at those epochs, or, with weight snapshots, recomputes them
from the snapshots) and estimates when the window's last epoch is reached.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field, model_validator

from ib_sweeps.types import FROZEN, MAX_EPOCHS, Str

Epoch = Annotated[int, Field(ge=0, le=MAX_EPOCHS, strict=True)]


class PooledConfig(BaseModel):
    """Pooled estimates over windows of ``window`` consecutive epochs.

    ``epochs``: the last epoch of each window (default: only ``train.epochs``,
    the window of the last W epochs); ``estimators``: labels (metric keys) of
    the trial's estimators to pool with (default: all of them).
    """

    model_config = FROZEN
    window: int = Field(ge=2, le=MAX_EPOCHS + 1, strict=True)
    epochs: Annotated[tuple[Epoch, ...], Field(min_length=1)] | None = None
    estimators: Annotated[tuple[Str, ...], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _windows_in_training(self):
        early = sorted({e for e in self.epochs or () if e < self.window - 1})
        if early:
            raise ValueError(
                f"epochs: windows of {self.window} epochs ending at {early} would start before epoch 0; "
                f"allowed: end epochs >= window - 1 = {self.window - 1}"
            )
        return self

    def end_epochs(self, n_epochs: int) -> list[int]:
        """Sorted distinct last epochs of the windows in a run of ``n_epochs``."""
        return sorted(set(self.epochs or (n_epochs,)))

    def window_of(self, end: int) -> range:
        """The epochs of the window ending at ``end``."""
        return range(end - self.window + 1, end + 1)


class Windows:
    """The activity of window epochs, kept from when the core passes them until their windows are estimated."""

    def __init__(self, cfg: PooledConfig, n_epochs: int):
        self.cfg = cfg
        self.ends = cfg.end_epochs(n_epochs)
        self.wanted = {e for end in self.ends for e in cfg.window_of(end)}
        self.kept: dict[int, list[np.ndarray]] = {}

    def add(self, epoch: int, activities: list[np.ndarray]) -> list[list[np.ndarray]] | None:
        """Keep one epoch's activities (one array per layer) if a window needs them.

        If ``epoch`` ends a window, returns its activity per layer: element j is
        layer j's W arrays in epoch order. Activity no later window needs is dropped.
        """
        if epoch in self.wanted:
            self.kept[epoch] = activities
        window = None
        if epoch in self.ends:
            per_epoch = [self.kept[e] for e in self.cfg.window_of(epoch)]
            window = [list(layer) for layer in zip(*per_epoch, strict=True)]
        starts = [self.cfg.window_of(end)[0] for end in self.ends if end > epoch]
        self.kept = {e: a for e, a in self.kept.items() if starts and e >= min(starts)}
        return window


def measure(estimators, windows: list[list[np.ndarray]], labels) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (I(X;T), I(Y;T)) in bits, each (n_estimators, n_layers); ``windows[j]``: layer j's W activities."""
    values = np.array([[est.pooled_information_plane(w, labels) for w in windows] for est in estimators])
    return values[..., 0], values[..., 1]


def metrics(keys, layers, ixt, iyt) -> dict[str, float]:
    """Flat metric dict ``pooled/ixt/<estimator>/<layer>`` and ``pooled/iyt/...`` of one window."""
    from ib_sweeps import records

    return records.plane_metrics(keys, layers, ixt, iyt, pooled=True)
