"""Run a resolved sweep on Ray Tune: one trial per grid point x seed (or per Optuna draw), one MLflow child each.

The driver owns the MLflow parent run and Ray; each Ray trial calls
:func:`ib_sweeps.trial.run_trial` with the parent's id, absolute tracking URI
and the sweep's tags, so a trial never writes into the parent (nor into the
run ``mlflow run`` created: ``MLFLOW_RUN_ID`` is consumed before Ray starts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass

from ib_sweeps import tracking
from ib_sweeps.sweep import ledger as ledger_mod
from ib_sweeps.sweep import project_run as project_run_mod
from ib_sweeps.sweep.load import Sweep
from ib_sweeps.sweep.lock import driver_lock
from ib_sweeps.sweep.summary import trial_summary

# Quiet, deterministic Ray: no usage reporting, no per-trial CSV/TensorBoard loggers, our own signal handling.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
}


@dataclass(frozen=True)
class Outcome:
    """What a sweep invocation did: parent run, trial counts and the exit status to return."""

    parent_run_id: str
    experiment_id: str
    total: int
    finished: int
    failed: int
    skipped: int
    interrupted: bool
    tracking_uri: str

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


@dataclass(frozen=True)
class _Context:
    sweep: Sweep
    uri: str
    parent_run_id: str
    finished: frozenset
    arrays: tuple = ()  # with trial arrays: per Ray trial, the axes of the trials it trains


def _axes(ctx: _Context, params: dict) -> dict:
    spec = ctx.sweep.spec
    if spec.search is None:
        return {k: params[k] for k in spec.axes()}
    axes = {}
    for key, dist in spec.search.params.items():
        axes[key] = dist.values[params[key]] if dist.kind == "choice" else params[key]
    return axes | {"seed": params["seed"]}


def trainable(params: dict, ctx: _Context) -> None:
    """One Ray Tune trial: build the config at ``params``, run it as an MLflow child, report the summary."""
    from ray import tune

    from ib_sweeps.trial import run_trial

    trial = ctx.sweep.trial_for(_axes(ctx, params))
    if trial.key in ctx.finished:
        tune.report({"skipped": 1})
        return
    try:
        result = run_trial(trial.config, _run_options(ctx, trial))
    finally:
        import keras

        keras.backend.clear_session()  # the worker may be reused for the next trial
    tune.report({**result.summary, "skipped": 0})


def _run_options(ctx: _Context, trial) -> tracking.RunOptions:
    """Where and how ``trial`` logs: a child of the sweep's parent run, tagged with its axes."""
    spec = ctx.sweep.spec
    tags = (
        (ledger_mod.ROLE, "trial"),
        (ledger_mod.SWEEP, spec.name),
        (ledger_mod.AXES, json.dumps(trial.axes)),
    )
    return tracking.RunOptions(
        tracking_uri=ctx.uri,
        experiment=spec.name,
        run_name=trial.name,
        parent_run_id=ctx.parent_run_id,
        tags=tags,
        cpus=spec.resources.cpus,
        gpus=spec.resources.gpus,
        progress=False,
        summarize=trial_summary,  # logged inside the run: FINISHED only once the summary is stored too
    )


class ReplicasFailed(RuntimeError):
    """Some trials of an array failed (each run records its own error); the others are stored FINISHED."""

    __module__ = "ib_sweeps.sweep.runner"


def array_trainable(params: dict, ctx: _Context) -> None:
    """One Ray trial training an array of trials (:mod:`ib_sweeps.sweep.arrays`), one MLflow child run each.

    Trials already FINISHED under the parent (a resumed sweep, or an earlier
    attempt of this Ray trial) are skipped, so a retry reruns only the failed
    replicas. If any replica fails, :class:`ReplicasFailed` is raised after
    the others are stored, so Ray counts a failure and may retry.
    """
    from ray import tune

    from ib_sweeps.trial import run_trial
    from ib_sweeps.trial_array import run_array

    trials = [ctx.sweep.trial_for(axes) for axes in ctx.arrays[params["array"]]]
    done = ledger_mod.finished_keys(ctx.uri, ctx.parent_run_id, ctx.sweep.spec.name)  # read now: retries see more
    todo = [t for t in trials if t.key not in done]
    counts = {"trials": len(trials)}  # those stored by an earlier attempt count as done, not skipped
    try:
        if len(todo) == 1:
            try:
                results = [run_trial(todo[0].config, _run_options(ctx, todo[0]))]
            except Exception as err:
                results = [err]
        elif todo:
            results = run_array([t.config for t in todo], [_run_options(ctx, t) for t in todo])
        else:
            results = []
    finally:
        import keras

        keras.backend.clear_session()  # the worker may be reused for the next array
    failed = [(t, r) for t, r in zip(todo, results, strict=True) if isinstance(r, BaseException)]
    counts["failed"] = len(failed)
    tune.report(counts)
    if failed:
        lines = "; ".join(f"{t.name}: {type(e).__name__}: {e}" for t, e in failed[:3])
        raise ReplicasFailed(f"{len(failed)} of {len(todo)} trials of this array failed ({lines})")


