"""Wall-time helpers shared by the benchmark scripts, and the baseline code they time against."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path

import numpy as np


def load() -> str:
    """The load average (1, 5, 15 min), as the benchmarks print it beside their timings."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def module_at(rev: str, path: str, tmp: Path):
    """The repository's file ``path`` (e.g. ``ib_sweeps/plots.py``) at git revision ``rev``, imported as a module
    of its own (named after the file, ``_baseline`` added), so a benchmark can time the old code beside the new."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, check=True, capture_output=True, text=True)
    name = f"{Path(path).stem}_baseline"
    file = tmp / f"{name}.py"
    file.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
