"""The reduced ``activations`` sweep with ``resources.array_size=1`` vs ``auto``, side by side (issue 14).

2 seeds x 1000 epochs x the 6 activations (12 trials), each layout run as a
user runs it (``ib-sweeps sweep``, a fresh SQLite store, a private local Ray),
one after the other, ``--repeats`` times alternately; wall time of the whole
command. Then the verdict table of each run (claims of the sweep file) and of
each per-condition statistic; the verdicts must be identical. Used by
``benchmarks/bench_arrays.py``; alone: ``python benchmarks/array_sweep.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REDUCED = ["seeds=2", "train.epochs=1000"]


def run_layout(size: str, workdir: Path, sets=REDUCED) -> tuple[float, str]:
    """Wall seconds of the sweep with ``resources.array_size=size``, and its tracking URI."""
    store = workdir / f"array_size_{size}"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "sweep", "activations", "--tracking-uri", uri, "--no-progress"]
    for item in [*sets, f"resources.array_size={size}"]:
        cmd += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=store, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"array_size={size} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, uri


def verdicts(uri: str):
    """The sweep's verdict table (claim, verdict, reason) from its store."""
    from ib_sweeps.analysis.verdicts import evaluate_claims, verdict_table

    return verdict_table(evaluate_claims("activations", uri))[["claim", "verdict", "reason"]]


def main(repeats: int = 1) -> dict:
    print(f"reduced activations sweep ({', '.join(REDUCED)}, 6 activations = 12 trials), load {os.getloadavg()}")
    walls: dict[str, list[float]] = {"1": [], "auto": []}
    with tempfile.TemporaryDirectory(prefix="ib-sweeps-bench-") as tmp:
        uris = {}
        for i in range(repeats):
            for size in ("1", "auto") if i % 2 == 0 else ("auto", "1"):
                wall, uris[size] = run_layout(size, Path(tmp) / f"rep{i}")
                walls[size].append(wall)
                print(f"  array_size={size:>4}: {wall:6.1f} s wall   (load {os.getloadavg()[0]:.1f})", flush=True)
        tables = {size: verdicts(uri) for size, uri in uris.items()}
    best = {size: min(w) for size, w in walls.items()}
    ratio = best["1"] / best["auto"]
    print(f"  best: array_size=1 {best['1']:.1f} s, auto {best['auto']:.1f} s: {ratio:.2f}x faster with arrays")
    same = tables["1"][["claim", "verdict"]].equals(tables["auto"][["claim", "verdict"]])
    print(f"  verdict tables identical: {same}")
    for size, table in tables.items():
        print(f"  verdicts, array_size={size}:")
        for row in table.itertuples():
            print(f"    {row.verdict:>12}  {row.claim}  ({row.reason[:100]})")
    return {"walls": walls, "ratio": ratio, "same_verdicts": same}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs of each layout (best kept)")
    result = main(ap.parse_args().repeats)
    sys.exit(0 if result["same_verdicts"] else 1)