def _param_space(sweep: Sweep) -> dict:
    from ray import tune

    spec = sweep.spec
    if spec.search is None:
        return {k: tune.grid_search(v) for k, v in spec.axes().items()}
    make = {
        "uniform": lambda d: tune.uniform(d.low, d.high),
        "loguniform": lambda d: tune.loguniform(d.low, d.high),
        "int": lambda d: tune.randint(d.low, d.high + 1),
        "choice": lambda d: tune.choice(list(range(len(d.values)))),
    }
    space = {k: make[d.kind](d) for k, d in spec.search.params.items()}
    seeds = spec.seed_list()
    space["seed"] = tune.choice(seeds) if len(seeds) > 1 else seeds[0]
    return space


def _check_resources(sweep: Sweep) -> None:
    """The largest live Ray node must hold one trial's CPUs and GPUs (``ValueError`` naming the key otherwise)."""
    import ray

    need = sweep.spec.resources
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    best_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    best_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    if need.cpus > best_cpu:
        raise ValueError(
            f"resources.cpus: {need.cpus} per trial, but the largest Ray node has {best_cpu:g} CPUs; "
            f"allowed: 1 .. {best_cpu:g}"
        )
    if need.gpus > best_gpu:
        raise ValueError(
            f"resources.gpus: {need.gpus} per trial, but the largest Ray node has {best_gpu:g} GPUs; "
            f"allowed: 0 .. {best_gpu:g}"
        )


def _total(sweep: Sweep) -> int:
    spec = sweep.spec
    return spec.search.n_trials if spec.search else len(sweep.trials())


def run_sweep(
    sweep: Sweep,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    stream=None,
) -> Outcome:
    """Run (or resume) ``sweep``; trial failures are recorded, not raised. See the module docstring.

    Order: the invocation's lock (:class:`~ib_sweeps.sweep.lock.SweepBusy` if
    another driver holds it), the store read, Ray started and the resources
    checked, and only then the parent run created or reopened; so a refused
    sweep leaves nothing in the store. The store is read in a thread while Ray
    starts (:func:`_read_while_ray_starts`): each takes seconds, mostly
    waiting on other processes or the disk.
    """
    stream = stream or sys.stderr
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_store(uri)
    project_run = os.environ.pop("MLFLOW_RUN_ID", None)  # `mlflow run`'s run: never resumed by a trial
    total = _total(sweep)
    with driver_lock(sweep.spec.name, sweep.invocation, uri):
        previous = signal.getsignal(signal.SIGTERM)
        try:
            led = _read_while_ray_starts(sweep, uri, fresh, address)
            if not led.complete:
                _check_resources(sweep)
        except BaseException:
            _shutdown_ray()
            signal.signal(signal.SIGTERM, previous)
            raise
        if led.complete:
            _shutdown_ray()
            signal.signal(signal.SIGTERM, previous)
            stream.write(
                f"{sweep.spec.name}: already complete (parent run {led.parent_run_id}); --fresh runs it again\n"
            )
            if ledger_mod.restate(sweep, led):
                stream.write(f"{sweep.spec.name}: {RESTATED}\n")
            _link_project_run(led, project_run)
            return Outcome(led.parent_run_id, led.experiment_id, total, len(led.finished), 0, total, False, uri)
        return _run_parent(sweep, led, uri, project_run, max_concurrent, fresh, progress, stream, total, previous)


