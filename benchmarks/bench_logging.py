"""Storing one trial's metrics in a SQLite store: MLflow's ``log_batch`` vs the direct writer (``store_sql``).

A trial of the reduced ``activations`` sweep logs ~11 000 metric values: I(X;T), I(Y;T) of 2 estimators x 6
layers and 18 gradient statistics at 200 measured epochs, and loss/accuracy at ~650 stored epochs, in batches
of at most 1000 values (``trial_array.FLUSH_METRICS``). Two measurements, each contender in a fresh run of
one store, alternating who goes first, ``--rounds`` times (the median is printed):

* **store**: the same ``Metric`` batches through ``MlflowClient.log_batch`` (synchronously: the work MLflow's
  asynchronous thread does) and through :func:`ib_sweeps.store_sql.log_metrics`; both runs must then hold
  the same rows in ``metrics`` and ``latest_metrics``.
* **RunLogger**: what a trial pays end to end, :meth:`RunLogger.metrics` for every batch then
  :meth:`RunLogger.wait`, with MLflow's asynchronous ``log_batch`` (``direct=None``, as before) and with
  direct writes (the default on SQLite).

Wall and CPU seconds (process CPU, MLflow's logging thread included), microseconds a value, the ratio and the
load average.

    python benchmarks/bench_logging.py [--rounds 5] [--measured 200]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

from ib_sweeps import store_sql, tracking

ESTIMATORS, LAYERS, LOSS_EPOCHS = ("binning", "adaptive_binning"), 6, 650


def trial_steps(measured: int) -> list[list[tuple[int, dict[str, float]]]]:
    """One trial's ``[(step, {key: value})]``, cut into flushes of >= 1000 values as ``Replica.emit`` does."""
    keys = [f"{q}/{e}/layer_{j + 1}" for q in ("ixt", "iyt") for e in ESTIMATORS for j in range(LAYERS)]
    keys += [f"grad/{s}/layer_{j + 1}" for s in ("mean_norm", "std_norm", "snr") for j in range(LAYERS)]
    loss = ("loss/train", "accuracy/train", "loss/test", "accuracy/test")
    steps = [(e, {k: 0.1 + e / (i + 7) for i, k in enumerate(loss)}) for e in range(0, 5 * LOSS_EPOCHS, 5)]
    steps += [(5 * m + 2, {k: m / (i + 3) for i, k in enumerate(keys)}) for m in range(measured)]
    steps.sort(key=lambda s: s[0])
    flushes, queued, n = [], [], 0
    for step in steps:
        queued.append(step)
        n += len(step[1])
        if n >= 1000:
            flushes.append(queued)
            queued, n = [], 0
    return flushes + ([queued] if queued else [])


def as_batches(flushes) -> list[list]:
    """The ``Metric`` batches (<= 1000) RunLogger would send for ``flushes``, one timestamp."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, int(s)) for steps in flushes for s, values in steps for k, v in values.items()]
    return [batch[i : i + 1000] for i in range(0, len(batch), 1000)]


def timed(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def rows(path, run_id: str) -> list:
    with sqlite3.connect(path) as db:
        return [
            db.execute(f"SELECT key, value, timestamp, step, is_nan FROM {t} WHERE run_uuid = ? ORDER BY 1, 2, 3, 4, 5",
                       (run_id,)).fetchall()
            for t in ("metrics", "latest_metrics")
        ]  # fmt: skip


def report(name: str, n: int, times: dict) -> None:
    (mw, mc), (dw, dc) = ([statistics.median(x) for x in zip(*times[k], strict=True)] for k in ("mlflow", "direct"))
    print(f"  {name:9s} MLflow: {mw:6.3f} s wall {mc:6.3f} s CPU ({1e6 * mc / n:5.1f} us a value)   "
          f"direct: {dw:6.3f} s wall {dc:6.3f} s CPU ({1e6 * dc / n:5.1f} us a value)   "
          f"MLflow/direct: {mw / dw:5.1f}x wall, {mc / dc:5.1f}x CPU")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--measured", type=int, default=200)
    args = ap.parse_args()
    flushes = trial_steps(args.measured)
    n = sum(len(v) for steps in flushes for _, v in steps)
    print(f"one trial: {n} values in {len(as_batches(flushes))} batches; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        path = tracking.sqlite_path(uri)
        client = tracking.open_client(uri)
        exp = tracking.ensure_experiment(client, "bench-logging", uri)
        store = {"mlflow": [], "direct": []}
        logger = {"mlflow": [], "direct": []}
        for r in range(args.rounds + 1):  # round 0 warms both up (imports, the kept connection) and is not kept
            order = ("mlflow", "direct") if r % 2 == 0 else ("direct", "mlflow")
            runs, batches = {}, as_batches(flushes)  # the same rows for both, timestamps included
            for name in order:
                rid = runs[name] = client.create_run(exp).info.run_id
                if name == "mlflow":
                    took = timed(lambda: [client.log_batch(rid, metrics=b) for b in batches])  # noqa: B023
                else:
                    took = timed(lambda: [store_sql.log_metrics(path, rid, b) for b in batches])  # noqa: B023
                if r:
                    store[name].append(took)
            if rows(path, runs["mlflow"]) != rows(path, runs["direct"]):
                sys.exit("the two stored different rows")
            for name in order:
                log = tracking.RunLogger(client, client.create_run(exp).info.run_id, uri)
                if name == "mlflow":
                    log.direct = None
                took = timed(lambda: ([log.metrics(steps) for steps in flushes], log.wait()))  # noqa: B023
                if log.missing():
                    sys.exit(f"{name}: the store lacks {sorted(log.missing())[:3]}")
                if r:
                    logger[name].append(took)
        print(f"median of {args.rounds} rounds, each contender in a fresh run:")
        report("store", n, store)
        report("RunLogger", n, logger)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
