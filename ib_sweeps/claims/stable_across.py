"""``stable_across: AXIS``: no two of the axis's values differ in ``statistic`` by more than ``tolerance_bits``.

Per layer, the Welch interval (at ``confidence``) of every pairwise difference
of means: supported when all lie within ±tolerance (two one-sided tests),
refuted when one lies wholly outside, else inconclusive (more seeds needed).
"""

from __future__ import annotations

from typing import Literal

from ib_sweeps.claims.base import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    BaseClaim,
    Level,
    Statistic,
    fmt,
    groups,
    pairwise,
    per_value,
)
from ib_sweeps.types import PositiveFloat, Str


class StableAcross(BaseClaim):
    kind: Literal["stable_across"]
    axis: Str
    statistic: Statistic = "compression"
    tolerance_bits: PositiveFloat
    confidence: Level = 0.90  # two one-sided tests at 5 % each

    def compared_axis(self) -> str | None:
        return self.axis

    def statement(self, estimator: str) -> str:
        return (
            f"{self.statistic} of {self.layers_text()} is stable across {self.axis} "
            f"(within {self.tolerance_bits:g} bits){self.where_text()} ({estimator})"
        )

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default).dropna(subset=[self.statistic])
        by_value = groups(sub, self.axis, self.statistic)
        pairs = pairwise(by_value, self.confidence)
        d = {"per_value": per_value(by_value), "pairs": pairs}
        tol, level = self.tolerance_bits, f"{self.confidence:.0%}"
        if len(by_value) < 2:
            d.update(verdict=INCONCLUSIVE, why="needs >= 2 axis values")
        elif any(q["ci_low"] > tol or q["ci_high"] < -tol for q in pairs):
            q = max(pairs, key=lambda q: min(abs(q["ci_low"]), abs(q["ci_high"])))
            d.update(verdict=REFUTED, why=f"{q['a']} vs {q['b']} differ by {fmt(q['diff'])} bits, "
                     f"{level} CI [{fmt(q['ci_low'])}, {fmt(q['ci_high'])}] outside ±{tol:g}")  # fmt: skip
        elif all(-tol <= q["ci_low"] and q["ci_high"] <= tol for q in pairs):
            biggest = max(abs(q["diff"]) for q in pairs)
            d.update(verdict=SUPPORTED, why=f"every pairwise {level} CI within ±{tol:g} bits "
                     f"(largest difference {fmt(biggest)})")  # fmt: skip
        else:
            q = next(q for q in pairs if not (-tol <= q["ci_low"] and q["ci_high"] <= tol))
            d.update(verdict=INCONCLUSIVE, why=f"{q['a']} vs {q['b']}: difference {fmt(q['diff'])} bits, CI "
                     f"[{fmt(q['ci_low'])}, {fmt(q['ci_high'])}] neither within nor outside ±{tol:g} "
                     "(more seeds needed)")  # fmt: skip
        return d, sub["run_id"]

    def reason(self, details):
        return "; ".join(f"{d['layer']}: {d['why']}" for d in details)
