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
    """Wall seconds of the sweep with ``resources.array_size=size``, and its tracking URI (also :data:`STARTED`)."""
    store = workdir / f"array_size_{size}"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "ib_sweeps.cli", "sweep", "activations", "--tracking-uri", uri, "--no-progress"]
    for item in [*sets, f"resources.array_size={size}"]:
        cmd += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    t0, started = time.perf_counter(), time.time()
    proc = subprocess.run(cmd, cwd=store, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"array_size={size} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    STARTED[uri] = (started, started + wall)
    return wall, uri


STARTED: dict[str, tuple[float, float]] = {}  # tracking URI -> (command start, command end), epoch seconds


def timeline(uri: str) -> str:
    """Where a layout's wall time went, from its store: the command's start to its parent run, the parent to the
    first trial's run, the trials' runs, the last run's end to the command's end; per trial the means of its
    ``time/*`` metrics (``train_s``: its share of an array's build, compilation and training; ``estimate_s``:
    its estimation, wall time; ``total_s``: its share of the array's wall time)."""
    import sqlite3

    start, end = STARTED[uri]
    db = sqlite3.connect(uri.removeprefix("sqlite:///"))
    runs = db.execute("select run_uuid, name, start_time / 1000.0, end_time / 1000.0 from runs").fetchall()
    parent = min(runs, key=lambda r: r[2])
    trials = [r for r in runs if r is not parent]
    first, last = min(r[2] for r in trials), max(r[3] for r in trials)
    times = db.execute("select key, avg(value) from latest_metrics where key like 'time/%' group by key").fetchall()
    means = ", ".join(f"{k.removeprefix('time/')} {v:.2f}" for k, v in times if "backtrack" not in k)
    return (
        f"command -> parent {parent[2] - start:.1f} s, parent -> first trial {first - parent[2]:.1f} s, "
        f"trials {last - first:.1f} s, last trial -> command end {end - last:.1f} s; per trial: {means}"
    )


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
        for size, uri in uris.items():
            print(f"  array_size={size:>4} (last run): {timeline(uri)}")
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
