"""Sweep files: the validated description of a set of trials.

A sweep file (``sweeps/<name>.yaml``) holds ``name``, ``description``, ``base``
(a full trial config), either ``grid`` (dotted trial-config key -> list of
values) or ``search`` (distributions for Optuna), ``seeds`` (a count or a list:
an explicit grid axis), ``resources`` per trial, named ``profiles`` (dotted
overrides of the sweep file; ``quick`` is required), ``claims`` (validated
here, see :mod:`ib_sweeps.claims`; judged by the analysis), ``max_failures``, ``max_concurrent``
and ``max_trials``. Unknown keys are errors, as in trial configs.

Size: a sweep may expand to at most ``max_trials`` trials (default
:data:`DEFAULT_MAX_TRIALS` = 10 000; at most :data:`MAX_TRIALS` = 1 000 000):
the grid's size (the product of its axis lengths times the number of seeds),
``search.n_trials`` and the values of a ``choice`` are counted, never expanded,
so an oversized sweep is refused at once. Raise the limit in the sweep file
(``max_trials: 50000``) or on the command line (``--set max_trials=50000``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator, StringConstraints, ValidationInfo, model_validator

from ib_sweeps.claims import Claim
from ib_sweeps.types import FROZEN, Float, Int, PositiveInt, Seed, Str

Name = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
SEED_AXIS = "seed"
DEFAULT_MAX_TRIALS = 10_000
MAX_TRIALS = 1_000_000  # each trial's config is validated and held before Ray starts
MAX_ARRAY = 4096  # replicas of one trial array (about what fills one large GPU with the 12-bit nets)


def _array_size(v):
    if v == "auto" or (type(v) is int and 1 <= v <= MAX_ARRAY):
        return v
    allowed = f"auto, or a whole number of trials 1 .. {MAX_ARRAY} (1: one network per trial)"
    raise ValueError(f"got {v!r}; allowed: {allowed}")


class Resources(BaseModel):
    """What one Ray trial reserves: whole CPUs (TensorFlow's thread pools are capped to them) and a GPU share.

    With trial arrays a Ray trial trains ``array_size`` networks (at most) in that share.
    """

    model_config = FROZEN
    cpus: PositiveInt = 1
    gpus: Annotated[Float, Field(ge=0, le=8)] | Annotated[Int, Field(ge=0, le=8)] = 0
    # Trials trained together as one compiled program (:mod:`ib_sweeps.sweep.arrays`): 1 = one network per
    # trial; "auto" = chosen from the grid, the model size and the device. Not part of the invocation's hash.
    array_size: Annotated[int | str, PlainValidator(_array_size)] = "auto"


class Distribution(BaseModel):
    """One searched parameter: ``uniform``/``loguniform`` (low, high), ``int`` (low, high) or ``choice`` (values)."""

    model_config = FROZEN
    kind: Literal["uniform", "loguniform", "int", "choice"]
    low: Float | Int | None = None
    high: Float | Int | None = None
    values: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _fields(self):
        if self.kind == "choice":
            if self.values is None or self.low is not None or self.high is not None:
                raise ValueError("values: kind choice takes 'values' (a list) and no low/high")
            return self
        if self.values is not None or self.low is None or self.high is None:
            raise ValueError(f"low: kind {self.kind} takes 'low' and 'high' and no values")
        if not self.low < self.high:
            raise ValueError(f"high: must be greater than low = {self.low}; got {self.high}")
        if self.kind == "loguniform" and self.low <= 0:
            raise ValueError(f"low: loguniform needs low > 0; got {self.low}")
        if self.kind == "int" and not (type(self.low) is int and type(self.high) is int):
            raise ValueError(f"low: kind int needs integer low and high; got {self.low!r}, {self.high!r}")
        return self

    def bounds(self) -> list:
        """Values that validation tries: the ends of a range, or every choice."""
        return list(self.values) if self.kind == "choice" else [self.low, self.high]


class Objective(BaseModel):
    """Trial metric to optimise, e.g. ``compression/binning/last_hidden`` (see :mod:`ib_sweeps.sweep.summary`)."""

    model_config = FROZEN
    metric: Str
    mode: Literal["max", "min"]


class Search(BaseModel):
    """Optuna search instead of a grid: ``n_trials`` configs drawn to optimise ``objective``."""

    model_config = FROZEN
    params: Annotated[dict[str, Distribution], Field(min_length=1)]
    objective: Objective
    n_trials: PositiveInt
    sampler_seed: Annotated[Int, Field(ge=0, le=2**32 - 1)] = 0  # Optuna's samplers take 32-bit seeds


class SweepSpec(BaseModel):
    """A parsed sweep file (before profiles and overrides are applied, or after)."""

    model_config = FROZEN
    name: Name
    description: Annotated[str, StringConstraints(strict=True, min_length=1)]
    base: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = None
    search: Search | None = None
    seeds: PositiveInt | Annotated[list[Seed], Field(min_length=1)] = 1
    resources: Resources = Resources()
    profiles: dict[Name, dict[str, Any]] = {}
    claims: list[Claim] = []
    max_failures: Annotated[Int, Field(ge=0)] = 0
    max_concurrent: PositiveInt | None = None
    max_trials: Annotated[Int, Field(gt=0, le=MAX_TRIALS)] | None = None  # None: DEFAULT_MAX_TRIALS (not dumped)

    @model_validator(mode="after")
    def _size(self, info: ValidationInfo):
        """Counted, not expanded; skipped (context ``{"sized": False}``) for a file read only for its profiles."""
        if (info.context or {}).get("sized", True):
            problem = self._size_problem()
            if problem:
                raise ValueError(problem)
        return self

    def _size_problem(self) -> str | None:
        """Why the sweep expands to too many trials (``key: ...``), or None."""
        limit = self.max_trials or DEFAULT_MAX_TRIALS
        allowed = (
            f"allowed: at most {limit:,} trials (max_trials; raise it in the sweep file, max_trials: N, or with "
            f"--set max_trials=N, up to {MAX_TRIALS:,})"
        )
        if self.search is not None:
            if self.search.n_trials > limit:
                return f"search: n_trials is {self.search.n_trials:,}; {allowed}"
            for name, dist in self.search.params.items():
                if dist.values is not None and len(dist.values) > limit:
                    return f"search: params.{name} has {len(dist.values):,} choices; {allowed}"
            return None
        n_seeds = self.seeds if isinstance(self.seeds, int) else len(self.seeds)
        sizes = [len(v) for v in (self.grid or {}).values()]
        total = math.prod(sizes) * n_seeds
        if total <= limit:
            return None
        key = "seeds" if n_seeds > limit else "grid"
        axes = [f"{axis} ({n})" for axis, n in zip(self.grid or {}, sizes, strict=True)]
        factors = " x ".join([*axes, f"seeds ({n_seeds})"])
        return f"{key}: expands to {total:,} trials ({factors}); {allowed}"

    @model_validator(mode="after")
    def _shape(self):
        if (self.grid is None) == (self.search is None):
            raise ValueError("grid: a sweep declares exactly one of 'grid' (axes of values) or 'search' (Optuna)")
        if self.grid is not None and not self.grid:
            raise ValueError("grid: is empty; allowed: at least one axis, e.g. model.activation: [tanh, relu]")
        if "quick" not in self.profiles:
            raise ValueError("profiles: needs a 'quick' profile (small epochs and seeds, a few minutes on 2 cores)")
        axes = list(self.grid or {}) + list(self.search.params if self.search else {})
        if SEED_AXIS in axes:
            raise ValueError("grid: 'seed' is not an axis here; declare seeds with the top-level 'seeds' key")
        if isinstance(self.seeds, list) and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: repeat; got {self.seeds}")
        for axis, values in (self.grid or {}).items():
            reprs = [repr(v) for v in values]
            if len(set(reprs)) != len(reprs):
                raise ValueError(f"grid: axis {axis!r} repeats a value; got {values}")
        return self

    def seed_list(self) -> list[int]:
        """The seeds axis as a list (a count n means seeds 0 .. n-1)."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def axes(self) -> dict[str, list]:
        """Grid axes plus the seed axis, in file order (seed last)."""
        return {**(self.grid or {}), SEED_AXIS: self.seed_list()}
