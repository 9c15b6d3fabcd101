"""Sweeps: a sweep file fanned out as Ray Tune trials, each an MLflow child run of one parent per invocation.

>>> from ib_sweeps import sweep
>>> s = sweep.load("smoke", profile="quick", overrides=["train.epochs=20"])
>>> outcome = sweep.run_sweep(s)            # Ray Tune; returns counts and the parent run id
"""

from ib_sweeps.sweep.load import Sweep, Trial, find, load, names
from ib_sweeps.sweep.runner import Outcome, run_sweep
from ib_sweeps.sweep.spec import SweepSpec

__all__ = ["Outcome", "Sweep", "SweepSpec", "Trial", "find", "load", "names", "run_sweep"]
