"""``trend: AXIS``: ``statistic`` rises (or falls) monotonically along an ordered, numeric axis.

Per layer, Spearman's rank correlation between the axis value and the
statistic over the trials (one per seed and value; ties ranked by their mean
rank), with scipy's two-sided p-value: supported when rho has the sign of
``direction`` and p < ``alpha``, refuted when it has the other sign and
p < ``alpha``, else inconclusive (no trend shown either way; more seeds or
values needed). Shwartz-Ziv & Tishby (2017, Fig. 4): larger training sets,
more compression and a higher final I(Y;T).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ib_sweeps.claims.base import INCONCLUSIVE, REFUTED, SUPPORTED, BaseClaim, Level, Statistic, fmt, groups, per_value
from ib_sweeps.types import Str


class Trend(BaseClaim):
    kind: Literal["trend"]
    axis: Str
    statistic: Statistic = "compression"
    direction: Literal["increasing", "decreasing"] = "increasing"
    alpha: Level = 0.05

    def compared_axis(self) -> str | None:
        return self.axis

    def statement(self, estimator: str) -> str:
        what = f"{self.statistic} of {self.layers_text()} is {self.direction} in {self.axis}"
        return f"{what}{self.where_text()} ({estimator})"

    def judge_layer(self, table, ref, default):
        from scipy.stats import spearmanr

        sub = self.rows(table, ref, self.estimator or default)
        if self.statistic not in sub or self.axis not in sub:
            sub = sub.iloc[0:0].assign(**{self.statistic: [], self.axis: []})
        sub = sub.dropna(subset=[self.statistic])
        d = {"per_value": per_value(groups(sub, self.axis, self.statistic)), "rho": math.nan, "p_value": math.nan}
        try:
            x = np.asarray([float(v) for v in sub[self.axis]], dtype=float) if len(sub) else np.zeros(0)
        except (TypeError, ValueError):
            d.update(verdict=INCONCLUSIVE, why=f"{self.axis} is not numeric")
            return d, sub["run_id"]
        d["per_value"].sort(key=lambda q: float(q["value"]))  # in the axis's order
        y = sub[self.statistic].to_numpy(float)
        if len(np.unique(x)) < 2 or len(x) < 3 or np.all(y == y[0]):
            d.update(verdict=INCONCLUSIVE, why="needs >= 3 trials over >= 2 axis values, and a varying statistic")
            return d, sub["run_id"]
        res = spearmanr(x, y)
        rho, p = float(res.statistic), float(res.pvalue)
        d.update(rho=rho, p_value=p, n=len(x))
        sign = 1 if self.direction == "increasing" else -1
        if p < self.alpha and sign * rho > 0:
            d.update(verdict=SUPPORTED, why=f"Spearman rho {fmt(rho)}, p = {p:.3g} < {self.alpha:g}")
        elif p < self.alpha:
            d.update(verdict=REFUTED, why=f"Spearman rho {fmt(rho)} (the other way), p = {p:.3g} < {self.alpha:g}")
        else:
            d.update(verdict=INCONCLUSIVE, why=f"Spearman rho {fmt(rho)}, p = {p:.3g} >= {self.alpha:g}")
        return d, sub["run_id"]

    def reason(self, details):
        def means(d: dict) -> str:
            return ", ".join(f"{q['value']} {fmt(q['mean'])}" for q in d["per_value"])

        return "; ".join(f"{d['layer']}: {means(d)} ({d['why']})" for d in details)
