"""Command line: ``ib-sweeps trial [CONFIG.yaml] [--set key=value ...]`` and ``ib-sweeps sweep NAME ...``.

Heavy libraries (TensorFlow, MLflow) are imported only once a command runs,
so ``ib-sweeps --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def split_assignments(values: list[str]) -> list[str]:
    """``key=value`` items from ``--set`` arguments; one argument may hold several.

    ``"train.epochs=100 seed=3"`` gives two; a token without ``=`` continues the
    previous value, so ``"model.hidden=[10, 7, 5]"`` stays one.
    """
    out: list[str] = []
    for value in values:
        for token in shlex.split(value):
            if "=" in token.split("[")[0] or not out:
                out.append(token)
            else:
                out[-1] += " " + token
    return out


PRESETS = Path(__file__).parent / "presets"


def presets() -> list[str]:
    """Names of the shipped reference configs (``ib_sweeps/presets/*.yaml``)."""
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def load_config(path: str | None, assignments: list[str]):
    """Validated :class:`~ib_sweeps.config.TrialConfig` from a YAML file or preset name, and overrides."""
    from ib_sweeps import config, yamlio

    if path and not Path(path).exists() and path in presets():
        path = str(PRESETS / f"{path}.yaml")
    elif path and not Path(path).exists():
        raise ValueError(f"config file not found: {path} (presets: {', '.join(presets())})")
    expect = ("trial config", tuple(config.TrialConfig.model_fields))  # else its keys are not echoed back
    raw = yamlio.load_file(path, "config file", expect) if path else {}
    try:
        items = split_assignments(assignments)
    except ValueError as err:  # an unclosed quote
        raise ValueError(f"--set {assignments!r}: {err}; allowed: key=value items, quoted as in a shell") from None
    for item in items:
        raw = yamlio.apply_override(raw, item, config.OVERRIDE_SEEDS)
    return config.validate(raw)


def _trial(args) -> int:
    import yaml

    from ib_sweeps import config

    try:
        cfg = load_config(args.config or None, args.set)
    except ValueError as err:  # config errors: one clear message, no traceback
        print(f"ib-sweeps: error: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(cfg), sort_keys=False), end="")
        return 0
    from ib_sweeps import tracking

    try:  # before TensorFlow loads and before any run exists
        tracking.check_store(tracking.resolve_tracking_uri(args.tracking_uri))
    except tracking.StoreError as err:
        print(f"ib-sweeps: error: {err}", file=sys.stderr)
        return 2
    from ib_sweeps.trial import run_trial

    opts = tracking.RunOptions(
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        run_name=args.run_name,
        run_id=os.environ.get("MLFLOW_RUN_ID") or None,  # set by `mlflow run`: log into that run
        cpus=args.cpus,
        progress=not args.no_progress,
    )
    result = run_trial(cfg, opts)
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    s = result.seconds
    print(
        f"run {result.run_id} FINISHED in {s['total_s']:.1f} s "
        f"(training {s['train_s']:.1f} s, estimation {s['estimate_s']:.1f} s); tracking URI {uri}"
    )
    return 0


def _sweep(args) -> int:
    from ib_sweeps import sweep

    try:
        try:
            items = split_assignments(args.set)
        except ValueError as err:  # an unclosed quote
            raise ValueError(f"--set {args.set!r}: {err}; allowed: key=value items, quoted as in a shell") from None
        resolved = sweep.load(args.sweep, args.profile or None, items)
    except ValueError as err:  # bad sweep file or override: one clear message, before Ray starts
        print(f"ib-sweeps: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        spec = resolved.spec
        if spec.search is None:
            for trial in resolved.trials():
                print(trial.name)
        print(f"{spec.name}: {len(resolved.trials()) if spec.search is None else spec.search.n_trials} trials")
        print(f"{spec.name}: {_array_line(resolved, args.max_concurrent or spec.max_concurrent)}")
        return 0
    missing = resolved.missing_data()
    if missing:  # an absent data file skips the sweep, not fails it: nothing to run on this machine
        print(f"sweep {resolved.spec.name}: skipped, nothing run: " + "; ".join(missing))
        return 0
    try:
        outcome = sweep.run_sweep(
            resolved,
            tracking_uri=args.tracking_uri,
            address=args.address or None,
            max_concurrent=args.max_concurrent,
            fresh=args.fresh,
            progress=not args.no_progress,
        )
    except (ValueError, sweep.ledger.SweepBusy) as err:
        print(f"ib-sweeps: error: {err}", file=sys.stderr)
        return 2
    from ib_sweeps.sweep.progress import where_to_look

    print(
        f"sweep {resolved.spec.name}: {outcome.finished}/{outcome.total} trials FINISHED, {outcome.failed} failed"
        f"{' (interrupted)' if outcome.interrupted else ''}; parent run {outcome.parent_run_id}; "
        f"tracking URI {outcome.tracking_uri}\n"
        + where_to_look(resolved.spec.name, outcome.parent_run_id, outcome.experiment_id, outcome.tracking_uri),
        flush=True,
    )
    return outcome.exit_code


def _array_line(resolved, max_concurrent: int | None) -> str:
    """How the trials would be packed into trial arrays on this machine (``resources.array_size``)."""
    from ib_sweeps.sweep import arrays

    spec = resolved.spec
    trials = resolved.trials() if spec.search is None else []
    slots = arrays.local_slots(spec.resources.gpus, spec.resources.cpus)
    slots = min(slots, max_concurrent) if max_concurrent else slots
    plan = arrays.layout(resolved, trials, slots)
    if spec.search is not None or plan.size == 1:
        return f"resources.array_size {spec.resources.array_size}: {plan.reason}"
    sizes = sorted({len(a) for a in plan.arrays}, reverse=True)
    return (
        f"resources.array_size {spec.resources.array_size}: {len(plan.arrays)} trial arrays of "
        f"{'/'.join(map(str, sizes))} trials ({plan.reason}; on this machine, for a local Ray instance)"
    )


def _report(args) -> int:
    from ib_sweeps import analysis

    try:
        if args.list:
            invs = analysis.invocations(args.sweep, args.tracking_uri)
            chosen, why = analysis.choose(invs) if invs else (None, "")
            for inv in invs:
                print(f"{'*' if inv is chosen else ' '} {inv.describe()}")
            print(f"* the default ({why}); choose another with --invocation RUN_ID_PREFIX or --profile NAME")
            return 0
        report = analysis.write_report(
            args.sweep,
            args.out,
            args.tracking_uri,
            log=not args.no_log,
            invocation=args.invocation or None,
            profile=args.profile or None,
            announce=False,
        )
    except LookupError as err:
        print(f"ib-sweeps: error: {err}", file=sys.stderr)
        return 2
    print(f"read {report.invocation}")
    for v in report.verdicts:
        print(f"{v.verdict.upper():>12}  #{v.index + 1} {v.title}\n{'':>14}{v.reason}")
    if not report.verdicts:
        print("the sweep declares no claims")
    where = "" if args.no_log else f"; logged on parent run {report.parent_run_id} under report/"
    print(f"report: {report.html} (also {report.markdown.name}, {report.json.name}){where}")
    return 0


def _reproduce(args) -> int:
    """Run the sweeps one after another (each as ``ib-sweeps sweep`` would), then write the paper table."""
    import subprocess

    from ib_sweeps import sweep

    shipped = sweep.names()
    names = [n.strip() for n in args.sweeps.split(",") if n.strip()] if args.sweeps else shipped
    unknown = [n for n in names if n not in shipped]
    if unknown or not names:
        print(f"ib-sweeps: error: unknown sweep(s) {unknown}; allowed: {', '.join(shipped)}", file=sys.stderr)
        return 2
    worst = 0
    for name in [] if args.page_only else names:
        print(f"== {name}", flush=True)
        one = argparse.Namespace(**vars(args), sweep=name, set=[])
        worst = max(worst, _sweep(one))
    if args.dry_run:
        print(f"then: the paper table of {len(names)} sweeps -> {args.out}")
        return worst
    try:  # the commit the page names; none outside a git checkout
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        commit = commit.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    from ib_sweeps.analysis import paper_table

    out = paper_table.write_page(names, args.out, args.tracking_uri, profile=args.profile or None, commit=commit)
    print(f"paper table: {out}")
    return worst


def _positive(text: str) -> int | None:
    """A positive integer argument; ``""`` (an MLproject parameter's empty default) means unset."""
    if text == "":  # MLproject's empty default
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ib-sweeps", description="Information-plane experiments on neural networks, tracked in MLflow."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("trial", help="train one network and log its information plane to MLflow")
    p.add_argument(
        "config",
        nargs="?",
        default="",
        help=f"trial config YAML, or a preset: {', '.join(presets())} (default: built-in defaults)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted, e.g. train.epochs=100); repeatable",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME or ib-sweeps)")
    p.add_argument("--run-name", help="MLflow run name")
    p.add_argument("--cpus", type=_positive, help="cap TensorFlow's thread pools to this many CPUs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    p.set_defaults(func=_trial)

    s = sub.add_parser("sweep", help="run a sweep file's trials on Ray Tune, one MLflow parent run per invocation")
    s.add_argument("sweep", help="sweep name (sweeps/NAME.yaml) or path to a sweep file")
    s.add_argument("--profile", default="", help="named profile of the sweep file, e.g. quick")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a sweep key (seeds=3, grid.model.activation=[tanh]) or a base trial key (train.epochs=100)",
    )
    s.add_argument("--max-concurrent", type=_positive, help="at most this many trials at once")
    s.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a private local Ray)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    s.add_argument("--fresh", action="store_true", help="start a new invocation even if this one finished")
    s.add_argument("--no-progress", action="store_true", help="no progress line")
    s.add_argument("--dry-run", action="store_true", help="check the sweep, list its trials and exit")
    s.set_defaults(func=_sweep)

    r = sub.add_parser("report", help="judge a sweep's claims; write an HTML/markdown/JSON report (reads MLflow only)")
    r.add_argument(
        "sweep",
        help="sweep name, experiment id or parent run id (default invocation, among those with FINISHED trials: "
        "the latest run as the sweep file is written (no profile, no overrides), else the latest without a "
        "profile, else the one with the most FINISHED trials; see --list)",
    )
    r.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    r.add_argument("--out", help="folder for the report (default: reports/<sweep>-<parent run id>)")
    r.add_argument("--no-log", action="store_true", help="do not log the report on the sweep's parent run")
    r.add_argument("--list", action="store_true", help="list the sweep's invocations (* the default) and exit")
    r.add_argument("--invocation", default="", metavar="RUN_ID_PREFIX", help="report this invocation (parent run id)")
    r.add_argument("--profile", default="", help="report the latest invocation run with this profile, e.g. quick")
    r.set_defaults(func=_report)

    q = sub.add_parser("reproduce", help="run sweeps one after another, then write the paper table from MLflow")
    q.add_argument("--sweeps", default="", metavar="A,B", help="comma-separated sweep names (default: every one)")
    q.add_argument("--profile", default="", help="named profile of every sweep, e.g. quick")
    q.add_argument("--out", default="docs/paper-table.md", help="the page (default: docs/paper-table.md)")
    q.add_argument("--page-only", action="store_true", help="run nothing; write the page from the store")
    q.add_argument("--max-concurrent", type=_positive, help="at most this many trials at once")
    q.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a private local Ray)")
    q.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    q.add_argument("--fresh", action="store_true", help="start new invocations even where they finished")
    q.add_argument("--no-progress", action="store_true", help="no progress line")
    q.add_argument("--dry-run", action="store_true", help="check the sweeps, list their trials and exit")
    q.set_defaults(func=_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # set once here, never toggled later
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ib-sweeps: interrupted; the run is marked KILLED", file=sys.stderr)
        return 130
    except Exception as err:  # the run is already marked FAILED with the traceback
        print(f"ib-sweeps: {args.command} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
