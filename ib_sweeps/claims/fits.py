"""``fits``: the layers have a fitting phase, I(X;T) rising to its peak after the first measured epoch.

Per layer, k of n trials fit (their I(X;T) peaks at least ``min_epochs`` after
the first measured epoch: ``fitting_epochs`` of the compression table); judged
as ``compresses`` is (Wilson interval of k/n against ``min_fraction``).
Shwartz-Ziv & Tishby (2017): every layer first fits, then compresses; Lorenzen
et al. (ICLR 2022) find fitting in every layer of quantized networks. The
compression table carries I(Y;T) only at its peak and end, so the rise of
I(Y;T) is not part of the rule.
"""

from __future__ import annotations

import math
from typing import Literal

from ib_sweeps.claims.base import Onset, fmt
from ib_sweeps.types import PositiveInt


class Fits(Onset):
    kind: Literal["fits"]
    min_epochs: PositiveInt = 1

    def statement(self, estimator: str) -> str:
        verb = "fits" if len(self.layers) == 1 else "fit"
        return f"{self.layers_text()} {verb} (I(X;T) rises first){self.where_text()} ({estimator})"

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default)
        sub = sub.dropna(subset=["fitting_epochs"]) if "fitting_epochs" in sub else sub.iloc[0:0]
        n, k = len(sub), int((sub.get("fitting_epochs", sub.index) >= self.min_epochs).sum())
        verdict, lo, hi = self.fraction_rule(k, n)
        median = float(sub["fitting_epochs"].median()) if n else math.nan
        detail = {"verdict": verdict, "k": k, "n": n, "fraction": k / n if n else math.nan, "ci_low": lo,
                  "ci_high": hi, "median_fitting_epochs": median}  # fmt: skip
        return detail, sub["run_id"]

    def reason(self, details):
        if not any(d["n"] for d in details):
            return "no finished trial matches the claim's conditions and estimator"
        parts = [
            f"{d['layer']}: {d['k']}/{d['n']} trials fit ({fmt(d['fraction'])}, {self.confidence:.0%} Wilson "
            f"[{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]; "
            f"median fitting phase {fmt(d['median_fitting_epochs'], 0)} epochs)"
            for d in details
        ]
        return "; ".join(parts) + f"; needed >= {self.min_fraction:g} with the whole interval"
