"""``estimator_agreement``: two estimators rank the conditions the same way by ``statistic``.

Per layer, the trials both estimators measured are grouped by condition (or by
``axis``); Spearman's rho between the two estimators' condition means, with an
expanded percentile bootstrap interval over seeds: each condition's resampled
means are spread about its mean by :func:`~ib_sweeps.claims.intervals.expansion`
(:meth:`EstimatorAgreement.spread`), as wide as its t interval: supported when
the interval lies at or above ``min_rho``, refuted when below. Simulated with 4
conditions (``benchmarks/coverage.py``, 500 replications), it covers the true
rho in at least 95.4 % of sweeps (the plain percentile bootstrap: 91.4 % at 5
seeds) and wrongly supports a true rho of 0.4 in at most 0.6 % (plain: 2.8 %);
the price is power at 5 seeds (a true rho of 1, conditions 1 SD apart: supported
in 5 % of sweeps against 43 %; at 20 seeds 99 % either way).
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ib_sweeps.claims.base import INCONCLUSIVE, REFUTED, SUPPORTED, BaseClaim, Level, Statistic, canon, label
from ib_sweeps.claims.intervals import expansion
from ib_sweeps.types import FROZEN, Float, PositiveInt, Str


class EstimatorAgreement(BaseClaim):
    kind: Literal["estimator_agreement"]
    estimators_: Annotated[list[Str], Field(min_length=2, max_length=2, alias="estimators")]
    axis: Str | None = None  # None: every condition (distinct config without the seed)
    statistic: Statistic = "compression"
    min_rho: Annotated[Float, Field(ge=-1, le=1)] = 0.5
    confidence: Level = 0.95
    n_resamples: PositiveInt = 2000
    seed: Annotated[int, Field(ge=0)] = 0
    model_config = FROZEN | {"populate_by_name": True}
    estimator_key: ClassVar[str] = "estimators"

    def compared_axis(self) -> str | None:
        return self.axis

    @model_validator(mode="after")
    def _two(self):
        if self.estimator is not None:
            raise ValueError("estimator: estimator_agreement names two 'estimators', not one 'estimator'")
        if self.estimators_[0] == self.estimators_[1]:
            raise ValueError(f"estimators: must be two different estimators; got {self.estimators_}")
        return self

    def estimators(self) -> list[str | None]:
        return list(self.estimators_)

    def statement(self, estimator: str) -> str:
        return (
            f"{' and '.join(self.estimators_)} rank {self.axis or 'condition'} alike by {self.statistic} "
            f"of {self.layers_text()}{self.where_text()}"
        )

    def judge_layer(self, table, ref, default):
        from scipy.stats import rankdata

        a_name, b_name = self.estimators()
        axis, stat = self.axis or "condition", self.statistic
        a = self.rows(table, ref, a_name)[["run_id", axis, stat]]
        b = self.rows(table, ref, b_name)[["run_id", stat]]
        paired = a.merge(b, on="run_id", suffixes=("_a", "_b")).dropna()
        conds: dict = {}
        for value, x, y in zip(paired[axis], paired[stat + "_a"], paired[stat + "_b"], strict=True):
            conds.setdefault(canon(value), (value, []))[1].append((x, y))
        labels = [label(v) for v, _ in conds.values()]
        data = [np.asarray(pairs) for _, pairs in conds.values()]
        d = {"conditions": labels, "n_trials": len(paired)}
        if len(data) < 2:
            d.update(verdict=INCONCLUSIVE, rho=math.nan, ci_low=math.nan, ci_high=math.nan,
                     why="needs >= 2 conditions measured by both estimators")  # fmt: skip
            return d, paired["run_id"]
        means = np.array([p.mean(axis=0) for p in data])  # (c, 2)
        rho = spearman(rankdata(means[:, 0]), rankdata(means[:, 1]))
        rng = np.random.default_rng(self.seed)
        boot = np.stack([self._resampled_means(p, rng) for p in data], axis=1)  # (B, c, 2)
        rhos = spearman(rankdata(boot[..., 0], axis=1), rankdata(boot[..., 1], axis=1))
        rhos = rhos[np.isfinite(rhos)]
        level = [0.5 - self.confidence / 2, 0.5 + self.confidence / 2]
        lo, hi = np.quantile(rhos, level) if len(rhos) else (math.nan, math.nan)
        d.update(rho=float(rho), ci_low=float(lo), ci_high=float(hi),
                 means={lab: m.tolist() for lab, m in zip(labels, means, strict=True)})  # fmt: skip
        interval = f"rho {rho:.2f}, expanded bootstrap CI [{lo:.2f}, {hi:.2f}]"
        if not np.isfinite(rho):
            d.update(verdict=INCONCLUSIVE, why="a statistic is the same in every condition: no ranking")
        elif lo >= self.min_rho:
            d.update(verdict=SUPPORTED, why=f"{interval} >= {self.min_rho}")
        elif hi < self.min_rho:
            d.update(verdict=REFUTED, why=f"{interval} < {self.min_rho}")
        else:
            d.update(verdict=INCONCLUSIVE, why=f"{interval} straddles {self.min_rho}")
        return d, paired["run_id"]

    def spread(self, n: int) -> float:
        """Factor on the bootstrap deviations of a mean of ``n`` seeds: :func:`expansion`, 1 for one seed."""
        return expansion(n, self.confidence) if n > 1 else 1.0

    def _resampled_means(self, pairs, rng):
        """(B, 2) bootstrap means of one condition's (seeds, 2) values, deviations scaled by :meth:`spread`."""
        n, mean = len(pairs), pairs.mean(axis=0)
        boot = pairs[rng.integers(0, n, size=(self.n_resamples, n))].mean(axis=1)
        return mean + self.spread(n) * (boot - mean)

    def reason(self, details):
        return "; ".join(f"{d['layer']} over {len(d['conditions'])} conditions: {d['why']}" for d in details)


def spearman(ra, rb):
    """Pearson correlation of ranks along the last axis (NaN where either side is constant)."""
    ra = ra - ra.mean(axis=-1, keepdims=True)
    rb = rb - rb.mean(axis=-1, keepdims=True)
    den = np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(-1) / np.where(den > 0, den, 1), np.nan)
