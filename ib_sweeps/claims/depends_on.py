"""``depends_on: AXIS``: ``statistic`` differs across the axis's values.

Per layer, a Kruskal-Wallis test (or its permutation version) over the trials
grouped by axis value: supported when p < ``alpha``; refuted when, with
``tolerance_bits`` set, every pairwise Welch interval at 1 - 2 alpha lies
within ±tolerance (an equivalence test); else inconclusive.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

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
from ib_sweeps.types import PositiveFloat, PositiveInt, Str


class DependsOn(BaseClaim):
    kind: Literal["depends_on"]
    axis: Str
    statistic: Statistic = "compression"
    test: Literal["kruskal", "permutation"] = "kruskal"
    alpha: Level = 0.05
    tolerance_bits: PositiveFloat | None = None  # refuted when every pairwise difference is shown below it
    n_resamples: PositiveInt = 9999
    seed: Annotated[int, Field(ge=0)] = 0

    def compared_axis(self) -> str | None:
        return self.axis

    def statement(self, estimator: str) -> str:
        return f"{self.statistic} of {self.layers_text()} depends on {self.axis}{self.where_text()} ({estimator})"

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default).dropna(subset=[self.statistic])
        by_value = groups(sub, self.axis, self.statistic)
        samples = [v for _, v in by_value.values()]
        d = {"per_value": per_value(by_value), "test": self.test}
        if len(samples) < 2 or min(len(s) for s in samples) < 2:
            d.update(verdict=INCONCLUSIVE, p_value=math.nan, why="needs >= 2 axis values with >= 2 seeds each")
            return d, sub["run_id"]
        h, p = self._test(samples)
        n = sum(len(s) for s in samples)
        d.update(statistic=float(h), p_value=float(p), epsilon_squared=float(h) / (n - 1) if n > 1 else math.nan)
        if p < self.alpha:
            d.update(verdict=SUPPORTED, why=f"p = {p:.3g} < alpha = {self.alpha:g}")
            return d, sub["run_id"]
        d["pairs"] = pairwise(by_value, 1 - 2 * self.alpha)
        tol = self.tolerance_bits
        if tol is not None and all(-tol <= q["ci_low"] and q["ci_high"] <= tol for q in d["pairs"]):
            d.update(verdict=REFUTED, why=f"p = {p:.3g}, and every difference is within ±{tol:g} bits")
        else:
            extra = "" if tol is not None else "; set tolerance_bits to be able to refute"
            d.update(verdict=INCONCLUSIVE, why=f"p = {p:.3g} >= alpha = {self.alpha:g}, no equivalence{extra}")
        return d, sub["run_id"]

    def _test(self, samples: list[np.ndarray]) -> tuple[float, float]:
        """(H, p) of Kruskal-Wallis, or of its permutation test; (0, 1) when every value is the same."""
        from scipy.stats import kruskal, permutation_test

        allv = np.concatenate(samples)
        if np.all(allv == allv[0]):
            return 0.0, 1.0
        if self.test == "kruskal":
            return kruskal(*samples)
        res = permutation_test(
            samples, lambda *s: kruskal(*s).statistic, n_resamples=self.n_resamples, alternative="greater",
            rng=self.seed,
        )  # fmt: skip
        return res.statistic, res.pvalue

    def reason(self, details):
        def means(d: dict) -> str:
            return ", ".join(
                f"{q['value']} {fmt(q['mean'])} [{fmt(q['ci_low'])}, {fmt(q['ci_high'])}]" for q in d["per_value"]
            )

        return "; ".join(f"{d['layer']}: {means(d)} ({d['why']})" for d in details)
