"""Wall-time helpers shared by the benchmark scripts."""

from __future__ import annotations

import time

import numpy as np


def best_of(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` back-to-back calls (warm caches, as timeit does)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved_best(baseline, ours, rounds: int = 30) -> tuple[float, float]:
    """Best wall time of each, alternating calls: each runs after the other has churned the caches."""
    best = [np.inf, np.inf]
    for _ in range(rounds):
        for i, fn in enumerate((baseline, ours)):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best[0], best[1]
