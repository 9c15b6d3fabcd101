"""The claim base model, the :class:`Verdict` a claim yields and the driver every kind shares.

Data contract: ``table`` is a compression table, one row per trial x layer x
estimator, as :func:`ib_sweeps.analysis.stats.compression_table` makes it:
columns ``run_id``, ``estimator``, ``layer``, ``is_output``, ``is_last_hidden``,
the sweep's axes, ``condition`` and the per-trial statistics (in bits, epochs or
fractions: :data:`UNITS`). Seeds are the unit of replication: one row per seed,
condition and layer, and intervals are over trials. Nothing here reads MLflow.

A kind is a subclass of :class:`BaseClaim` with ``kind: Literal["<name>"]``, its
fields and three methods: :meth:`~BaseClaim.statement` (its title),
:meth:`~BaseClaim.judge_layer` (the verdict on one layer, with its numbers) and
:meth:`~BaseClaim.reason`. :meth:`BaseClaim.evaluate` runs what every kind
shares: judge each layer, refute when one layer refutes, support when all
support, collect the trials behind the verdict.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, StringConstraints

from ib_sweeps.claims.intervals import t_mean, welch, wilson
from ib_sweeps.types import FROZEN, Float, Str

SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"

LayerRef = Annotated[str, StringConstraints(strict=True, pattern=r"^(last_hidden|output|hidden|layer_[1-9][0-9]*)$")]
Fraction = Annotated[Float, Field(gt=0, le=1)]
Level = Annotated[Float, Field(gt=0, lt=1)]
# Per-trial statistics a claim may compare (columns of the compression table) and their units: information
# in bits, ``fitting_epochs`` in epochs, ``compression_rel`` and the accuracies (at the last measured epoch)
# as fractions. A claim's ``tolerance_bits`` is in its statistic's unit.
UNITS = {
    "compression": "bits", "compression_rel": "", "ixt_peak": "bits", "ixt_final": "bits", "iyt_final": "bits",
    "iyt_peak": "bits", "fitting_epochs": "epochs", "accuracy_test_final": "", "accuracy_train_final": "",
    "generalisation_gap": "",
}  # fmt: skip
STATISTICS = tuple(UNITS)
Statistic = Literal[STATISTICS]  # type: ignore[valid-type]
# (threshold_bits, threshold_rel) of the compression table a claim without its own thresholds is judged on.
DEFAULT_THRESHOLDS = (0.1, 0.05)


@dataclass
class Verdict:
    """The outcome of one claim: ``verdict``, a one-line ``reason`` and the deciding ``numbers``."""

    index: int
    kind: str
    title: str
    verdict: str
    reason: str
    numbers: dict = field(default_factory=dict)
    trials: list = field(default_factory=list)  # run ids of the trials behind the verdict
    details: list = field(default_factory=list)  # per layer (and per axis value where relevant)
    claim: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=_plain))


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


class BaseClaim(BaseModel):
    """What every claim names: trials (``where``: axis values), ``layers`` and an ``estimator``."""

    model_config = FROZEN
    name: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = None
    where: dict[str, Any] = {}
    layers: Annotated[list[LayerRef], Field(min_length=1)] = ["last_hidden"]
    estimator: Str | None = None  # None: the sweep's first estimator
    estimator_key: ClassVar[str] = "estimator"  # the key an unmeasured estimator is reported under
    if TYPE_CHECKING:
        kind: str  # each kind declares ``kind: Literal["<name>"]``, the union's tag

    def estimators(self) -> list[str | None]:
        return [self.estimator]

    def compared_axis(self) -> str | None:
        """The axis whose values this claim compares (None here; kinds with an ``axis`` field return it)."""
        return None

    def axes(self) -> list[str]:
        """Sweep axes this claim names (checked against the sweep)."""
        axis = self.compared_axis()
        return list(self.where) + ([axis] if axis else [])

    def value_problems(self, axes: dict[str, list | None]) -> list[tuple[str, str]]:
        """(field, message) for axis values this claim names beyond ``where`` that the sweep lacks (none here).

        ``axes``: axis -> its values (``None`` for a searched range), as in
        :func:`ib_sweeps.claims.problems`.
        """
        return []

    def thresholds(self) -> tuple[float, float]:
        """(threshold_bits, threshold_rel) of the compression table this claim is judged on."""
        return DEFAULT_THRESHOLDS

    def title(self, default_estimator: str | None = None) -> str:
        """A readable one-line statement of the claim (its ``name`` if given)."""
        return self.name or self.statement(self.estimator or default_estimator or "first estimator")

    @abstractmethod
    def statement(self, estimator: str) -> str:
        """The claim in words, for a claim judged with ``estimator``."""

    @abstractmethod
    def judge_layer(self, table, ref: str, default: str) -> tuple[dict, Iterable[str]]:
        """(details with at least ``verdict``, run ids behind them) for layer ``ref`` of ``table``."""

    @abstractmethod
    def reason(self, details: list[dict]) -> str:
        """One line saying why, from the per-layer details (each with its ``layer``)."""

    def evaluate(self, table, default: str) -> Verdict:
        """The verdict on a compression table; ``default``: the estimator when the claim names none."""
        details: list[dict] = []
        trials: set[str] = set()
        for ref in self.layers:
            detail, ids = self.judge_layer(table, ref, default)
            details.append({"layer": ref} | detail)
            trials.update(ids)
        verdict = combine([d["verdict"] for d in details])
        numbers = details[0] if len(details) == 1 else {"layers": details}
        return Verdict(0, self.kind, "", verdict, self.reason(details), numbers, sorted(trials), details)

    # -- helpers for kinds ---------------------------------------------------------------------------

    def rows(self, table, ref: str, estimator: str):
        """Rows of ``table`` measured by ``estimator`` on layer ``ref`` of the trials ``where`` names."""
        rows = table[table["estimator"] == estimator]
        for key, value in self.where.items():
            if key not in rows:
                return rows.iloc[0:0]
            rows = rows[rows[key].map(lambda v, want=value: canon(v) == canon(want))]
        return rows[layer_mask(rows, ref)]

    def layers_text(self) -> str:
        return ", ".join(self.layers)

    def where_text(self) -> str:
        where = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.where.items())
        return f" where {where}" if where else ""


class Onset(BaseClaim):
    """Claims that decide whether a layer compresses: a drop from the peak beyond the threshold, kept to the end."""

    threshold_bits: Annotated[Float, Field(ge=0)] = 0.1
    threshold_rel: Annotated[Float, Field(ge=0, lt=1)] = 0.05
    min_fraction: Fraction = 0.5
    confidence: Level = 0.95

    def thresholds(self) -> tuple[float, float]:
        return self.threshold_bits, self.threshold_rel

    def fraction_rule(self, k: int, n: int) -> tuple[str, float, float]:
        """(verdict, low, high): supported when the Wilson interval of k/n is at or above ``min_fraction``."""
        lo, hi = wilson(k, n, self.confidence)
        if n == 0:
            return INCONCLUSIVE, lo, hi
        if lo >= self.min_fraction:
            return SUPPORTED, lo, hi
        if hi < self.min_fraction:
            return REFUTED, lo, hi
        return INCONCLUSIVE, lo, hi


def layer_mask(table, ref: str):
    """Mask of a compression table's rows for ``last_hidden``, ``output``, ``hidden`` or ``layer_k``."""
    if ref == "last_hidden":
        return table["is_last_hidden"] & ~table["is_output"]
    if ref == "output":
        return table["is_output"]
    if ref == "hidden":
        return ~table["is_output"]
    return table["layer"] == ref


