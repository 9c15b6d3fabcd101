"""``compresses``: the layers compress in at least ``min_fraction`` of the trials.

Per layer, k of n trials compress (I(X;T) falls from its peak by more than the
threshold and stays down to the end); supported when the Wilson interval of
k/n lies at or above ``min_fraction``, refuted when it lies below.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from ib_sweeps.claims.base import Onset, fmt


class Compresses(Onset):
    kind: Literal["compresses"]
    compressing: ClassVar[bool] = True  # what a trial must do to count for the claim

    def statement(self, estimator: str) -> str:
        verb = "compresses" if len(self.layers) == 1 else "compress"
        return f"{self.layers_text()} {verb}{self.where_text()} ({estimator})"

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default)
        n, k = len(sub), int((sub["compresses"] == self.compressing).sum())
        verdict, lo, hi = self.fraction_rule(k, n)
        detail = {
            "verdict": verdict, "k": k, "n": n, "fraction": k / n if n else math.nan, "ci_low": lo, "ci_high": hi,
            "median_compression": float(sub["compression"].median()) if n else math.nan,
        }  # fmt: skip
        return detail, sub["run_id"]

    def reason(self, details):
        if not any(d["n"] for d in details):
            return "no finished trial matches the claim's conditions and estimator"
        what = "compress" if self.compressing else "do not compress"
        parts = [
            f"{d['layer']}: {d['k']}/{d['n']} trials {what} ({fmt(d['fraction'])}, "
            f"{self.confidence:.0%} Wilson [{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]; "
            f"median compression {fmt(d['median_compression'])} bits)"
            for d in details
        ]
        return "; ".join(parts) + f"; needed >= {self.min_fraction:g} with the whole interval"
