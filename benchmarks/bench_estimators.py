"""Estimator speed against straightforward references, measured side by side.

1. ``kde_upper`` on the 12-bit net's 6 layers (4096 inputs) vs the textbook
   computation: the full n x n squared-distance matrix, ``scipy.special.logsumexp``
   over each row, and the class-conditional terms from each class's own distance
   matrix (as the Saxe et al. code does). Target >= 5x, same numbers to 1e-6 bits.
2. ``ksg`` on n = 10 000 (3-D and 2-D continuous variables) vs the same estimator
   with a brute-force O(n^2) neighbour search (in row blocks). Target >= 10x.

Usage: python benchmarks/bench_estimators.py
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from timing import best_of

from ib_sweeps import config, data, estimators, runtime


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


def main() -> None:
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


if __name__ == "__main__":
    main()
