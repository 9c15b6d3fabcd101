"""Coverage of 95 % intervals of a mean over a few seeds, by simulation.

For each population (normal, exponential, lognormal(0, 1)) and sample size n,
draws ``--reps`` samples, computes each interval and counts how often it holds
the population mean. Intervals:

* ``percentile``: :func:`ib_sweeps.claims.intervals.bootstrap_mean` (the old one);
* ``bca``: ``scipy.stats.bootstrap(method="BCa")``;
* ``expanded``: the percentile bootstrap with deviations scaled by
  :func:`ib_sweeps.claims.intervals.expansion` (what ``estimator_agreement`` resamples);
* ``t``: :func:`ib_sweeps.claims.intervals.t_mean` (what the verdicts and the report use).

Every bootstrap has 2000 resamples and is seeded; the whole table is seeded.
Binomial standard error of a coverage near 0.95: sqrt(0.95 * 0.05 / reps).

Then ``estimator_agreement`` (``min_rho`` 0.5): 4 conditions whose true means
rank 1, 2, 3, 4 under one estimator and 2, 3, 1, 4 under the other (rho = 0.4,
below ``min_rho``), or alike (rho = 1), the conditions ``delta`` apart, each
estimator's value on each seed with its own unit normal noise. How often the
claim is supported (the interval's low end >= 0.5): wrongly at rho 0.4
(nominal at most 2.5 %), rightly at rho 1 (the power), with the plain
percentile bootstrap of before and the expanded one of now.

    python benchmarks/coverage.py [--reps 2000] [--seed 0] [--n 5 20]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.stats import bootstrap

from ib_sweeps.claims.intervals import bootstrap_mean, expansion, t_mean

# (draw n values, population mean)
POPULATIONS = {
    "normal": (lambda rng, n: rng.normal(0.0, 1.0, n), 0.0),
    "exponential": (lambda rng, n: rng.exponential(1.0, n), 1.0),
    "lognormal": (lambda rng, n: rng.lognormal(0.0, 1.0, n), math.exp(0.5)),
}


def bca(v, seed):
    ci = bootstrap((v,), np.mean, n_resamples=2000, method="BCa", rng=seed).confidence_interval
    return ci.low, ci.high


def expanded(v, seed, confidence=0.95, n_resamples=2000):
    rng = np.random.default_rng(seed)
    boot = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    boot = v.mean() + expansion(len(v), confidence) * (boot - v.mean())
    return tuple(np.quantile(boot, [0.5 - confidence / 2, 0.5 + confidence / 2]))


METHODS = {
    "percentile": lambda v, seed: bootstrap_mean(v, 0.95, seed)[1:],
    "bca": bca,
    "expanded": expanded,
    "t": lambda v, seed: t_mean(v, 0.95)[1:],
}


def coverage(population: str, n: int, reps: int, seed: int) -> dict[str, float]:
    """Fraction of ``reps`` samples of size ``n`` whose interval holds the mean, per method."""
    draw, mu = POPULATIONS[population]
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(METHODS, 0)
    for i in range(reps):
        v = draw(rng, n)
        for name, method in METHODS.items():
            lo, hi = method(v, i)
            hits[name] += bool(lo <= mu <= hi)
    return {name: k / reps for name, k in hits.items()}


def agreement_supported(b_ranks, delta: float, n: int, reps: int, seed: int) -> dict[str, float]:
    """Fraction of ``reps`` sweeps (4 conditions x ``n`` seeds) in which agreement (rho >= 0.5) is supported.

    Estimator a's true condition means are ``[0, 1, 2, 3] * delta``, b's ``b_ranks * delta``.
    """
    import pandas as pd

    from ib_sweeps.claims.estimator_agreement import EstimatorAgreement

    class Plain(EstimatorAgreement):  # the percentile bootstrap of before: deviations not widened
        def _resampled_means(self, pairs, rng):
            return pairs[rng.integers(0, len(pairs), size=(self.n_resamples, len(pairs)))].mean(axis=1)

    claim = {"kind": "estimator_agreement", "estimators": ["a", "b"], "min_rho": 0.5}
    judges = {"percentile": Plain(**claim), "expanded": EstimatorAgreement(**claim)}
    truth = {"a": np.array([0, 1, 2, 3]) * delta, "b": np.asarray(b_ranks) * delta}
    rng = np.random.default_rng(seed)
    supported = dict.fromkeys(judges, 0)
    for _ in range(reps):
        noise = rng.normal(0, 1, (4, n, 2))  # each estimator's own noise on each seed
        rows = [
            {"run_id": f"{c}-{s}", "condition": str(c), "estimator": e, "layer": "layer_1", "is_output": False,
             "is_last_hidden": True, "compression": truth[e][c] + noise[c, s, i]}
            for c in range(4) for s in range(n) for i, e in enumerate(truth)
        ]  # fmt: skip
        table = pd.DataFrame(rows)
        for name, judge in judges.items():
            supported[name] += judge.judge_layer(table, "last_hidden", "a")[0]["verdict"] == "supported"
    return {name: k / reps for name, k in supported.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, nargs="+", default=[5, 20])
    args = ap.parse_args()
    t0 = time.perf_counter()
    se = math.sqrt(0.95 * 0.05 / args.reps)
    print(f"coverage of nominal 95 % intervals of a mean; {args.reps} replications, seed {args.seed}, "
          f"binomial SE ~{se:.3f}")  # fmt: skip
    print(f"| population | n | {' | '.join(METHODS)} |")
    print(f"|---|---|{'---|' * len(METHODS)}")
    for population in POPULATIONS:
        for n in args.n:
            cov = coverage(population, n, args.reps, args.seed)
            print(f"| {population} | {n} | " + " | ".join(f"{cov[m]:.3f}" for m in METHODS) + " |")
    reps = max(args.reps // 4, 1)
    print(f"\nestimator_agreement (min_rho 0.5) supported; {reps} replications, seed {args.seed}; "
          "conditions delta apart, unit seed noise")  # fmt: skip
    print("| delta | n | wrongly, rho 0.4: percentile | expanded | rightly, rho 1: percentile | expanded |")
    print("|---|---|---|---|---|---|")
    for delta in (0.25, 0.5, 1.0):
        for n in args.n:
            err = agreement_supported([1, 2, 0, 3], delta, n, reps, args.seed)
            power = agreement_supported([0, 1, 2, 3], delta, n, reps, args.seed)
            cells = (err["percentile"], err["expanded"], power["percentile"], power["expanded"])
            print(f"| {delta:g} | {n} | " + " | ".join(f"{x:.3f}" for x in cells) + " |")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
