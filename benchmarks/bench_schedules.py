"""Delta-skip schedules against a dense trace on the default 12-bit tanh run.

Runs the same trial (8000 epochs, binning, same seed, so the same training) three
times, each logging to a throwaway MLflow store: measuring every epoch (dense),
``delta_exact`` and ``delta_approx`` at delta = 0.02 (normalized distance). Prints
the fraction of epochs measured, the trial's wall time relative to the dense
run, and the largest deviation between the dense trace and the linear
interpolation of each scheduled trace (bits and fraction of H(X)/H(Y)).
Target: delta_exact measures <= 15 % of the epochs, every consecutive pair
within delta or adjacent.

Usage: python benchmarks/bench_schedules.py [--epochs 8000] [--delta 0.02]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile

import numpy as np

from ib_sweeps import config, schedules, tracking
from ib_sweeps.trial import run_trial


def points(trace):
    """(m, 2, n_layers) I(X;T), I(Y;T) of the first estimator, bits."""
    return np.stack([np.stack([x[0], y[0]]) for x, y in zip(trace.ixt, trace.iyt, strict=True)])


def max_deviation(dense, sparse) -> tuple[float, float, str]:
    """Largest |dense - linear interpolation of sparse| over epochs and layers: (bits, normalized, where)."""
    d_epochs, s_epochs = np.asarray(dense.epochs), np.asarray(sparse.epochs)
    dp, sp = points(dense), points(sparse)
    worst_bits, worst_norm, where = 0.0, 0.0, ""
    for axis, h in ((0, dense.h_x), (1, dense.h_y)):
        for layer in range(dp.shape[2]):
            dev = np.abs(dp[:, axis, layer] - np.interp(d_epochs, s_epochs, sp[:, axis, layer]))
            worst_bits = max(worst_bits, dev.max())
            if dev.max() / h > worst_norm:
                i = int(np.argmax(dev))
                worst_norm = dev.max() / h
                where = f"{('I(X;T)', 'I(Y;T)')[axis]} of {dense.layers[layer]} at epoch {d_epochs[i]}"
    return worst_bits, worst_norm, where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8000)
    ap.add_argument("--delta", type=float, default=0.02)
    args = ap.parse_args()
    runs = {
        "dense (every epoch)": {"kind": "every"},
        "delta_exact": {"kind": "delta_exact", "delta": args.delta},
        "delta_approx": {"kind": "delta_approx", "delta": args.delta},
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        opts = tracking.RunOptions(tracking_uri=f"sqlite:///{tmp}/mlflow.db", cpus=1, progress=False)
        for name, schedule in runs.items():
            cfg = config.validate({"train": {"epochs": args.epochs}, "schedule": schedule})
            results[name] = run_trial(cfg, opts)
    dense = results["dense (every epoch)"]
    n = args.epochs + 1
    print(f"default 12-bit tanh run, {args.epochs} epochs, binning, delta = {args.delta} (normalized)")
    print(f"{'schedule':22s} {'measured':>9s} {'fraction':>9s} {'backtracked':>11s} {'wall s':>7s} {'vs dense':>8s}"
          f" {'max dev bits':>12s} {'normalized':>10s}")  # fmt: skip
    for name, r in results.items():
        t = r.trace
        bits, norm, where = (0.0, 0.0, "") if r is dense else max_deviation(dense.trace, t)
        print(
            f"{name:22s} {len(t.epochs):9d} {len(t.epochs) / n:9.1%} {t.reasons.count('backtracked'):11d}"
            f" {r.seconds['total_s']:7.1f} {r.seconds['total_s'] / dense.seconds['total_s']:8.2f}"
            f" {bits:12.3f} {norm:10.3f}  {where}"
        )
    dp = points(dense.trace)
    jumps = [schedules.distance(dp[i], dp[i + 1], dense.trace.h_x, dense.trace.h_y) for i in range(len(dp) - 1)]
    late = int(np.argmax(jumps[1000:])) + 1000
    print(f"dense trace: largest one-epoch change after epoch 1000 = {jumps[late]:.3f} (normalized), "
          f"epoch {late} -> {late + 1}; epochs after 1000 with a one-epoch change > delta: "
          f"{sum(j > args.delta for j in jumps[1000:])}")  # fmt: skip
    t = results["delta_exact"].trace
    p = points(t)
    worst = max(
        (
            schedules.distance(p[i], p[i + 1], t.h_x, t.h_y)
            for i in range(len(p) - 1)
            if t.epochs[i + 1] - t.epochs[i] > 1
        ),
        default=0.0,
    )
    adjacent = sum(b - a == 1 for a, b in itertools.pairwise(t.epochs))
    print(f"delta_exact: largest distance between non-adjacent consecutive measured epochs = {worst:.4f} "
          f"(<= {args.delta}); {adjacent} consecutive pairs are adjacent epochs")  # fmt: skip


if __name__ == "__main__":
    main()
