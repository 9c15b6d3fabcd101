"""Reading a sweep back from MLflow: bulk reads vs one MLflow call per (run, metric key).

Writes a synthetic sweep (default 100 trials x 300 measured epochs x 6 layers
x 2 estimators, loss and accuracy at every measured epoch) into a fresh SQLite
store, then times, in the same run:

* baseline: ``MlflowClient.get_metric_history`` for every (run, key), as a
  notebook would, then the same tidy frame;
* ``analysis.load_trace`` cold (bulk SQL query, empty cache) and warm (cached);
* ``analysis.compression_table`` and ``analysis.evaluate_claims`` on the result;
* with ``--figures N``: the report's four figures (``ib_sweeps/analysis/figures.py``,
  as ``report.write_report`` draws them into its PNGs), N rounds of the
  baseline revision (``--figures-baseline``, default the last before
  ``figures.png``: pyplot figures saved with ``savefig``) and the current one,
  alternately, after one untimed round of each (imports, font caches). It
  prints the largest pixel difference per figure (0-255, and in how many
  pixels), wall and CPU seconds per figure (best, median, ratio), and the load
  average before and after (on a shared machine CPU time is the steadier figure).

``--sweep NAME --tracking-uri URI`` reads a stored sweep (nothing written, no
per-key baseline) and times its figures, e.g. the 20-seed activations sweep::

    python benchmarks/bench_analysis.py [--trials 100] [--epochs 300] [--layers 6] [--figures 3]
    python benchmarks/bench_analysis.py --sweep activations --tracking-uri sqlite:////work/runs/mlflow.db --figures 3
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import load, module_at

FIGURES_BASELINE = "19182ebfb2527f32ed69db67e3dd748b9febe9a4"  # analysis/figures.py: pyplot figures, savefig
FIGURES = ("compression_by_condition", "plane_grid", "information_vs_epoch", "timing")


def baseline_figures(rev: str, tmp: Path):
    """``ib_sweeps/analysis/figures.py`` at git revision ``rev`` as a module of its own."""
    return module_at(rev, "ib_sweeps/analysis/figures.py", tmp)


def report_figures(module, trace, table, primary: str, order: list[str], current: bool):
    """The report's four figures drawn by ``module`` into PNG bytes at 90 dpi: [(png, wall s, CPU s)], in FIGURES order.

    The estimators as ``report._figures`` picks them; ``current``: ``module.png``, else pyplot's ``savefig``.
    """
    ests = list(dict.fromkeys([primary, *table["estimator"]]))
    primary = primary if primary in set(trace["estimator"].unique()) else ests[-1]
    ests = [e for e in ests if e in set(table["estimator"])]
    makes = (lambda: module.compression_by_condition(table, ests, order=order),
             lambda: module.plane_grid(trace, primary, order),
             lambda: module.information_vs_epoch(trace, primary, order),
             lambda: module.timing(trace, table, primary, order=order))  # fmt: skip
    out = []
    for make in makes:
        t, c = time.perf_counter(), time.process_time()
        fig = make()
        if current:
            png = module.png(fig, 90)
        else:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            module._plt().close(fig)
            png = buf.getvalue()
        out.append((png, time.perf_counter() - t, time.process_time() - c))
    return out


def time_figures(trace, table, primary: str, order: list[str], rounds: int, rev: str) -> None:
    """Baseline and current report figures, alternately; pixel differences, seconds per figure, load average."""
    from PIL import Image

    from ib_sweeps.analysis import figures

    print(f"report figures ({len(trace):,} trace rows), load average before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        contenders = {"baseline": baseline_figures(rev, Path(tmp)), "current": figures}
        first = {name: report_figures(m, trace, table, primary, order, name == "current")
                 for name, m in contenders.items()}  # fmt: skip
        for k, name in enumerate(FIGURES):
            a, b = (np.asarray(Image.open(io.BytesIO(first[c][k][0])), int) for c in contenders)
            diff = np.abs(a - b).max(axis=-1) if a.shape == b.shape else None
            same = "same bytes" if first["baseline"][k][0] == first["current"][k][0] else ""
            print(f"  {name:24s} " + (f"largest pixel difference {diff.max():3d}, in {np.count_nonzero(diff)} pixels "
                  f"{same}" if diff is not None else f"sizes differ: {a.shape} vs {b.shape}"))  # fmt: skip
        times: dict = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, module in contenders.items():
                times[name].append([r[1:] for r in report_figures(module, trace, table, primary, order,
                                                                  name == "current")])  # fmt: skip
    head = f"seconds, best/median of {rounds}"
    print(f"  {head:36s}  wall: baseline   current  ratio   CPU: baseline   current  ratio")
    for k, name in enumerate([*FIGURES, "all four"]):
        line = f"  {name:36s}"
        for i in (0, 1):  # wall, CPU
            per = {c: [sum(f[i] for f in r) if k == 4 else r[k][i] for r in times[c]] for c in contenders}
            old, new = per["baseline"], per["current"]
            line += (f"  {min(old):5.2f}/{np.median(old):5.2f} {min(new):5.2f}/{np.median(new):5.2f} "
                     f"{np.median(old) / np.median(new):5.2f}x")  # fmt: skip
        print(line)
    print(f"load average after: {load()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--db", help="SQLite file to reuse (written on the first run) instead of a temporary one")
    ap.add_argument("--figures", type=int, default=0, metavar="N", help="also time the report figures, N rounds")
    ap.add_argument("--figures-baseline", default=FIGURES_BASELINE, help="git revision of analysis/figures.py")
    ap.add_argument("--sweep", help="time the figures of this stored sweep (with --tracking-uri) instead")
    ap.add_argument("--tracking-uri", help="store of --sweep")
    args = ap.parse_args()

    from mlflow import MlflowClient

    from ib_sweeps import analysis
    from ib_sweeps.analysis import histories
    from ib_sweeps.analysis import synthetic as syn

    if args.sweep:
        t = time.perf_counter()
        trace = analysis.load_trace(args.sweep, args.tracking_uri)
        print(f"load_trace: {time.perf_counter() - t:.2f} s; {len(trace):,} rows")
        stored_figures(args, analysis, trace)
        return

    epochs = np.r_[0, np.unique(np.geomspace(1, 8000, args.epochs * 3).astype(int))][: args.epochs]
    rng = np.random.default_rng(0)
    trials = []
    for i in range(args.trials):
        act = ("tanh", "relu")[i % 2]
        layers = [f"layer_{k}" for k in range(1, args.layers + 1)]
        ixt = {(e, lay): syn.rise_fall(epochs, 300, 8, 5 if act == "tanh" else 8) + rng.normal(0, 0.05, len(epochs))
               for e in ("binning", "kde_upper") for lay in layers}  # fmt: skip
        iyt = {k: syn.rise_fall(epochs, 300, 0.9, 0.95) for k in ixt}
        per_epoch = {"loss/train": syn.kinked(epochs, 300, -0.5, -0.05), "loss/test": syn.kinked(epochs, 300, -0.4, 0),
                     "accuracy/train": np.linspace(0.5, 1, len(epochs)),
                     "accuracy/test": np.linspace(0.5, 0.9, len(epochs))}  # fmt: skip
        trials.append(syn.Trial({"model.activation": act, "seed": i // 2}, epochs, ixt, iyt, per_epoch))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db or Path(tmp) / "mlflow.db").resolve()
        uri = f"sqlite:///{db}"
        if not (args.db and db.exists()):
            t = time.perf_counter()
            claims = [{"kind": "compresses", "where": {"model.activation": "tanh"}},
                      {"kind": "depends_on", "axis": "model.activation"}]  # fmt: skip
            syn.write_sweep(uri, "bench", trials, {"base": {"estimators": [{"method": "binning"}]}, "claims": claims})
            n_points = sum(len(epochs) * (len(tr.ixt) * 2 + len(tr.per_epoch)) for tr in trials)
            print(f"wrote {args.trials} trials, {n_points:,} metric points in {time.perf_counter() - t:.1f} s")

        src = analysis.locate("bench", uri)
        client = MlflowClient(src.uri)
        t = time.perf_counter()
        for run in src.children:
            for key in run.data.metrics:
                client.get_metric_history(run.info.run_id, key)
        baseline = time.perf_counter() - t
        n_calls = sum(len(r.data.metrics) for r in src.children)
        print(f"baseline: {n_calls:,} get_metric_history calls: {baseline:.2f} s")

        histories.clear_cache()
        t = time.perf_counter()
        trace = analysis.load_trace("bench", uri)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        analysis.load_trace("bench", uri)
        warm = time.perf_counter() - t
        print(f"load_trace cold: {cold:.2f} s ({baseline / cold:.1f}x faster than the baseline's reads alone), "
              f"warm (cached): {warm:.2f} s; {len(trace):,} rows")  # fmt: skip
        t = time.perf_counter()
        table = analysis.compression_table(trace)
        print(f"compression_table: {time.perf_counter() - t:.2f} s; {len(table):,} rows")
        t = time.perf_counter()
        verdicts = analysis.evaluate_claims("bench", uri, trace=trace)
        print(f"evaluate_claims ({len(verdicts)} claims): {time.perf_counter() - t:.2f} s; "
              f"{[v.verdict for v in verdicts]}")  # fmt: skip
        if args.figures:
            args.sweep, args.tracking_uri = "bench", uri
            stored_figures(args, analysis, trace, table)


def stored_figures(args, analysis, trace, table=None) -> None:
    """Time the report figures of sweep ``args.sweep``: its primary estimator and condition order, as the report."""
    from ib_sweeps.analysis.verdicts import default_estimator, resolved_sweep

    src = analysis.locate(args.sweep, args.tracking_uri, announce=False)
    try:
        spec = resolved_sweep(src)
    except LookupError:
        spec = {}
    order = analysis.condition_order(spec, analysis.load_runs(src)["condition"])
    table = analysis.compression_table(trace) if table is None else table
    time_figures(trace, table, default_estimator(spec), order, args.figures or 3, args.figures_baseline)


if __name__ == "__main__":
    main()
