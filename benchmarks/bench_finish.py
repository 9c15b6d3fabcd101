"""Finishing an array's replicas (issue 14): ``trial_array._finish`` now vs the loop it replaced, N = 6 and 30.

After an array trains, each replica saves its trace and figures, logs its
times and summary, and ends its run FINISHED once the store holds it all. The
old loop (kept below as :func:`finish_old`, as it was at b193c1d) logged the
last metrics asynchronously; ending a run stops MLflow's asynchronous queue
(shared by the process's runs, up to 1 s while its thread waits for work), so
every replica's end waited for it again. Now they are logged synchronously and
only the first end waits. (Since ``RunLogger`` writes a SQLite store directly,
``store_sql.log_metrics``, neither loop starts MLflow's queue on the store used
here: the two now differ by little; ``bench_logging.py`` measures the writes.)

Each array is N replicas of the ``activations`` sweep's trial (5000 epochs,
200 measured, 2 estimators, 6 layers, gradient statistics, the sweep's
summary), opened in a fresh SQLite store and given a synthetic trace's metrics
exactly as training would log them (untimed), then finished (timed). The old
and the new loop alternate, each on an array of its own, after one untimed
``save_all`` (so both draw into kept frames). Prints wall and CPU seconds,
seconds per replica, the ratio, the time inside ``plots.save_all`` and the
load average, and checks both stored the same: every run FINISHED, the same
metric keys, steps and artifact names.

    python benchmarks/bench_finish.py [--sizes 6 30] [--epochs 5000] [--measured 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plots import load, synthetic_trace

from ib_sweeps import config, plots, records, tracking, trial_array
from ib_sweeps.sweep.summary import trial_summary
from ib_sweeps.trace import Trace
from ib_sweeps.trial import TrialResult, save_artifacts

BASE = {
    "data": {"name": "tishby12"},
    "model": {"hidden": [10, 7, 5, 4, 3], "activation": "tanh"},
    "train": {"optimizer": "adam", "learning_rate": 4e-4, "batch_size": 256, "epochs": 5000},
    "schedule": {"kind": "log", "n": 200},
    "estimators": [{"method": "binning", "bin_size": 0.07},
                   {"method": "adaptive_binning", "n_bins": 30, "strategy": "quantile"}],
}  # fmt: skip


def finish_old(reps, t_start: float) -> list:
    """The finishing loop and ``Replica.finish`` as they were before (asynchronous last metrics)."""

    def finish(r, summarize, total_s):
        r.flush()
        save_artifacts(r.trace, r.log, plots)
        r.seconds["backtrack_wait_s"] = 0.0
        r.seconds["total_s"] = total_s
        r.log.metrics([(int(r.cfg.train.epochs), {records.time_key(k): v for k, v in r.seconds.items()})])
        trace = r.trace.sorted()
        summary = summarize(trace) if summarize is not None else {}
        if summary:
            r.log.metrics([(0, {records.summary(k): v for k, v in summary.items()})])
        run, r.run = r.run, None
        run.__exit__(None, None, None)
        return TrialResult(r.log.run_id, trace, r.seconds, summary)

    out = []
    for r in reps:
        if r.error is None:
            try:
                out.append(finish(r, r.opts.summarize, (time.perf_counter() - t_start) / len(reps)))
            except Exception as err:
                r.fail(err)
        if r.error is not None:
            out.append(r.error)
    return out


def trained_array(n: int, uri: str, experiment: str, epochs: int, measured: int, seed0: int) -> list:
    """N open replicas whose runs hold what training would have logged (a synthetic trace's epochs)."""
    reps = []
    for i in range(n):
        cfg = config.validate({**BASE, "seed": seed0 + i, "train": {**BASE["train"], "epochs": epochs}})
        opts = tracking.RunOptions(tracking_uri=uri, experiment=experiment, progress=False, summarize=trial_summary)
        r = trial_array._replica(i, cfg, opts)
        done = synthetic_trace(epochs, measured, estimators=r.trace.estimators, seed=seed0 + i).sorted()
        r.trace = Trace(done.estimators, done.layers, done.history_keys, r.trace.h_x, r.trace.h_y, done.history)
        r.trace.grad = done.grad
        r.open()
        previous = -1
        for epoch, ixt, iyt in zip(done.epochs, done.ixt, done.iyt, strict=True):
            r.record(epoch, ixt, iyt, r.steps(previous + 1, done.history[previous + 1 : epoch + 1]))
            previous = epoch
        reps.append(r)
    for r in reps:  # training's batches are stored; the last ones are queued in the replicas, as after training
        r.log.wait()
    return reps


def stored(client, uri: str, run_ids: list[str]) -> list[tuple]:
    """Per run: status, sorted (metric key, number of steps), sorted artifact paths."""
    out = []
    for rid in run_ids:
        run = client.get_run(rid)
        steps = tracking.stored_steps(uri, rid) or {}
        files = sorted(
            f.path for top in client.list_artifacts(rid) for f in (client.list_artifacts(rid, top.path) if top.is_dir
                                                                   else [top])
        )  # fmt: skip
        out.append((run.info.status, sorted((k, len(v)) for k, v in steps.items()), files))
    return out


def timed_finish(name: str, finish, reps) -> tuple[float, float, float, list[str]]:
    """Wall and CPU seconds of ``finish(reps)``, wall seconds inside ``plots.save_all``, the run ids."""
    inside = [0.0]
    save_all = plots.save_all

    def counted(*args, **kwargs):
        t = time.perf_counter()
        try:
            return save_all(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - t

    plots.save_all = counted
    try:
        t, c = time.perf_counter(), time.process_time()
        results = finish(reps, t)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        plots.save_all = save_all
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        sys.exit(f"{name}: {len(failed)} replicas failed: {failed[0]!r}")
    return wall, cpu, inside[0], [r.run_id for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[6, 30], help="replicas per array")
    ap.add_argument("--epochs", type=int, default=5000)
    ap.add_argument("--measured", type=int, default=200)
    args = ap.parse_args()
    print(f"finishing N replicas: {args.epochs} epochs, {args.measured} measured, 6 layers, 2 estimators")
    print(f"load average before: {load()} on {os.cpu_count()} CPUs")
    contenders = {"old": finish_old, "new": trial_array._finish}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        client = tracking.open_client(uri)
        (Path(tmp) / "warm").mkdir()
        plots.save_all(synthetic_trace(args.epochs, args.measured), Path(tmp) / "warm")  # kept frames, imports
        seed0 = 0
        for k, n in enumerate(args.sizes):
            rows, runs = {}, {}
            for name in contenders if k % 2 == 0 else reversed(contenders):  # alternate who goes first
                reps = trained_array(n, uri, f"{name}-{n}", args.epochs, args.measured, seed0)
                wall, cpu, figures, runs[name] = timed_finish(name, contenders[name], reps)
                rows[name] = (wall, cpu, figures)
                print(f"  N={n:3d} {name}: {wall:6.1f} s wall ({wall / n:5.2f} s a replica, save_all "
                      f"{figures:5.1f} s), {cpu:6.1f} s CPU   load {load()}")  # fmt: skip
            (ow, oc, of), (nw, nc, nf) = rows["old"], rows["new"]
            print(f"  N={n:3d} old/new: {ow / nw:4.2f}x wall, {oc / nc:4.2f}x CPU; outside save_all "
                  f"{(ow - of) / n:4.2f} -> {(nw - nf) / n:4.2f} s a replica")  # fmt: skip
            old, new = stored(client, uri, runs["old"]), stored(client, uri, runs["new"])
            if old != new or {s for s, *_ in old + new} != {"FINISHED"}:
                sys.exit(f"N={n}: the two loops stored different things")
            print(f"  N={n:3d} both: every run FINISHED, {len(old[0][1])} metric keys at the same steps, "
                  f"artifacts {', '.join(old[0][2])}")  # fmt: skip
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