def canon(value) -> str:
    """An axis value as canonical JSON (so that 3, 3.0 and [10, 7] compare as in the sweep file)."""
    return json.dumps(value, sort_keys=True)


def label(value) -> str:
    """An axis value as shown: strings as they are, anything else as canonical JSON."""
    return value if isinstance(value, str) else canon(value)


def combine(layer_verdicts: list[str]) -> str:
    """Refuted when one layer refutes, supported when every layer supports, else inconclusive."""
    if REFUTED in layer_verdicts:
        return REFUTED
    if layer_verdicts and all(v == SUPPORTED for v in layer_verdicts):
        return SUPPORTED
    return INCONCLUSIVE


def unit(statistic: str) -> str:
    """`` bits``, `` epochs`` or ``""`` (a fraction): ``statistic``'s unit as written after a number."""
    return f" {UNITS[statistic]}" if UNITS.get(statistic) else ""


def fmt(x: float, digits: int = 2) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def groups(sub, axis: str, statistic: str, order: list | None = None) -> dict:
    """Axis value (canonical JSON) -> (label, ``statistic`` over the trials of ``sub`` with that value).

    In ``order`` (axis values; a claim's ``values``) where given, else numbers ascending, then the rest by their
    canonical JSON: the same order whatever order the store returns the trials in, so reports read alike.
    """
    out: dict = {}
    for value, stat in zip(sub[axis], sub[statistic], strict=True):
        out.setdefault(canon(value), (value, label(value), []))[2].append(float(stat))
    rank = {canon(v): i for i, v in enumerate(order or [])}

    def key(item):
        k, (value, _, _) = item
        number = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
        return (rank.get(k, len(rank)), not number, float(value) if number else 0.0, k)

    return {k: (lab, np.asarray(v)) for k, (_, lab, v) in sorted(out.items(), key=key)}


def pairwise(groups: dict, confidence: float) -> list[dict]:
    """Welch interval of the difference of means for every pair of :func:`groups`."""
    pairs = []
    for (_, (la, a)), (_, (lb, b)) in itertools.combinations(groups.items(), 2):
        diff, lo, hi = welch(a, b, confidence)
        pairs.append({"a": la, "b": lb, "diff": diff, "ci_low": lo, "ci_high": hi})
    return pairs


def per_value(groups: dict) -> list[dict]:
    """Mean of each of :func:`groups` with its 95 % t interval over seeds (:func:`t_mean`)."""
    out = []
    for lab, values in groups.values():
        mean, lo, hi = t_mean(values, 0.95)
        out.append({"value": lab, "n": len(values), "mean": mean, "ci_low": lo, "ci_high": hi})
    return out


def judge(claims: list[BaseClaim], table_for: Callable[[tuple[float, float]], Any], default: str) -> list[Verdict]:
    """One verdict per validated claim, numbered in order and titled.

    ``table_for``: thresholds (:meth:`BaseClaim.thresholds`) -> compression
    table; ``default``: the estimator of claims that name none.
    """
    out = []
    for i, claim in enumerate(claims):
        verdict = claim.evaluate(table_for(claim.thresholds()), default)
        verdict.index, verdict.title = i, claim.title(default)
        verdict.claim = claim.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {"kind": claim.kind}
        out.append(verdict)
    return out
