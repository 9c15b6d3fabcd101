"""Cost of the CNN (``model.kind: cnn``): training, activity memory, and the estimators on conv activity.

Prints:

(a) epochs/s of the training core for the default CNN (conv 32, 64 3x3, pool 2,
    dense 128; train and test loss every epoch) on the 8x8 digits (1438 training
    images), as a plain graph (what the core uses for CNNs) and compiled with XLA;
(b) the same CNN at MNIST size, on the digits upscaled to 28x28 (each pixel a
    4x4 block, cropped to the centre) as a stand-in for MNIST, whose files need
    not be on this machine: epochs/s over its 1438 training images, hence seconds
    per 60 000-image MNIST epoch; activity bytes per measured input;
(c) wall time of each estimator with ``reducer: concat`` and ``mean`` on each
    layer's activity of that MNIST-size CNN after a few epochs;
(d) with ``--arrays``: trial arrays vs the core alone, the cnn sweep's network
    (Adadelta 1.0, batch 128, gradient statistics on, digits, relu): net-epochs
    per wall and per CPU second at N = ``--sizes`` replicas, measured
    alternately (alone: one warm core trained N x ``--array-epochs`` epochs in
    one call; array: N seeds, ``--array-epochs`` epochs, warm; best of
    ``--repeats``), with the load average before and after. Only (d) runs then.

Usage: python benchmarks/bench_cnn.py [--n 1000] [--n-slow 300] [--cpus 1] [--no-xla]
       python benchmarks/bench_cnn.py --arrays [--sizes 1 5 10] [--array-epochs 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ib_sweeps import config, data, estimators, models, runtime

RAW = {
    "data": {"name": "digits"},
    "model": {"kind": "cnn"},
    "train": {"epochs": 1000, "batch_size": 128, "optimizer": "adadelta", "learning_rate": 1.0},
}
# (method, parameters, which input count it is timed on: the kNN estimator, brute force in these dimensions, on fewer)
ESTIMATORS = [
    ("binning", {"bin_size": 0.5}, "n"),
    ("adaptive_binning", {"n_bins": 30}, "n"),
    ("kde_upper", {"noise_variance": 0.0735}, "n"),
    ("ksg", {"k": 3}, "n_slow"),
]


def upscaled(d: data.Dataset) -> data.Dataset:
    """``d`` (8x8 digits) as 28x28x1 images: each pixel a 4x4 block, the 32x32 result cropped to its centre."""

    def up(x):
        return np.kron(x.reshape(-1, 8, 8), np.ones((4, 4), np.float32))[:, 2:30, 2:30].reshape(len(x), -1)

    return data.Dataset(
        "digits28", up(d.x_train), d.y_train, up(d.x_test), d.y_test, up(d.x_measure), d.y_measure, 10, (28, 28, 1)
    )


def epochs_per_second(d: data.Dataset, epochs: int, jit: bool | None = None):
    """(epochs/s over ``epochs`` epochs after a warm-up epoch, the core)."""
    from ib_sweeps import train

    cfg = config.validate(RAW)
    core = train.build_core(cfg.model, cfg.train, d, 0, jit=jit)
    core.advance(0)
    core.advance(1)  # tracing / XLA compilation
    t = time.perf_counter()
    core.advance(1 + epochs)
    return epochs / (time.perf_counter() - t), core


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def arrays(d: data.Dataset, sizes: list[int], epochs: int, repeats: int) -> None:
    """(d): the CNN array at each N vs the core alone, net-epochs/s side by side (see the module docstring)."""
    from ib_sweeps import train
    from ib_sweeps.train.array import build_array_core

    length = repeats * sum(sizes) * epochs + 2  # the alone core trains every N's epochs
    cfg = config.validate(RAW | {"train": {**RAW["train"], "epochs": length}})
    load0 = os.getloadavg()
    print(f"(d) digits CNN, {cfg.train.optimizer} {cfg.train.learning_rate}, batch {cfg.train.batch_size}; 1 TF thread")
    head = ("N", 4), ("alone/wall", 11), ("array/wall", 11), ("ratio", 6), ("alone/CPU", 10), ("array/CPU", 10)
    print(" ".join(f"{h:>{w}}" for h, w in head), f"{'ratio':>6}")
    alone = train.build_core(cfg.model, cfg.train, d, 0)
    alone.advance(1)  # warm-up: tracing
    for n in sizes:
        arr = build_array_core(cfg.model, cfg.train, d, list(range(n)))
        arr.advance(1)  # warm-up: XLA compilation
        best = {"alone": [0.0, 0.0], "array": [0.0, 0.0]}
        for _ in range(repeats):
            runs = (("alone", alone, n * epochs), ("array", arr, epochs))
            for name, core, k in runs:
                wall, cpu = timed(lambda core=core, k=k: core.advance(core.epoch + k))
                best[name] = [max(best[name][0], n * epochs / wall), max(best[name][1], n * epochs / cpu)]
        (aw, ac), (bw, bc) = best["alone"], best["array"]
        print(f"{n:>4} {aw:>11.2f} {bw:>11.2f} {bw / aw:>6.2f} {ac:>10.2f} {bc:>10.2f} {bc / ac:>6.2f}")
    before, after = ("/".join(f"{x:.2f}" for x in load) for load in (load0, os.getloadavg()))
    print(f"net-epochs/s (best of {repeats}); load average (1/5/15 min) before {before}, after {after}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="measured inputs for binning, adaptive binning, kde_upper")
    ap.add_argument("--n-slow", type=int, default=300, help="measured inputs for ksg")
    ap.add_argument("--cpus", type=int, default=1, help="TensorFlow thread pool size")
    ap.add_argument("--no-xla", action="store_true", help="skip the (slow) XLA timing of (a)")
    ap.add_argument("--arrays", action="store_true", help="run (d) only: trial arrays vs the core alone")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10], help="(d): replicas N")
    ap.add_argument("--array-epochs", type=int, default=4, help="(d): epochs per network")
    ap.add_argument("--repeats", type=int, default=2, help="(d): alternating measurements per N (best kept)")
    args = ap.parse_args()
    runtime.configure_tensorflow(args.cpus)
    cfg = config.validate(RAW)
    digits = data.load(cfg.data, np.random.default_rng(0))
    if args.arrays:
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # each core is a new tf.function: its "retracing" warnings say nothing
        arrays(digits, args.sizes, args.array_epochs, args.repeats)
        return

    plain, _ = epochs_per_second(digits, 10)
    print(f"(a) digits CNN, {len(digits.x_train)} training images: plain graph {plain:.2f} epochs/s", end="")
    if not args.no_xla:
        xla, _ = epochs_per_second(digits, 2, jit=True)
        print(f", XLA {xla:.2f} epochs/s (plain / XLA = {plain / xla:.0f}x)", end="")
    print()

    big = upscaled(digits)
    rate, core = epochs_per_second(big, 2)
    per_input = 4 * models.activity_floats(cfg.model, (28, 28, 1), 10)
    images_per_s = len(big.x_train) * rate
    print(
        f"(b) 28x28 CNN ({models.count_params(cfg.model, (28, 28, 1), 10):,} parameters): {rate:.3f} epochs/s over "
        f"{len(big.x_train)} images = {images_per_s:.0f} images/s, so ~{60_000 / images_per_s:.0f}"
        f" s per 60 000-image epoch (with its train and test evaluation); activity {per_input / 1e3:.0f} kB per "
        f"measured input ({per_input * 1000 / 2**20:.0f} MiB per 1000), by layer "
        f"{[s for s in models.cnn_shapes(cfg.model, (28, 28, 1))]}"
    )

    _, acts = core.advance(4)
    sizes = {"n": args.n, "n_slow": args.n_slow}
    print(f"(c) estimators on the 28x28 CNN's activity at epoch 4 (seconds per layer: {core.layer_names}):")
    for method, params, which in ESTIMATORS:
        n = sizes[which]
        layers = [a[:n] for a in acts]
        labels = big.y_measure[:n]
        for reducer in ("concat", "mean"):
            est = estimators.get(method, reducer=reducer, **params)
            times, values = [], []
            for a in layers:
                t = time.perf_counter()
                values.append(est.information_plane(a, labels)[0])
                times.append(time.perf_counter() - t)
            print(
                f"    {method:16s} {reducer:6s} n={n:5d}: "
                + " ".join(f"{s:7.2f}" for s in times)
                + f"  | I(X;T) {np.round(values, 2).tolist()} of H(X) {np.log2(n):.2f}"
            )


if __name__ == "__main__":
    main()
