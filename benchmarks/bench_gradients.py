"""Cost of the minibatch-gradient statistics (``train.gradient_stats``).

Prints, with the statistics off and on, measured alternately so both see the
same machine state, wall time and this process's CPU time (on a shared
machine the CPU time is the steadier figure: it does not count time spent
waiting for a core):

(a) epochs/s of the training core on the default 12-bit net, one thread: a
    long stretch in one call (pure training) and a call per epoch (activity
    captured every epoch, as in bench_foundation (a));
(b) wall time of the default trial (8000 epochs, ``delta_exact``, binning,
    MLflow logging into a throwaway SQLite store): best and median of
    ``--trial-repeats`` (a trial's backtracking thread competes with training
    for the cores, so single trials scatter by several seconds).

Usage: python benchmarks/bench_gradients.py [--epochs 2000] [--repeats 3] [--trial-repeats 3] [--cpus 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from ib_sweeps import config, data, runtime, tracking

STATS = (False, True)


def core_seconds(stats: bool, d, epochs: int, every: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of ``epochs`` epochs on a warm core: one call, or one call per epoch."""
    from ib_sweeps import train

    cfg = config.validate({"train": {"epochs": epochs + 1, "gradient_stats": stats}})
    core = train.build_core(cfg.model, cfg.train, d, 0)
    core.advance(0)
    core.advance(1)  # warm-up: XLA compilation
    t, c = time.perf_counter(), time.process_time()
    for e in range(2, epochs + 2) if every else (epochs + 1,):
        core.advance(e)
    return time.perf_counter() - t, time.process_time() - c


def trial_seconds(stats: bool, tmp: str) -> dict[str, float]:
    from ib_sweeps.trial import run_trial

    cfg = config.validate({"train": {"gradient_stats": stats}})
    opts = tracking.RunOptions(tracking_uri=f"sqlite:///{tmp}/mlflow.db", cpus=1, progress=False)
    c = time.process_time()
    seconds = run_trial(cfg, opts).seconds
    return {**seconds, "cpu_s": time.process_time() - c}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2000, help="epochs timed per core measurement")
    ap.add_argument("--repeats", type=int, default=3, help="alternating core measurements per setting")
    ap.add_argument("--trial-repeats", type=int, default=3, help="alternating default trials per setting (0: skip)")
    ap.add_argument("--cpus", type=int, default=1, help="TensorFlow thread pool size")
    args = ap.parse_args()
    runtime.configure_tensorflow(args.cpus)
    d = data.load(config.validate({}).data, np.random.default_rng(0))

    print(f"(a) training core, default 12-bit net, {args.cpus} thread(s), best of {args.repeats}")
    for every, label in ((False, f"{args.epochs} epochs in one call"), (True, "a call per epoch (capture)")):
        n = args.epochs if not every else args.epochs // 4
        best = {s: np.array([np.inf, np.inf]) for s in STATS}
        for _ in range(args.repeats):
            for s in STATS:
                best[s] = np.minimum(best[s], core_seconds(s, d, n, every))
        for i, clock in enumerate(("wall", "CPU")):
            off, on = (n / best[s][i] for s in STATS)
            rates = f"off {off:7.1f} epochs/s, on {on:7.1f} epochs/s"
            print(f"    {label:28s} {clock:4s}: {rates}, cost {off / on - 1:+6.1%}")

    if args.trial_repeats:
        print(f"(b) default trial (8000 epochs, delta_exact, binning, MLflow), {args.trial_repeats} runs each")
        runs: dict[bool, list] = {s: [] for s in STATS}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.trial_repeats):
                for s in STATS:
                    runs[s].append(trial_seconds(s, tmp))
        for key in ("train_s", "total_s", "cpu_s"):
            for name, stat in (("best", np.min), ("median", np.median)):
                off, on = (float(stat([r[key] for r in runs[s]])) for s in STATS)
                print(f"    {key:8s} {name:6s}: off {off:6.2f} s, on {on:6.2f} s, cost {on / off - 1:+6.1%}")


if __name__ == "__main__":
    main()
