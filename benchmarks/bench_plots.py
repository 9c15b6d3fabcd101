"""Time of a trial's figures: ``plots.save_all`` now vs a baseline revision of ``ib_sweeps/plots.py``.

Builds realistic synthetic traces (default 5000 epochs of history, 200
log-spaced measured epochs, a few backtracked, 2 estimators, 6 layers,
gradient statistics every epoch; another seed, so other values, for every
call) and times the baseline's and the current ``save_all`` alternately, so
both see the same machine state:

* warm: calls in one process after one untimed call each, as when a process
  saves many trials' figures (trial arrays, Ray workers): the current
  ``save_all`` reuses its frames (module docstring of ``ib_sweeps.plots``);
* cold: the first call in a fresh process (imports not timed), as for a
  process that runs one trial.

It prints each call's wall and CPU seconds, the best and median of each, their
ratios, and the load average (on a shared machine CPU time is the steadier
figure: it does not count time spent waiting for a core).

The baseline is ``ib_sweeps/plots.py`` at ``--baseline`` (default: the last
revision before axes were kept as images and text layouts and glyphs in the
renderer, ``5345b05``; ``5327eb1`` is the one before frames were kept), read
with ``git show`` into a temporary module. After the untimed first round it
prints the largest difference of any pixel between the two revisions' files
(0-255 per channel, and how many pixels differ). ``--keep DIR`` keeps one set
of PNGs of each in ``DIR/baseline`` and ``DIR/current`` to compare by eye.

    python benchmarks/bench_plots.py [--rounds 5] [--cold 3] [--epochs 5000] [--measured 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import load, module_at

BASELINE = "5345b0515c99757158249f0dbc4a0b2f849ebd9e"  # kept frames; axes, glyphs and PNG rows as matplotlib drew them


def synthetic_trace(epochs: int, measured: int, layers: int = 6, estimators=("binning", "kde"), seed: int = 0):
    """A trace shaped like a default trial's (``ib_sweeps.trace.Trace``), with smooth curves plus noise."""
    from ib_sweeps import records
    from ib_sweeps.trace import Trace

    rng = np.random.default_rng(seed)
    e = np.arange(epochs + 1)
    loss = 0.7 * np.exp(-e / 800) + 0.02 + 0.01 * rng.random((2, epochs + 1))
    acc = 1 - loss / 1.5
    history = np.column_stack([loss[0], acc[0], loss[1] + 0.03, acc[1] - 0.02])
    t = Trace(list(estimators), [f"layer_{j + 1}" for j in range(layers)], list(records.HISTORY), 12.0, 1.0, history)
    scheduled = np.unique(np.r_[0, np.geomspace(1, epochs, 3 * measured).astype(int)])
    picked = scheduled[np.linspace(0, len(scheduled) - 1, measured).astype(int)]
    rise = 1 - np.exp(-(picked + 1) / 50)
    fall = np.log1p(picked) / np.log1p(epochs)
    for k, epoch in enumerate(picked):
        ixt = np.array([[(11.5 - j) * rise[k] - (2.5 - 0.3 * j) * fall[k] for j in range(layers)]] * len(estimators))
        iyt = np.array([[0.95 * rise[k] + 0.04 * fall[k] - 0.02 * j for j in range(layers)]] * len(estimators))
        noise = 0.05 * rng.standard_normal((2, *ixt.shape))
        t.add(
            epoch, ixt + noise[0], np.clip(iyt + 0.1 * noise[1], 0, 1), "backtracked" if k % 40 == 39 else "scheduled"
        )
    mean = 1.0 / np.sqrt(e[:, None] + 10) * (1 + np.arange(layers))[None, :]
    std = 0.3 * np.ones((epochs + 1, layers)) * (1 + 0.1 * rng.standard_normal((epochs + 1, layers)))
    grad = np.stack([mean, std, mean / std], axis=-1).astype(np.float32)
    grad[0] = np.nan
    t.grad = grad
    return t


def load_baseline(rev: str, tmp: Path):
    """``ib_sweeps/plots.py`` at git revision ``rev`` as a module of its own."""
    return module_at(rev, "ib_sweeps/plots.py", tmp)


def contenders(rev: str, tmp: Path) -> dict:
    from ib_sweeps import plots

    return {"baseline": load_baseline(rev, tmp), "current": plots}


