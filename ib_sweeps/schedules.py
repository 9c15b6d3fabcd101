"""Which epochs to measure: one registry from ``kind`` to schedule class.

A schedule is a frozen, validated model with ``epochs(n_epochs)``, a pure
function returning the sorted, distinct epochs in 0..n_epochs to measure
(epoch 0 is the untrained network). Every schedule includes 0 and n_epochs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from ib_sweeps.types import FROZEN


class Schedule(BaseModel):
    model_config = FROZEN

    def epochs(self, n_epochs: int) -> np.ndarray:
        """Sorted distinct int epochs in [0, n_epochs], always with 0 and n_epochs."""
        return np.unique(np.concatenate(([0, n_epochs], self._grid(n_epochs))).astype(np.int64))

    def _grid(self, n_epochs: int) -> np.ndarray:
        raise NotImplementedError


class Every(Schedule):
    """Every epoch."""

    kind: Literal["every"] = "every"

    def _grid(self, n_epochs):
        return np.arange(n_epochs + 1)


class Skip(Schedule):
    """Every ``every``-th epoch (0, every, 2*every, ...), plus the last."""

    kind: Literal["skip"] = "skip"
    every: int = Field(default=10, gt=0, strict=True)

    def _grid(self, n_epochs):
        return np.arange(0, n_epochs + 1, self.every)


class Log(Schedule):
    """About ``n`` distinct log-spaced epochs from 1 to n_epochs, plus 0 and n_epochs.

    Rounding a geometric grid merges neighbours early in training; the grid is
    made denser until ``n`` distinct epochs remain (all epochs if n > n_epochs).
    """

    kind: Literal["log"] = "log"
    n: int = Field(default=300, ge=2, strict=True)

    def _grid(self, n_epochs):
        def grid(m):
            return np.unique(np.round(np.geomspace(1, max(n_epochs, 1), m)))

        lo, hi = self.n, max(self.n, n_epochs + 1)
        while lo < hi:  # smallest point count giving n distinct epochs
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if len(grid(mid)) < self.n - 1 else (lo, mid)
        return grid(lo)


REGISTRY: dict[str, type[Schedule]] = {"every": Every, "skip": Skip, "log": Log}
