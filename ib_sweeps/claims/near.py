"""``near``: the mean of ``statistic`` over the trials lies within ``value`` ± ``tolerance``.

Per layer, the Student t interval (at ``confidence``) of the mean over the
trials ``where`` names, one per seed (:func:`~ib_sweeps.claims.intervals.t_mean`):
supported when the whole interval lies within value ± tolerance (an
equivalence test: nearness is shown, not read from a non-significant
difference), refuted when it lies wholly outside, else inconclusive (also
with fewer than two trials). ``tolerance`` is in the statistic's unit
(:data:`~ib_sweeps.claims.base.UNITS`). Goldfeld et al. (ICML 2019): I(X;T) of
their single noisy neuron is first near H(X), then near H(1/4, 3/4).
"""

from __future__ import annotations

import math
from typing import Literal

from ib_sweeps.claims.base import INCONCLUSIVE, REFUTED, SUPPORTED, BaseClaim, Level, Statistic, fmt, unit
from ib_sweeps.claims.intervals import t_mean
from ib_sweeps.types import Float, PositiveFloat


class Near(BaseClaim):
    kind: Literal["near"]
    statistic: Statistic
    value: Float
    tolerance: PositiveFloat  # in the statistic's unit
    confidence: Level = 0.95

    def statement(self, estimator: str) -> str:
        return (
            f"{self.statistic} of {self.layers_text()} is near {self.value:g} "
            f"(within {self.tolerance:g}{unit(self.statistic)}){self.where_text()} ({estimator})"
        )

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default)
        sub = sub.dropna(subset=[self.statistic]) if self.statistic in sub else sub.iloc[0:0]
        mean, lo, hi = t_mean(sub[self.statistic] if len(sub) else [], self.confidence)
        low, high = self.value - self.tolerance, self.value + self.tolerance
        if math.isnan(lo):
            verdict = INCONCLUSIVE
        elif low <= lo and hi <= high:
            verdict = SUPPORTED
        elif hi < low or lo > high:
            verdict = REFUTED
        else:
            verdict = INCONCLUSIVE
        detail = {"verdict": verdict, "n": len(sub), "mean": mean, "ci_low": lo, "ci_high": hi,
                  "low": low, "high": high}  # fmt: skip
        return detail, sub["run_id"]

    def reason(self, details):
        if not any(d["n"] for d in details):
            return "no finished trial matches the claim's conditions and estimator"
        u = unit(self.statistic)
        where = {SUPPORTED: "lies within", REFUTED: "lies wholly outside", INCONCLUSIVE: "straddles an end of"}

        def one(d: dict) -> str:
            ends = f"[{fmt(d['low'], 3)}, {fmt(d['high'], 3)}]"
            how = f"{where[d['verdict']]} {ends}" if d["n"] >= 2 else f"needs >= 2 trials to judge against {ends}"
            return (
                f"{d['layer']}: mean {self.statistic} {fmt(d['mean'], 3)}{u} over {d['n']} trials, "
                f"{self.confidence:.0%} t interval [{fmt(d['ci_low'], 3)}, {fmt(d['ci_high'], 3)}] {how}"
            )

        return "; ".join(one(d) for d in details)
