"""``transition_coincides``: compression onset, training-loss kink and gradient-SNR drop lie within ``within_epochs``.

Per layer, a trial counts when every measurable gap between the three epochs is
at most ``within_epochs``; the fraction is judged as for ``compresses`` (Wilson
interval against ``min_fraction``). A trial without compression onset counts
against the claim; one with an onset but no loss kink or SNR drop to compare it
with cannot be judged and is left out.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ib_sweeps.claims.base import Onset, fmt
from ib_sweeps.types import PositiveInt

GAPS = (("onset_epoch", "loss_kink_epoch"), ("onset_epoch", "snr_drop_epoch"), ("loss_kink_epoch", "snr_drop_epoch"))


class TransitionCoincides(Onset):
    kind: Literal["transition_coincides"]
    within_epochs: PositiveInt

    def statement(self, estimator: str) -> str:
        return (
            f"compression onset, loss kink and SNR drop of {self.layers_text()} coincide "
            f"within {self.within_epochs} epochs{self.where_text()} ({estimator})"
        )

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default)
        gaps = {f"{a}-{b}": (sub[a] - sub[b]).abs().to_numpy(float) for a, b in GAPS}
        stack = np.stack(list(gaps.values()), axis=1) if len(sub) else np.zeros((0, 3))
        has_any = np.isfinite(stack).any(axis=1)
        onset = np.isfinite(sub["onset_epoch"].to_numpy(float))
        ok = np.where(np.isfinite(stack), stack <= self.within_epochs, True).all(axis=1)
        n, k = int((~onset | has_any).sum()), int((ok & has_any & onset).sum())
        verdict, lo, hi = self.fraction_rule(k, n)
        dist = {}
        for name, g in gaps.items():
            g = g[np.isfinite(g)]
            if len(g):
                q1, med, q3 = np.quantile(g, [0.25, 0.5, 0.75])
                dist[name] = {"n": len(g), "median": med, "q1": q1, "q3": q3, "min": g.min(), "max": g.max()}
        d = {
            "verdict": verdict, "k": k, "n": n, "fraction": k / n if n else math.nan, "ci_low": lo, "ci_high": hi,
            "gaps": dist, "no_onset": int(np.isnan(sub["onset_epoch"].to_numpy(float)).sum()),
            "no_snr": int(np.isnan(sub["snr_drop_epoch"].to_numpy(float)).sum()),
        }  # fmt: skip
        return d, sub["run_id"]

    def reason(self, details):
        reasons = []
        for d in details:
            gaps = ", ".join(f"{k} median {fmt(g['median'], 0)} epochs (n={g['n']})" for k, g in d["gaps"].items())
            reasons.append(
                f"{d['layer']}: {d['k']}/{d['n']} trials within {self.within_epochs} epochs "
                f"(Wilson [{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]; {d['no_onset']} without compression onset, "
                f"{d['no_snr']} without an SNR drop); gaps: {gaps or 'none measurable'}"
            )
        return "; ".join(reasons)