def _read_while_ray_starts(sweep: Sweep, uri: str, fresh: bool, address: str | None):
    """The invocation's ledger (:func:`ledger.look_up`), read in a thread while this thread starts Ray.

    Opening a new store (MLflow's client and tables) is ~2.5 s of this process's CPU; starting Ray ~3-6 s of
    waiting for its processes, ~0.6 s CPU here (2-core machine, load 2.6-2.8). One after the other they took
    5.9-12.4 s, side by side 4.7-9.9 s (3 alternations each, load 3.2-4.0). An invocation found complete then
    stops the Ray it did not need (~1.4 s). The read only reads; the thread has ended when this returns or raises.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ib-sweeps-store") as pool:
        reading = pool.submit(ledger_mod.look_up, sweep, uri, fresh=fresh)
        try:
            _start_ray(address)
        finally:
            reading.exception()  # wait: the store is not left being read past the lock, whatever Ray did
    return reading.result()


def _run_parent(sweep, led, uri, project_run, max_concurrent, fresh, progress, stream, total, previous) -> Outcome:
    try:
        ledger_mod.open_parent(sweep, led, fresh=fresh)
    except BaseException:
        signal.signal(signal.SIGTERM, previous)
        _shutdown_ray()
        raise
    if led.resumed:
        stream.write(
            f"{sweep.spec.name}: resuming parent run {led.parent_run_id}: {len(led.finished)} trials already "
            f"finished, {led.stale} left RUNNING marked KILLED\n"
        )
        if led.restated:
            stream.write(f"{sweep.spec.name}: {RESTATED}\n")
    elif led.stale:
        stream.write(f"{sweep.spec.name}: {led.stale} runs of a dead driver's earlier invocation marked KILLED\n")
    storage = tempfile.mkdtemp(prefix="ib-sweeps-ray-")
    interrupted, results, status = False, None, "FAILED"  # FAILED unless the fit returns or is interrupted
    try:
        results = _fit(sweep, led, uri, max_concurrent, storage, progress, stream, total)
        status = "FAILED" if results.num_errors else "FINISHED"
    except KeyboardInterrupt:
        interrupted, status = True, "KILLED"
        stream.write(f"\n{sweep.spec.name}: interrupted; run the same command again to resume\n")
    finally:
        signal.signal(signal.SIGTERM, previous)
        _shutdown_ray()
        shutil.rmtree(storage, ignore_errors=True)
        # A trial still RUNNING after a normal end had its worker die under it (Ray reports it as an error).
        reason = ledger_mod.INTERRUPTED if interrupted or results is None else WORKER_DIED
        counts = ledger_mod.finish(led, status, reason)
        _link_project_run(led, project_run)
    failed, skipped = _failed_skipped(results, total)
    return Outcome(led.parent_run_id, led.experiment_id, total, counts["FINISHED"], failed, skipped, interrupted, uri)


def _failed_skipped(results, total: int) -> tuple[int, int]:
    """Trials that failed (after retries) and trials skipped as already finished, from Ray's results."""
    if results is None:
        return 0, 0
    if not any(r.metrics and "trials" in r.metrics for r in results):  # one trial per Ray trial
        return results.num_errors, sum(1 for r in results if r.metrics and r.metrics.get("skipped"))
    # Arrays: each Ray trial reports its trials and those failed (one with no report died whole); the trials
    # in no array were finished before this invocation started.
    ran = sum(r.metrics.get("trials", 0) for r in results if r.metrics)
    failed = sum(r.metrics.get("failed", 0) if r.metrics else 1 for r in results if r.error)
    return failed, total - ran


RESTATED = (
    "stored the sweep file's current claims, description and profiles on that parent run (its trials are not run "
    "again); `ib-sweeps report` judges them"
)
WORKER_DIED = (
    "the trial's worker process died while it ran (killed, or out of memory); the same sweep command reruns it"
)


