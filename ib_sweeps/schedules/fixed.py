"""Fixed grids of epochs: every epoch, every n-th, log-spaced, piecewise, or a list.

Each is a pure function of the run length; every grid includes 0 and n_epochs.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from ib_sweeps.schedules.base import Schedule
from ib_sweeps.types import FROZEN, MAX_EPOCHS


class Every(Schedule):
    """Every epoch."""

    kind: Literal["every"] = "every"

    def _grid(self, n_epochs):
        return np.arange(n_epochs + 1)


class Skip(Schedule):
    """Every ``every``-th epoch (0, every, 2*every, ...), plus the last."""

    kind: Literal["skip"] = "skip"
    every: int = Field(default=10, gt=0, le=MAX_EPOCHS, strict=True)

    def max_measurements(self, n_epochs):
        return min(n_epochs + 1, n_epochs // self.every + 2)

    def _grid(self, n_epochs):
        return np.arange(0, n_epochs + 1, self.every)


class Log(Schedule):
    """About ``n`` distinct log-spaced epochs from 1 to n_epochs, plus 0 and n_epochs.

    Rounding a geometric grid merges neighbours early in training; the grid is
    made denser until ``n`` distinct epochs remain (all epochs if n > n_epochs).
    """

    kind: Literal["log"] = "log"
    n: int = Field(default=300, ge=2, le=MAX_EPOCHS, strict=True)

    def max_measurements(self, n_epochs):
        return min(n_epochs + 1, 2 * self.n + 2)  # rounding may keep a few more than n; twice is ample

    def _grid(self, n_epochs):
        def grid(m):
            return np.unique(np.round(np.geomspace(1, max(n_epochs, 1), m)))

        lo, hi = self.n, max(self.n, n_epochs + 1)
        while lo < hi:  # smallest point count giving n distinct epochs
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if len(grid(mid)) < self.n - 1 else (lo, mid)
        return grid(lo)


class Segment(BaseModel):
    """Measure every ``every``-th epoch before epoch ``until`` (null: to the end)."""

    model_config = FROZEN
    until: int | None = Field(default=None, gt=0, le=MAX_EPOCHS, strict=True)
    every: int = Field(gt=0, le=MAX_EPOCHS, strict=True)


# The Saxe et al. (2018) code: every epoch below 20, every 5th below 100, every 10th below 200, then every 100th.
SAXE_SEGMENTS = (
    Segment(until=20, every=1),
    Segment(until=100, every=5),
    Segment(until=200, every=10),
    Segment(until=None, every=100),
)


class Piecewise(Schedule):
    """Dense early, sparse late: consecutive segments, each with its own stride."""

    kind: Literal["piecewise"] = "piecewise"
    segments: tuple[Segment, ...] = Field(default=SAXE_SEGMENTS, min_length=1)

    @model_validator(mode="after")
    def _increasing(self):
        ends = [s.until for s in self.segments]
        if any(e is None for e in ends[:-1]) or any(a >= b for a, b in itertools.pairwise(ends) if b is not None):
            raise ValueError("segments: 'until' must increase, and only the last may be null")
        return self

    def max_measurements(self, n_epochs):
        count, start = 2, 0
        for seg in self.segments:
            stop = n_epochs + 1 if seg.until is None else min(seg.until, n_epochs + 1)
            first = -(-start // seg.every) * seg.every
            count += max(0, -(-(stop - first) // seg.every))
            start = stop
        return min(n_epochs + 1, count)

    def _grid(self, n_epochs):
        out, start = [], 0
        for seg in self.segments:
            stop = n_epochs + 1 if seg.until is None else min(seg.until, n_epochs + 1)
            first = -(-start // seg.every) * seg.every  # multiples of the stride, as in the Saxe code
            out.append(np.arange(first, stop, seg.every))
            start = stop
        return np.concatenate(out)


class Explicit(Schedule):
    """Exactly these epochs (plus 0 and the last)."""

    kind: Literal["list"] = "list"
    epochs_: tuple[Annotated[int, Field(ge=0, le=MAX_EPOCHS, strict=True)], ...] = Field(alias="epochs", min_length=1)

    def listed_epochs(self) -> tuple[int, ...]:
        return self.epochs_

    def max_measurements(self, n_epochs):
        return min(n_epochs + 1, len(self.epochs_) + 2)

    def _grid(self, n_epochs):
        return np.asarray(self.epochs_)
