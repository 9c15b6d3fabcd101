"""Trial arrays vs the training core alone: net-epochs/s at N = 1, 5, 30 replicas (issue 14).

The default 12-bit net (10-7-5-4-3 tanh, Adam 4e-4, batch 512, tishby12),
gradient statistics off (``--gradient-stats``: on, as sweeps run by default), one TensorFlow thread.
For each N, measured alternately so both see the same machine state:

- alone: N networks one after another, as trials train them today; timed as one
  warm core trained N x ``--epochs`` epochs in one call (the same work per
  net-epoch, without building N cores);
- array: :func:`ib_sweeps.train.array.build_array_core` with N seeds, trained
  ``--epochs`` epochs in one call, warm.

Prints net-epochs per wall second and per CPU second of this process (on a
shared machine the CPU figure is the steadier one), their ratios, and the load
average before and after. Best of ``--repeats``. Compilation is not timed.

Then (unless ``--no-sweep``) the reduced ``activations`` sweep, 2 seeds x 1000
epochs x 6 activations, with ``resources.array_size`` 1 vs auto, each as a user
runs it, wall time and verdict tables side by side (``benchmarks/array_sweep.py``).

Usage: python benchmarks/bench_arrays.py [--epochs 300] [--sizes 1 5 30] [--repeats 2] [--gradient-stats]
       [--no-sweep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ib_sweeps import config, data, runtime


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def alone(d, n: int, epochs: int, length: int, gradient_stats: bool = False) -> tuple[float, float]:
    from ib_sweeps import train

    cfg = config.validate({"train": {"epochs": length, "gradient_stats": gradient_stats}})
    core = train.build_core(cfg.model, cfg.train, d, 0)
    core.advance(1)  # warm-up: XLA compilation
    return timed(lambda: core.advance(n * epochs + 1))


def array(d, n: int, epochs: int, length: int, gradient_stats: bool = False) -> tuple[float, float]:
    from ib_sweeps.train.array import build_array_core

    cfg = config.validate({"train": {"epochs": length, "gradient_stats": gradient_stats}})
    core = build_array_core(cfg.model, cfg.train, d, list(range(n)))
    core.advance(1)
    return timed(lambda: core.advance(epochs + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=300, help="epochs per network")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 30], help="replicas N")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements per N (best kept)")
    ap.add_argument("--gradient-stats", action="store_true", help="train with gradient statistics (sweeps' default)")
    ap.add_argument(
        "--sweep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the reduced activations sweep with array_size 1 vs auto (benchmarks/array_sweep.py, ~5 min)",
    )
    args = ap.parse_args()
    runtime.configure_tensorflow(1)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # each core is a new tf.function: its "retracing" warnings say nothing here
    cfg = config.validate({})
    d = data.load(cfg.data, np.random.default_rng(0))
    # One training length for every core, so every network's history buffer has the same size.
    length = max(args.sizes) * args.epochs + 1
    load0 = os.getloadavg()
    print(
        f"{cfg.data.name}, hidden {list(cfg.model.hidden)} {cfg.model.activation}, {cfg.train.optimizer} "
        f"{cfg.train.learning_rate}, batch {cfg.train.batch_size}; {args.epochs} epochs per net; 1 TF thread; "
        f"gradient statistics {'on' if args.gradient_stats else 'off'}"
    )
    print(
        f"{'N':>4} {'alone/wall':>11} {'array/wall':>11} {'ratio':>6} {'alone/CPU':>10} {'array/CPU':>10} {'ratio':>6}"
    )
    for n in args.sizes:
        best = {"alone": [0.0, 0.0], "array": [0.0, 0.0]}
        for _ in range(args.repeats):
            for name, fn in (("alone", alone), ("array", array)):
                wall, cpu = fn(d, n, args.epochs, length, args.gradient_stats)
                rate = n * args.epochs
                best[name] = [max(best[name][0], rate / wall), max(best[name][1], rate / cpu)]
        (aw, ac), (bw, bc) = best["alone"], best["array"]
        print(f"{n:>4} {aw:>11.0f} {bw:>11.0f} {bw / aw:>6.2f} {ac:>10.0f} {bc:>10.0f} {bc / ac:>6.2f}")
    load1 = os.getloadavg()
    before, after = ("/".join(f"{x:.2f}" for x in load) for load in (load0, load1))
    print(
        f"net-epochs/s (best of {args.repeats}); load average (1/5/15 min) before {before}, after {after}; "
        f"{os.cpu_count()} CPUs"
    )
    if args.sweep:  # in fresh processes, as a user runs it (this process's TensorFlow is left alone)
        import array_sweep

        sys.exit(0 if array_sweep.main()["same_verdicts"] else 1)


if __name__ == "__main__":
    main()
