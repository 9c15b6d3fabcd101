"""Estimator speed against straightforward references, measured side by side.

1. ``kde_upper`` on the 12-bit net's 6 layers (4096 inputs) vs the textbook
   computation: the full n x n squared-distance matrix, ``scipy.special.logsumexp``
   over each row, and the class-conditional terms from each class's own distance
   matrix (as the Saxe et al. code does). Target >= 5x, same numbers to 1e-6 bits.
2. ``ksg`` on n = 10 000 (3-D and 2-D continuous variables) vs the same estimator
   with a brute-force O(n^2) neighbour search (in row blocks). Target >= 10x.
3. ``adaptive_binning`` (30 quantile bins, and layer_range) on one measured epoch of a
   6-layer net (widths 10-7-5-4-3 + softmax 2, 4096 inputs, float32 activity) vs the
   first, per-unit implementation (sort + searchsorted per column, one layer at a
   time). Target >= 3x, the same float bits.
4. ``replicas``: one measured epoch of a trial array of N = 6, 30, 60 replicas of the
   ``activations`` sweep's network (12-10-7-5-4-3-2, 4096 inputs, float32; tanh and ReLU
   replicas alternating), measured by its estimators (binning bin_size 0.07 + adaptive_binning
   30 quantile bins): replica by replica (``trial.measure`` each, as arrays did) vs together
   (``estimators.replicas.measure``), side by side; ms per epoch, ratio, load average. Same bits.

Usage: python benchmarks/bench_estimators.py [kde_upper] [ksg] [adaptive_binning] [replicas]  (default: all)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from scipy.special import logsumexp
from timing import best_of, interleaved_best

from ib_sweeps import config, data, estimators, runtime
from ib_sweeps.estimators import discrete


def reference_kde_upper(a, y, var):
    """(I(X;T), I(Y;T)) in bits, the straightforward way."""
    a = np.asarray(a, dtype=np.float64)

    def h(x):  # H(T) - H(T|X) in nats: -mean_i log mean_j exp(-D_ij / 2 var)
        sq = (x * x).sum(1)
        dist = sq[:, None] + sq[None, :] - 2 * x @ x.T
        return -np.mean(logsumexp(-dist / (2 * var), axis=1) - np.log(len(x)))

    h_t = h(a)
    h_t_y = sum(np.mean(y == k) * h(a[y == k]) for k in np.unique(y))
    return h_t / np.log(2), (h_t - h_t_y) / np.log(2)


def brute_force_ksg(a, b, k=3):
    """KSG algorithm 1 in bits with O(n^2) max-norm distances, row block by row block."""
    from scipy.special import digamma

    n, n_a, n_b = len(a), np.zeros(len(a)), np.zeros(len(a))
    for r0 in range(0, n, 500):
        da = np.abs(a[r0 : r0 + 500, None, :] - a[None, :, :]).max(-1)
        db = np.abs(b[r0 : r0 + 500, None, :] - b[None, :, :]).max(-1)
        eps = np.partition(np.maximum(da, db), k, axis=1)[:, k]  # k-th neighbour; column 0 is the point itself
        n_a[r0 : r0 + 500] = (da < eps[:, None]).sum(1) - 1
        n_b[r0 : r0 + 500] = (db < eps[:, None]).sum(1) - 1
    return max(0.0, digamma(k) + digamma(n) - np.mean(digamma(n_a + 1) + digamma(n_b + 1))) / np.log(2)


def per_unit_adaptive_plane(a, y, n_bins, strategy):
    """(I(X;T), I(Y;T)) in bits of one layer, as the first adaptive_binning implementation did it."""
    a = np.asarray(a, dtype=np.float64)
    if strategy == "layer_range":
        lo, hi = a.min(), a.max()
        if hi == lo:
            codes = np.zeros(a.shape, dtype=np.int64)
        else:
            codes = np.minimum(((a - lo) * (n_bins / (hi - lo))).astype(np.int64), n_bins - 1)
    else:
        n = len(a)
        codes = np.empty(a.shape, dtype=np.int64)
        for j in range(a.shape[1]):
            col = a[:, j]
            codes[:, j] = np.searchsorted(np.sort(col), col, side="left") * n_bins // n
    table = discrete.joint_counts(discrete.dense_ids(discrete.row_keys(codes)), discrete.dense_ids(y))
    h_t = discrete.entropy_of_counts(table.sum(axis=1))
    h_y = discrete.entropy_of_counts(table.sum(axis=0))
    return h_t, max(0.0, h_t + h_y - discrete.entropy_of_counts(table))


def tanh_net_activity(x, widths, rng, activation=np.tanh):
    """float32 activity of each layer of a random tanh MLP with a softmax output (no TensorFlow)."""
    layers, h = [], x.astype(np.float32)
    for i, w in enumerate(widths):
        z = h @ (rng.normal(size=(h.shape[1], w)) * 2 / np.sqrt(h.shape[1])).astype(np.float32)
        if i < len(widths) - 1:
            h = activation(z)
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
        layers.append(h)
    return layers


def bench_adaptive_binning() -> None:
    cfg = config.validate({})
    d = data.load(cfg.data, np.random.default_rng(0))
    layers, y = tanh_net_activity(d.x_measure, (10, 7, 5, 4, 3, 2), np.random.default_rng(0)), d.y_measure
    print(f"adaptive_binning, one measured epoch: 6 layers x {len(y)} inputs, float32; load {os.getloadavg()}")
    for strategy in ("quantile", "layer_range"):
        est = estimators.get("adaptive_binning", n_bins=30, strategy=strategy)
        ours = est.information_planes(layers, y)
        ref = np.array([per_unit_adaptive_plane(a, y, 30, strategy) for a in layers])
        assert ours.tolist() == ref.tolist(), "results differ from the per-unit implementation"
        t_ref, t_ours = interleaved_best(
            lambda: [per_unit_adaptive_plane(a, y, 30, strategy) for a in layers],  # noqa: B023 (called at once)
            lambda: est.information_planes(layers, y),  # noqa: B023
            rounds=100,
        )
        print(f"  {strategy:11s} per unit, layer by layer: {t_ref * 1e3:6.2f} ms")
        print(f"  {strategy:11s} one vectorised pass     : {t_ours * 1e3:6.2f} ms   ratio {t_ref / t_ours:5.1f}x")
    print(f"  identical float bits; load {os.getloadavg()}")


def bench_kde_upper() -> None:
    runtime.configure_tensorflow(1)
    from ib_sweeps import train

    cfg = config.validate({"train": {"epochs": 10_000}})
    d = data.load(cfg.data, np.random.default_rng(0))
    _, layers = train.build_core(cfg.model, cfg.train, d, 0).advance(500)
    y, var = d.y_measure, 1e-3
    est = estimators.get("kde_upper", noise_variance=var)
    ours = est.information_planes(layers, y)
    ref = np.array([reference_kde_upper(a, y, var) for a in layers])
    t_ref = best_of(lambda: [reference_kde_upper(a, y, var) for a in layers], 3)
    t_ours = best_of(lambda: est.information_planes(layers, y), 3)
    print(f"kde_upper, 6 layers x 4096 inputs, noise variance {var}:")
    print(f"  reference (full matrix + logsumexp): {t_ref:6.2f} s")
    print(f"  ib_sweeps                          : {t_ours:6.2f} s   ratio {t_ref / t_ours:5.1f}x")
    print(f"  largest difference: {np.abs(ours - ref).max():.2e} bits")


def bench_ksg() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10_000, 3))
    b = a[:, :2] + 0.5 * rng.normal(size=(10_000, 2))
    ksg = estimators.get("ksg", jitter=0.0)  # no jitter: both see the same points
    mi = ksg.mutual_information(a, b)
    assert abs(mi - brute_force_ksg(a, b)) < 1e-9
    t_brute = best_of(lambda: brute_force_ksg(a, b), 1)
    t_tree = best_of(lambda: ksg.mutual_information(a, b), 3)
    print(f"ksg, n = 10 000 (3-D vs 2-D), I = {mi:.3f} bits:")
    print(f"  brute-force O(n^2) neighbours      : {t_brute:6.2f} s")
    print(f"  ib_sweeps (cKDTree)                : {t_tree:6.2f} s   ratio {t_brute / t_tree:5.1f}x")


def bench_replicas(sizes=(6, 30, 60), rounds=15) -> None:
    from ib_sweeps.estimators import replicas
    from ib_sweeps.trial import measure

    cfg = config.validate({})
    d = data.load(cfg.data, np.random.default_rng(0))
    ests = [estimators.get("binning", bin_size=0.07), estimators.get("adaptive_binning", n_bins=30)]
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    nets = [
        tanh_net_activity(d.x_measure, (10, 7, 5, 4, 3, 2), np.random.default_rng(s), (np.tanh, relu)[s % 2])
        for s in range(max(sizes))
    ]
    load0 = os.getloadavg()
    print(f"replicas, one measured epoch of N replicas: 12-10-7-5-4-3-2 x {len(d.y_measure)} inputs, float32,")
    print("  tanh and ReLU alternating; binning bin_size 0.07 + adaptive_binning 30 quantile bins; ms per epoch")
    print(f"  {'N':>3} {'one by one':>11} {'together':>9} {'ratio':>6} {'one by one':>11} {'together':>9} {'ratio':>6}")
    print(f"  {'':>3} {'(wall)':>11} {'(wall)':>9} {'':>6} {'(CPU)':>11} {'(CPU)':>9}")
    for n in sizes:
        jobs = [(ests, layers, d.y_measure) for layers in nets[:n]]
        for alone, (together, _) in zip([measure(*job) for job in jobs], replicas.measure(jobs), strict=True):
            assert all(a.tolist() == b.tolist() for a, b in zip(alone, together, strict=True)), "results differ"
        best = np.full((2, 2), np.inf)  # (one by one, together) x (wall, CPU)
        for _ in range(rounds):  # alternating, so both see the same machine state
            for i, fn in enumerate((lambda: [measure(*job) for job in jobs], lambda: replicas.measure(jobs))):  # noqa: B023
                t, c = time.perf_counter(), time.process_time()
                fn()
                best[i] = np.minimum(best[i], (time.perf_counter() - t, time.process_time() - c))
        (aw, ac), (bw, bc) = best * 1e3
        print(f"  {n:>3} {aw:>11.1f} {bw:>9.1f} {aw / bw:>5.2f}x {ac:>11.1f} {bc:>9.1f} {ac / bc:>5.2f}x")
    load1 = os.getloadavg()
    before, after = ("/".join(f"{x:.2f}" for x in load) for load in (load0, load1))
    print(f"  identical float bits; best of {rounds} alternating rounds; load (1/5/15 min) {before} -> {after}")


BENCHMARKS = {
    "kde_upper": bench_kde_upper,
    "ksg": bench_ksg,
    "adaptive_binning": bench_adaptive_binning,
    "replicas": bench_replicas,
}


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown}; available: {', '.join(BENCHMARKS)}")
    for name in names or BENCHMARKS:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
