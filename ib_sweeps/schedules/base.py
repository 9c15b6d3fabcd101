"""The schedule plug-in contract.

A schedule is a frozen, validated model. ``plan(n_epochs, h_x, h_y)`` starts a
:class:`Plan`, the small state machine a trial drives: ``next()`` names the next
epoch to train to and measure (``None`` when done), ``observe(epoch, point)``
reports the measurement and may return a gap to fill in by backtracking.
Fixed schedules also offer ``epochs(n_epochs)``, the pure list of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel

from ib_sweeps.types import FROZEN


@dataclass(frozen=True)
class Gap:
    """Measured epochs ``a`` < ``b`` whose points are farther apart than delta."""

    a: int
    point_a: np.ndarray
    b: int
    point_b: np.ndarray


class Plan:
    """Which epoch to measure next. Epoch 0 is the untrained network."""

    needs_snapshots = False  # whether backtracking needs the weights of unmeasured epochs
    max_gap = None  # largest step between scheduled epochs (None: unbounded)
    # Set by plans that backtrack (needs_snapshots): ``close(p, q) -> bool`` says two points (2, n_layers)
    # need no epoch between them; ``budget`` (a ``delta.Budget``) counts the measurements left.
    close = None
    budget = None

    def next(self) -> int | None:
        raise NotImplementedError

    def observe(self, epoch: int, point: np.ndarray) -> Gap | None:
        """Record the measurement of a scheduled epoch; ``point`` is (2, n_layers) in bits."""
        return None


@dataclass
class FixedPlan(Plan):
    """Walks a precomputed list of epochs."""

    epochs: list[int]
    _i: int = field(default=0, repr=False)

    def next(self) -> int | None:
        if self._i >= len(self.epochs):
            return None
        self._i += 1
        return self.epochs[self._i - 1]


class Schedule(BaseModel):
    """Base class of all schedules. Subclasses set ``kind: Literal[name]`` and implement ``_grid`` or ``plan``.

    The hooks below have the defaults of a fixed grid; a schedule that needs
    more of the trial (an estimator to follow, epochs it names, snapshot
    memory) overrides them, so the trial asks every schedule the same way.
    """

    model_config = FROZEN

    def primary_estimator(self) -> str | None:
        """Label of the estimator whose estimates drive the schedule; None: the first, or none needed."""
        return None

    def listed_epochs(self) -> tuple[int, ...]:
        """Epochs the config names one by one (each must be <= train.epochs); () for a computed grid."""
        return ()

    def snapshot_limit_mb(self) -> float | None:
        """Megabytes of weight snapshots a plan may keep to backtrack over a gap; None: it keeps none."""
        return None

    def plan(self, n_epochs: int, h_x: float = 1.0, h_y: float = 1.0) -> Plan:
        """Start a plan for a run of ``n_epochs`` (H(X), H(Y) in bits scale distances)."""
        return FixedPlan([int(e) for e in self.epochs(n_epochs)])

    def max_measurements(self, n_epochs: int) -> int:
        """At most how many epochs a run of ``n_epochs`` measures (sizes the trace; computed, never listed)."""
        return n_epochs + 1

    def epochs(self, n_epochs: int) -> np.ndarray:
        """Sorted distinct int epochs in [0, n_epochs], always with 0 and n_epochs."""
        grid = np.asarray(self._grid(n_epochs), dtype=np.float64)
        grid = grid[(grid >= 0) & (grid <= n_epochs)]
        return np.unique(np.concatenate(([0, n_epochs], grid)).astype(np.int64))

    def _grid(self, n_epochs: int):
        raise NotImplementedError
