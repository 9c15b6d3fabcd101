"""``stable_across: AXIS``: no two of the axis's values differ in ``statistic`` by more than ``tolerance_bits``.

Per layer, the Welch interval (at ``confidence``) of every pairwise difference
of means: supported when all lie within ±tolerance (two one-sided tests),
refuted when one lies wholly outside, else inconclusive (more seeds needed).
``values``: compare only these of the axis's values (at least two; checked
against the sweep). ``tolerance_bits`` is in the statistic's unit
(:data:`~ib_sweeps.claims.base.UNITS`): bits for information, a fraction for
the accuracies and ``compression_rel``, epochs for ``fitting_epochs``; the name
is kept so that older sweep files stay valid.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ib_sweeps.claims.base import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    BaseClaim,
    Level,
    Statistic,
    canon,
    fmt,
    groups,
    label,
    pairwise,
    per_value,
    unit,
)
from ib_sweeps.types import PositiveFloat, Str


class StableAcross(BaseClaim):
    kind: Literal["stable_across"]
    axis: Str
    values: Annotated[list[Any], Field(min_length=2)] | None = None  # None: every value of the axis
    statistic: Statistic = "compression"
    tolerance_bits: PositiveFloat  # in the statistic's unit (bits, epochs or a fraction)
    confidence: Level = 0.90  # two one-sided tests at 5 % each

    @field_validator("values")
    @classmethod
    def _distinct(cls, values):
        if values is not None and len({canon(v) for v in values}) < 2:
            raise ValueError(f"needs at least 2 distinct axis values to compare; got {values}")
        return values

    def compared_axis(self) -> str | None:
        return self.axis

    def value_problems(self, axes):
        allowed = axes.get(self.axis)
        if self.values is None or allowed is None:  # not an axis (reported by claims.problems) or a searched range
            return []
        return [
            (f"values[{i}]", f"got {v!r}; allowed: one of the axis {self.axis}'s values {allowed}")
            for i, v in enumerate(self.values)
            if v not in allowed
        ]

    def statement(self, estimator: str) -> str:
        among = f" ({', '.join(label(v) for v in self.values)})" if self.values else ""
        return (
            f"{self.statistic} of {self.layers_text()} is stable across {self.axis}{among} "
            f"(within {self.tolerance_bits:g}{unit(self.statistic)}){self.where_text()} ({estimator})"
        )

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default).dropna(subset=[self.statistic])
        if self.values is not None and len(sub):
            wanted = {canon(v) for v in self.values}
            sub = sub[sub[self.axis].map(lambda v: canon(v) in wanted)]
        by_value = groups(sub, self.axis, self.statistic, self.values)
        pairs = pairwise(by_value, self.confidence)
        d = {"per_value": per_value(by_value), "pairs": pairs}
        tol, level, u = self.tolerance_bits, f"{self.confidence:.0%}", unit(self.statistic)
        n = 2 if u else 3  # digits: fractions (accuracies) are compared at tolerances of a few hundredths
        if len(by_value) < 2:
            d.update(verdict=INCONCLUSIVE, why="needs >= 2 axis values")
        elif any(q["ci_low"] > tol or q["ci_high"] < -tol for q in pairs):
            q = max(pairs, key=lambda q: min(abs(q["ci_low"]), abs(q["ci_high"])))
            d.update(verdict=REFUTED, why=f"{q['a']} vs {q['b']} differ by {fmt(q['diff'], n)}{u}, "
                     f"{level} CI [{fmt(q['ci_low'], n)}, {fmt(q['ci_high'], n)}] outside ±{tol:g}")  # fmt: skip
        elif all(-tol <= q["ci_low"] and q["ci_high"] <= tol for q in pairs):
            biggest = max(abs(q["diff"]) for q in pairs)
            d.update(verdict=SUPPORTED, why=f"every pairwise {level} CI within ±{tol:g}{u} "
                     f"(largest difference {fmt(biggest, n)})")  # fmt: skip
        else:
            q = next(q for q in pairs if not (-tol <= q["ci_low"] and q["ci_high"] <= tol))
            d.update(verdict=INCONCLUSIVE, why=f"{q['a']} vs {q['b']}: difference {fmt(q['diff'], n)}{u}, CI "
                     f"[{fmt(q['ci_low'], n)}, {fmt(q['ci_high'], n)}] neither within nor outside ±{tol:g} "
                     "(more seeds needed)")  # fmt: skip
        return d, sub["run_id"]

    def reason(self, details):
        return "; ".join(f"{d['layer']}: {d['why']}" for d in details)
