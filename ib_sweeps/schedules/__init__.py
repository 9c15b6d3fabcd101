"""Which epochs to measure: one registry from ``kind`` to schedule class.

Fixed grids (``every``, ``skip``, ``log``, ``piecewise``, ``list``) and adaptive
delta skipping (``delta_exact``, ``delta_approx``); see each module.
"""

from ib_sweeps.schedules.base import FixedPlan, Gap, Plan, Schedule
from ib_sweeps.schedules.delta import Budget, DeltaApprox, DeltaExact, backtrack, distance
from ib_sweeps.schedules.fixed import Every, Explicit, Log, Piecewise, Segment, Skip

REGISTRY: dict[str, type[Schedule]] = {
    "every": Every,
    "skip": Skip,
    "log": Log,
    "piecewise": Piecewise,
    "list": Explicit,
    "delta_exact": DeltaExact,
    "delta_approx": DeltaApprox,
}

__all__ = [
    "REGISTRY",
    "Budget",
    "DeltaApprox",
    "DeltaExact",
    "Every",
    "Explicit",
    "FixedPlan",
    "Gap",
    "Log",
    "Piecewise",
    "Plan",
    "Schedule",
    "Segment",
    "Skip",
    "backtrack",
    "distance",
]
