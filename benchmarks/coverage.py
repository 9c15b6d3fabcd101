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
estimator's value on each seed with unit normal noise (its own, or shared by
the two estimators: the worst case for a wrong support). How often the claim
is supported (the interval's low end >= 0.5: wrongly at rho 0.4, nominally at
most 2.5 %; rightly at rho 1, the power) and how often the interval covers the
true rho, for the plain percentile bootstrap of before, one with deviations
scaled by sqrt(n / (n - 1)) (the plug-in variance's bias only) and the
expanded one of now (``EstimatorAgreement.spread``).

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


def agreement(b_ranks, delta: float, n: int, reps: int, seed: int, shared: bool = False) -> dict:
    """Per interval: (fraction supported, fraction covering the true rho) over ``reps`` sweeps of 4 x ``n`` seeds.

    Estimator a's true condition means are ``[0, 1, 2, 3] * delta``, b's ``b_ranks * delta``; each
    estimator's value on each seed has unit normal noise, its own or (``shared``) the same as the other's.
    """
    import pandas as pd
    from scipy.stats import spearmanr

    from ib_sweeps.claims.estimator_agreement import EstimatorAgreement

    class Percentile(EstimatorAgreement):  # before: resampled means as they come
        def spread(self, n):
            return 1.0

    class Corrected(EstimatorAgreement):  # the plug-in variance's bias only
        def spread(self, n):
            return math.sqrt(n / (n - 1)) if n > 1 else 1.0

    claim = {"kind": "estimator_agreement", "estimators": ["a", "b"], "min_rho": 0.5}
    judges = {
        "percentile": Percentile(**claim),
        "corrected": Corrected(**claim),
        "expanded": EstimatorAgreement(**claim),
    }
    truth = {"a": np.array([0, 1, 2, 3]) * delta, "b": np.asarray(b_ranks) * delta}
    rho = spearmanr(truth["a"], truth["b"]).statistic
    rng = np.random.default_rng(seed)
    counts = {name: [0, 0] for name in judges}
    for _ in range(reps):
        noise = rng.normal(0, 1, (4, n, 2))
        if shared:
            noise[..., 1] = noise[..., 0]
        rows = [
            {"run_id": f"{c}-{s}", "condition": str(c), "estimator": e, "layer": "layer_1", "is_output": False,
             "is_last_hidden": True, "compression": truth[e][c] + noise[c, s, i]}
            for c in range(4) for s in range(n) for i, e in enumerate(truth)
        ]  # fmt: skip
        table = pd.DataFrame(rows)
        for name, judge in judges.items():
            d = judge.judge_layer(table, "last_hidden", "a")[0]
            counts[name][0] += d["verdict"] == "supported"
            counts[name][1] += d["ci_low"] - 1e-9 <= rho <= d["ci_high"] + 1e-9
    return {name: (k / reps, c / reps) for name, (k, c) in counts.items()}


# (true rho, b's ranks, delta, noise shared by the two estimators)
SCENARIOS = [(0.4, [1, 2, 0, 3], 0.25, True), (0.4, [1, 2, 0, 3], 0.5, True), (0.4, [1, 2, 0, 3], 0.5, False),
             (1.0, [0, 1, 2, 3], 0.5, False), (1.0, [0, 1, 2, 3], 1.0, False)]  # fmt: skip


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
    print(f"\nestimator_agreement (min_rho 0.5): fraction supported / fraction of intervals covering the true rho; "
          f"{reps} replications, seed {args.seed}; 4 conditions delta apart, unit seed noise")  # fmt: skip
    print("| true rho | delta | noise | n | percentile (before) | corrected | expanded (now) |")
    print("|---|---|---|---|---|---|---|")
    for rho, ranks, delta, shared in SCENARIOS:
        for n in args.n:
            res = agreement(ranks, delta, n, reps, args.seed, shared)
            cells = " | ".join(f"{res[m][0]:.3f} / {res[m][1]:.3f}" for m in ("percentile", "corrected", "expanded"))
            print(f"| {rho:g} | {delta:g} | {'shared' if shared else 'own'} | {n} | {cells} |")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
