"""Adaptive epoch skipping with a distance guarantee (delta skip).

From the dissertation "Measuring mutual information in neural networks" (2019,
Sec. 3.3.2, Figures 3.6-3.9). Each measured epoch gives a point: I(X;T) and
I(Y;T) of every layer, in bits. The distance between two points is the largest
shift of any layer on either axis (Eq. 3.8), by default divided by H(X) and
H(Y) respectively (Eq. 3.9, ``distance: normalized``).

``delta_exact``: skip starts at 1. After each scheduled measurement, if the
distance D to the previous one is <= delta, skip is multiplied by
``multiplier``; otherwise the gap is backtracked: its middle epoch is measured
and both halves are recursed on until every pair of consecutive measured epochs
is within delta or adjacent. Backtracking never changes skip; with
``shrink_after_backtrack`` skip is divided by ``multiplier`` after a gap that
needed it, so a trace that speeds up again late is not backtracked over and
over. ``delta_approx``: the same rule without backtracking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from ib_sweeps.schedules.base import Gap, Plan, Schedule
from ib_sweeps.types import MAX_EPOCHS, PositiveFloat


def distance(p: np.ndarray, q: np.ndarray, h_x: float = 1.0, h_y: float = 1.0) -> float:
    """Largest shift of any layer on either axis between points (2, n_layers) (Eq. 3.8/3.9)."""
    d = np.abs(np.asarray(p) - np.asarray(q))
    return float(max(d[0].max() / h_x, d[1].max() / h_y))


@dataclass
class Budget:
    """Thread-safe count of measurements left; one stays reserved for the last epoch."""

    left: float = np.inf
    final_done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, final: bool = False) -> bool:
        with self._lock:
            reserve = 0 if (final or self.final_done) else 1
            if self.left - reserve < 1:
                return False
            self.left -= 1
            self.final_done = self.final_done or final
            return True


@dataclass
class DeltaPlan(Plan):
    n_epochs: int
    multiplier: int
    backtrack: bool
    shrink: bool
    close: Callable[[np.ndarray, np.ndarray], bool]
    budget: Budget
    max_gap: int | None = None
    skip: int = 1
    last: int | None = None
    last_point: np.ndarray | None = None

    @property
    def needs_snapshots(self) -> bool:
        return self.backtrack

    def next(self) -> int | None:
        if self.last is None:
            target = 0
        elif self.last >= self.n_epochs:
            return None
        else:
            step = self.skip if self.max_gap is None else min(self.skip, self.max_gap)
            target = min(self.last + step, self.n_epochs)
        final = target == self.n_epochs
        if not self.budget.take(final=final):
            target = self.n_epochs  # budget spent: only the last epoch is left to measure
            if not self.budget.take(final=True):
                return None
        return target

    def observe(self, epoch: int, point: np.ndarray) -> Gap | None:
        prev, prev_point = self.last, self.last_point
        self.last, self.last_point = epoch, np.asarray(point)
        if prev is None:
            return None
        if self.close(prev_point, point):
            self.skip *= self.multiplier
            return None
        if self.shrink:
            self.skip = max(1, self.skip // self.multiplier)
        if self.backtrack and epoch - prev > 1:
            return Gap(prev, prev_point, epoch, np.asarray(point))
        return None


def backtrack(gap: Gap, measure: Callable[[int], np.ndarray], close, budget: Budget | None = None):
    """Fill in ``gap``: measure middle epochs until neighbours are close or adjacent.

    ``measure(epoch)`` returns the point (2, n_layers). Returns the measured
    ``[(epoch, point)]`` in the order they were measured (Figure 3.7, iteratively).
    """
    out, stack = [], [(gap.a, gap.point_a, gap.b, gap.point_b)]
    while stack:
        a, pa, b, pb = stack.pop()
        if b - a <= 1 or close(pa, pb) or (budget is not None and not budget.take()):
            continue
        mid = (a + b) // 2
        pm = np.asarray(measure(mid))
        out.append((mid, pm))
        stack.append((mid, pm, b, pb))
        stack.append((a, pa, mid, pm))
    return out


class _Delta(Schedule):
    delta: PositiveFloat = 0.02
    multiplier: int = Field(default=2, ge=2, le=MAX_EPOCHS, strict=True)
    distance: Literal["normalized", "absolute"] = "normalized"
    primary: str | None = None  # estimator label whose estimates drive the distance (default: the first)
    max_evaluations: int | None = Field(default=None, ge=2, le=MAX_EPOCHS + 1, strict=True)

    def primary_estimator(self) -> str | None:
        return self.primary

    def max_measurements(self, n_epochs):
        return min(n_epochs + 1, self.max_evaluations or n_epochs + 1)

    def _plan(self, n_epochs, h_x, h_y, backtrack: bool, shrink: bool) -> DeltaPlan:
        hx, hy = (h_x, h_y) if self.distance == "normalized" else (1.0, 1.0)
        delta = self.delta

        def close(p, q):
            return distance(p, q, hx, hy) <= delta

        budget = Budget(np.inf if self.max_evaluations is None else self.max_evaluations)
        return DeltaPlan(n_epochs, self.multiplier, backtrack, shrink, close, budget)


class DeltaExact(_Delta):
    """Delta skip with backtracking: consecutive measured epochs are within delta or adjacent.

    ``snapshot_mb`` bounds the weight snapshots kept for an open gap; the skip is
    capped so a gap never needs more (for the 12-bit net, 294 parameters, 256 MB
    would hold 200 000 epochs: no cap in practice).
    """

    kind: Literal["delta_exact"] = "delta_exact"
    shrink_after_backtrack: bool = False
    snapshot_mb: PositiveFloat = 256.0

    def snapshot_limit_mb(self) -> float | None:
        return self.snapshot_mb

    def plan(self, n_epochs, h_x=1.0, h_y=1.0):
        return self._plan(n_epochs, h_x, h_y, backtrack=True, shrink=self.shrink_after_backtrack)


class DeltaApprox(_Delta):
    """Delta skip without backtracking: skip grows while consecutive points stay within delta."""

    kind: Literal["delta_approx"] = "delta_approx"

    def plan(self, n_epochs, h_x=1.0, h_y=1.0):
        return self._plan(n_epochs, h_x, h_y, backtrack=False, shrink=False)