def _link_project_run(led, project_run: str | None) -> None:
    """``mlflow run``'s own run: linked to the sweep's parent, removed once MLflow ends it (:mod:`project_run`)."""
    project_run_mod.link(led.client, led.uri, project_run, led.parent_run_id, led.experiment_id)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _use_cluster_token() -> None:
    """Send the cluster's auth token when one is available (``ray start`` enables token auth by default in 2.5x+)."""
    from pathlib import Path

    has_token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if "RAY_AUTH_MODE" not in os.environ and (has_token or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


def _start_ray(address: str | None) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a private local Ray bound to 127.0.0.1 only."""
    import logging

    os.environ.update({k: v for k, v in RAY_ENV.items() if k not in os.environ})
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address == "local":
        # Ray's own switch for a machine that is not part of a cluster: every server it starts listens on
        # loopback only (without it, GCS, raylet and workers listen on all interfaces). Read at Ray's import.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    else:
        _use_cluster_token()  # before Ray is imported: it reads its auth mode then
    import ray

    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)  # after ray.init, which installs its own handler
    for noisy in ("ray.tune", "ray.air", "ray.train"):  # trial errors are reported by the progress callback
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


def _fit(sweep, led, uri, max_concurrent, storage, progress, stream, total):
    from ray import tune

    from ib_sweeps.sweep.progress import make_callback

    spec = sweep.spec
    # A search draws new configs each time, so only grids skip finished trials on resume.
    finished = frozenset(led.finished) if spec.search is None else frozenset()
    ctx = _Context(sweep, uri, led.parent_run_id, finished)
    resources = {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}
    plan = _layout(sweep, finished, max_concurrent or spec.max_concurrent)
    # Nothing left to run (every trial stored, say by the worker of a driver killed mid-array): no arrays to hand
    # Tune; one trial each, as below, reports every trial skipped and the parent ends FINISHED.
    if plan is not None and plan.size > 1 and plan.arrays:
        stream.write(f"{spec.name}: {plan.n_trials} trials to run as {len(plan.arrays)} trial arrays ({plan.reason})\n")
        return _fit_arrays(ctx, plan, resources, max_concurrent, storage, progress, stream, total, led)
    search_alg, metric, mode = None, None, None
    if spec.search is not None:
        from ray.tune.search.optuna import OptunaSearch

        metric, mode = spec.search.objective.metric, spec.search.objective.mode
        search_alg = OptunaSearch(metric=metric, mode=mode, seed=spec.search.sampler_seed)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, ctx=ctx), resources),
        param_space=_param_space(sweep),
        tune_config=tune.TuneConfig(
            num_samples=spec.search.n_trials if spec.search else 1,
            search_alg=search_alg,
            metric=metric,
            mode=mode,
            max_concurrent_trials=max_concurrent or spec.max_concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{spec.name}-{led.parent_run_id[:8]}",
            storage_path=storage,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            callbacks=[make_callback(spec.name, total, stream, progress)],
        ),
    )
    return tuner.fit()


def cluster_slots(resources) -> int:
    """How many trials of ``resources`` the live Ray cluster runs at once (over all its nodes)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if resources.gpus > 0:
        return max(1, sum(int(n.get("GPU", 0) // resources.gpus) for n in nodes))
    return max(1, sum(int(n.get("CPU", 0) // resources.cpus) for n in nodes))


def _layout(sweep: Sweep, finished: frozenset, max_concurrent: int | None):
    """The arrays of a grid sweep's trials left to run, for the slots the cluster offers (None for a search)."""
    from ib_sweeps.sweep import arrays

    if sweep.spec.search is not None:
        return None
    todo = [t for t in sweep.trials() if t.key not in finished]
    slots = cluster_slots(sweep.spec.resources)
    return arrays.layout(sweep, todo, min(slots, max_concurrent) if max_concurrent else slots)


def _fit_arrays(ctx, plan, resources, max_concurrent, storage, progress, stream, total, led):
    from dataclasses import replace

    from ray import tune

    from ib_sweeps.sweep.progress import make_callback

    spec = ctx.sweep.spec
    ctx = replace(ctx, arrays=tuple(tuple(t.axes for t in a) for a in plan.arrays))
    labels = {i: f"array of {len(a)} ({a[0].name} .. {a[-1].name})" for i, a in enumerate(plan.arrays)}
    callback = make_callback(spec.name, total, stream, progress, skipped=total - plan.n_trials, labels=labels)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(array_trainable, ctx=ctx), resources),
        param_space={"array": tune.grid_search(list(range(len(plan.arrays))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or spec.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{spec.name}-{led.parent_run_id[:8]}",
            storage_path=storage,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            callbacks=[callback],
        ),
    )
    return tuner.fit()
