"""Reading a sweep back from MLflow: bulk reads vs one MLflow call per (run, metric key).

Writes a synthetic sweep (default 100 trials x 300 measured epochs x 6 layers
x 2 estimators, loss and accuracy at every measured epoch) into a fresh SQLite
store, then times, in the same run:

* baseline: ``MlflowClient.get_metric_history`` for every (run, key), as a
  notebook would, then the same tidy frame;
* ``analysis.load_trace`` cold (bulk SQL query, empty cache) and warm (cached);
* ``analysis.compression_table`` and ``analysis.evaluate_claims`` on the result.

    python benchmarks/bench_analysis.py [--trials 100] [--epochs 300] [--layers 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--db", help="SQLite file to reuse (written on the first run) instead of a temporary one")
    args = ap.parse_args()

    from mlflow import MlflowClient

    from ib_sweeps import analysis
    from ib_sweeps.analysis import histories
    from ib_sweeps.analysis import synthetic as syn

    epochs = np.r_[0, np.unique(np.geomspace(1, 8000, args.epochs * 3).astype(int))][: args.epochs]
    rng = np.random.default_rng(0)
    trials = []
    for i in range(args.trials):
        act = ("tanh", "relu")[i % 2]
        layers = [f"layer_{k}" for k in range(1, args.layers + 1)]
        ixt = {(e, lay): syn.rise_fall(epochs, 300, 8, 5 if act == "tanh" else 8) + rng.normal(0, 0.05, len(epochs))
               for e in ("binning", "kde_upper") for lay in layers}  # fmt: skip
        iyt = {k: syn.rise_fall(epochs, 300, 0.9, 0.95) for k in ixt}
        per_epoch = {"loss/train": syn.kinked(epochs, 300, -0.5, -0.05), "loss/test": syn.kinked(epochs, 300, -0.4, 0),
                     "accuracy/train": np.linspace(0.5, 1, len(epochs)),
                     "accuracy/test": np.linspace(0.5, 0.9, len(epochs))}  # fmt: skip
        trials.append(syn.Trial({"model.activation": act, "seed": i // 2}, epochs, ixt, iyt, per_epoch))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db or Path(tmp) / "mlflow.db").resolve()
        uri = f"sqlite:///{db}"
        if not (args.db and db.exists()):
            t = time.perf_counter()
            claims = [{"kind": "compresses", "where": {"model.activation": "tanh"}},
                      {"kind": "depends_on", "axis": "model.activation"}]  # fmt: skip
            syn.write_sweep(uri, "bench", trials, {"base": {"estimators": [{"method": "binning"}]}, "claims": claims})
            n_points = sum(len(epochs) * (len(tr.ixt) * 2 + len(tr.per_epoch)) for tr in trials)
            print(f"wrote {args.trials} trials, {n_points:,} metric points in {time.perf_counter() - t:.1f} s")

        src = analysis.locate("bench", uri)
        client = MlflowClient(src.uri)
        t = time.perf_counter()
        for run in src.children:
            for key in run.data.metrics:
                client.get_metric_history(run.info.run_id, key)
        baseline = time.perf_counter() - t
        n_calls = sum(len(r.data.metrics) for r in src.children)
        print(f"baseline: {n_calls:,} get_metric_history calls: {baseline:.2f} s")

        histories.clear_cache()
        t = time.perf_counter()
        trace = analysis.load_trace("bench", uri)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        analysis.load_trace("bench", uri)
        warm = time.perf_counter() - t
        print(f"load_trace cold: {cold:.2f} s ({baseline / cold:.1f}x faster than the baseline's reads alone), "
              f"warm (cached): {warm:.2f} s; {len(trace):,} rows")  # fmt: skip
        t = time.perf_counter()
        table = analysis.compression_table(trace)
        print(f"compression_table: {time.perf_counter() - t:.2f} s; {len(table):,} rows")
        t = time.perf_counter()
        verdicts = analysis.evaluate_claims("bench", uri, trace=trace)
        print(f"evaluate_claims ({len(verdicts)} claims): {time.perf_counter() - t:.2f} s; "
              f"{[v.verdict for v in verdicts]}")  # fmt: skip


if __name__ == "__main__":
    main()
