"""Speed of the training core and the binning estimator against the reference-code way.

Prints ratios measured side by side in one run (targets: >= 20x each):

(a) epochs/s of ``TrainingCore`` with activity capture on the default 12-bit
    net vs a plain Keras ``model.fit`` with a per-epoch ``predict`` callback
    (how the reference codes capture activity); both capture every epoch,
    both evaluate the test set every epoch. Also the core on a log grid.
(b) binning estimate of all 6 layers on 4096 inputs vs ``np.unique(axis=0)``
    on the binned float rows (per class for H(T|Y)), timed two ways: each in its
    own loop (warm caches, like timeit) and with calls interleaved (each call
    after the other method churned the caches; closer to a trial, where
    training runs between estimates).

Usage: python benchmarks/bench_foundation.py [--epochs 200] [--cpus 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from timing import best_of, interleaved_best

from ib_sweeps import config, data, estimators, runtime, schedules


def keras_fit_epochs_per_s(cfg, d, epochs: int, capture: bool = True) -> float:
    import keras

    inp = keras.Input((d.x_train.shape[1],))
    h, outs = inp, []
    for width in cfg.model.hidden:
        h = keras.layers.Dense(width, activation=cfg.model.activation)(h)
        outs.append(h)
    out = keras.layers.Dense(d.n_classes, activation="softmax")(h)
    model, activity = keras.Model(inp, out), keras.Model(inp, [*outs, out])
    opt = keras.optimizers.Adam(cfg.train.learning_rate)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    captured = []

    class Capture(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            captured.append(activity.predict(d.x_measure, verbose=0))

    callbacks = [Capture()] if capture else []
    kw = dict(batch_size=cfg.train.batch_size, validation_data=(d.x_test, d.y_test), callbacks=callbacks, verbose=0)
    model.fit(d.x_train, d.y_train, epochs=2, **kw)  # warm-up: tracing and compilation
    t = time.perf_counter()
    model.fit(d.x_train, d.y_train, epochs=epochs, **kw)
    return epochs / (time.perf_counter() - t)


def core_epochs_per_s(cfg, d, stops) -> float:
    from ib_sweeps import train

    core = train.build_core(cfg.model, cfg.train, d, 0)
    core.advance(0)
    core.advance(1)  # warm-up: XLA compilation
    t = time.perf_counter()
    for e in stops:
        core.advance(int(e) + 1)
    return (stops[-1] + 1 - 1) / (time.perf_counter() - t)


def reference_binning(layers, y, edges):
    out = []
    for a in layers:
        digitized = edges[np.digitize(a, edges) - 1]  # as in the IDNNs code

        def h(rows):
            _, counts = np.unique(rows, axis=0, return_counts=True)
            p = counts / counts.sum()
            return -(p * np.log2(p)).sum()

        h_t = h(digitized)
        out.append((h_t, h_t - sum(np.mean(y == k) * h(digitized[y == k]) for k in np.unique(y))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=200, help="epochs timed for each trainer")
    ap.add_argument("--cpus", type=int, default=1, help="TensorFlow thread pool size")
    args = ap.parse_args()
    runtime.configure_tensorflow(args.cpus)

    cfg = config.validate({"train": {"epochs": 10_000}})
    d = data.load(cfg.data, np.random.default_rng(0))

    # (b) first, before Keras has run: timings interleaved so both see the same machine state.
    from ib_sweeps import train

    _, layers = train.build_core(cfg.model, cfg.train, d, 0).advance(500)
    y = d.y_measure
    est = estimators.get("binning", n_bins=30)
    edges = np.linspace(-1, 1, 30)
    ours = est.information_planes(layers, y)  # what a trial calls
    ref = reference_binning(layers, y, edges)
    assert np.allclose(ours, ref, atol=1e-9), (ours, ref)
    reference, ours_fn = (lambda: reference_binning(layers, y, edges)), (lambda: est.information_planes(layers, y))
    tight = (best_of(reference, 30), best_of(ours_fn, 30))
    mixed = interleaved_best(reference, ours_fn)

    n = args.epochs
    keras_rate = keras_fit_epochs_per_s(cfg, d, n)
    keras_plain = keras_fit_epochs_per_s(cfg, d, n, capture=False)
    every_rate = core_epochs_per_s(cfg, d, np.arange(1, n + 1))
    log_stops = schedules.Log(n=300).epochs(8000)[1:] - 1
    log_rate = core_epochs_per_s(cfg, d, log_stops[log_stops >= 1])
    print(f"(a) training with activity capture, default 12-bit net, {args.cpus} thread(s)")
    print(f"    Keras model.fit + per-epoch predict : {keras_rate:9.1f} epochs/s")
    print(f"    (Keras model.fit, no capture at all : {keras_plain:9.1f} epochs/s)")
    for label, rate in (("capture every epoch", every_rate), ("log grid (300/8000)", log_rate)):
        print(f"    ib_sweeps core, {label} : {rate:9.1f} epochs/s  ratio {rate / keras_rate:6.1f}x")
    print("(b) binning, all 6 layers on 4096 inputs, activity at epoch 500 (same numbers to 1e-9)")
    for label, (t_ref, t_ours) in (("each in its own loop ", tight), ("calls interleaved    ", mixed)):
        ms = f"reference {t_ref * 1e3:6.2f} ms, ib_sweeps {t_ours * 1e3:5.2f} ms"
        print(f"    {label}: {ms}, ratio {t_ref / t_ours:5.1f}x")


if __name__ == "__main__":
    main()