def timed(module, trace, out: Path) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds of one ``save_all``, and the names of the files it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    t, c = time.perf_counter(), time.process_time()
    paths = module.save_all(trace, out)
    return time.perf_counter() - t, time.process_time() - c, sorted(p.name for p in paths)


def compare_pixels(old: Path, new: Path) -> None:
    """Print, per file, the largest difference of a pixel channel (0-255) and how many pixels differ at all."""
    from PIL import Image

    for path in sorted(old.glob("*.png")):
        a, b = (np.asarray(Image.open(d / path.name), dtype=int) for d in (old, new))
        if a.shape != b.shape:
            sys.exit(f"{path.name}: {a.shape} pixels in the baseline, {b.shape} now")
        diff = np.abs(a - b).max(axis=-1)
        print(f"    {path.name:36s} largest pixel difference {diff.max():3d}, in {np.count_nonzero(diff):6d} pixels")


def summary(runs: dict[str, list[tuple[float, float]]]) -> None:
    for i, clock in enumerate(("wall", "CPU")):
        for label, stat in (("best", np.min), ("median", np.median)):
            old, new = (float(stat([r[i] for r in runs[name]])) for name in ("baseline", "current"))
            print(f"  {clock:4s} {label:6s}: baseline {old:6.2f} s, current {new:6.2f} s per call, {old / new:5.2f}x")


def first_call(args, name: str) -> None:
    """One timed ``save_all`` in this fresh process; prints ``wall cpu``."""
    with tempfile.TemporaryDirectory() as tmp:
        module = contenders(args.baseline, Path(tmp))[name]
        import matplotlib.figure
        import matplotlib.pyplot  # noqa: F401  (imports are not what is timed)

        wall, cpu, _ = timed(module, synthetic_trace(args.epochs, args.measured), Path(tmp) / "out")
    print(wall, cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="warm: alternating calls of each")
    ap.add_argument("--cold", type=int, default=3, help="cold: alternating fresh processes of each (0: none)")
    ap.add_argument("--epochs", type=int, default=5000, help="epochs of history and gradient statistics")
    ap.add_argument("--measured", type=int, default=200, help="measured epochs")
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline plots.py")
    ap.add_argument("--keep", type=Path, help="keep one set of PNGs of each here")
    ap.add_argument("--first-call", choices=("baseline", "current"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_call:
        first_call(args, args.first_call)
        return

    print(f"save_all: {args.epochs} epochs, {args.measured} measured, 6 layers, 2 estimators, gradient stats")
    print(f"load average before: {load()} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        modules = contenders(args.baseline, Path(tmp))
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in modules}
        files = {}
        print(f"warm, {args.rounds} calls each:")
        for r in range(args.rounds + 1):  # round 0 warms up (imports, font cache, frames), untimed
            trace = synthetic_trace(args.epochs, args.measured, seed=r)
            for name, module in modules.items():
                out = (args.keep / name) if args.keep and r == 0 else Path(tmp) / name
                wall, cpu, files[name] = timed(module, trace, out)
                if r:
                    runs[name].append((wall, cpu))
                    print(f"    {name:8s} {wall:6.2f} s wall {cpu:6.2f} s CPU   load {os.getloadavg()[0]:.2f}")
            if r == 0:
                compare_pixels(*((args.keep / name) if args.keep else Path(tmp) / name for name in modules))
        if files["baseline"] != files["current"]:
            sys.exit(f"different files: {files}")
        summary(runs)
    if args.cold:
        print(f"cold (first call in a fresh process), {args.cold} each:")
        runs = {"baseline": [], "current": []}
        for _ in range(args.cold):
            for name in runs:
                command = [sys.executable, __file__, "--first-call", name, "--epochs", str(args.epochs),
                           "--measured", str(args.measured), "--baseline", args.baseline]  # fmt: skip
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
                wall, cpu = float(out[-2]), float(out[-1])
                runs[name].append((wall, cpu))
                print(f"    {name:8s} {wall:6.2f} s wall {cpu:6.2f} s CPU   load {os.getloadavg()[0]:.2f}")
        summary(runs)
    print(f"files ({len(files['current'])}, the same in both): {', '.join(files['current'])}")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
