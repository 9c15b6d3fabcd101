"""A trial array: N trials trained as one compiled program, each still its own MLflow run.

:func:`run_array` is :func:`ib_sweeps.trial.run_trial` for N configs that can
share one graph (:func:`unsupported` says why one cannot). Each replica draws
its data split and seed exactly as it would alone, opens its own run with the
same params, tags, metric keys, artifacts and summary, and ends FINISHED,
FAILED or KILLED on its own: a replica whose loss turns non-finite (or whose
run cannot be stored) fails alone while the others train on.

Lockstep: the replicas share one epoch counter, so the array trains to the
earliest epoch any replica's schedule asks for next; the replicas that asked
for it are measured there, the others only log the loss of the epochs passed.
Fixed schedules give every replica the same epochs; adaptive ``delta``
schedules follow each replica's own measurements (a replica measures exactly
the epochs it would alone), and a backtracking one (``delta_exact``) fills a
replica's gap from the weight snapshots the array keeps (:class:`Snapshots`).
Pooled estimates and CNNs too large to evaluate in one pass run alone (:func:`unsupported`). Noisy and
quantized networks train in arrays with the noise streams they draw alone;
``noisy_sp`` measures a noisy replica from the n_cond noisy passes of each
input the array core draws for it (:class:`NoisySamples`: for the same
weights, the core alone's samples, bit for bit but for the softmax output's rounding).

Timing metrics: ``time/train_s`` of a replica is the array's training time
divided by N (its share), ``time/estimate_s`` its own estimation time.
Information is in bits throughout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from ib_sweeps import config, data, gradients, records, tracking
from ib_sweeps.trace import Trace
from ib_sweeps.trial import (
    TrialResult,
    config_yaml,
    history_steps,
    input_entropies,
    measure,
    measured_steps,
    run_tags,
    save_artifacts,
    snapshot_capacity,
    stored_history_epochs,
)

FLUSH_METRICS = 1000  # values per batch sent to the store (log_batch and store_sql.log_metrics take <= 1000)


def unsupported(cfg: config.TrialConfig) -> str | None:
    """Why ``cfg`` cannot train as an array replica (one line naming the key), or None if it can."""
    from ib_sweeps.train.array import check_array
    from ib_sweeps.train.array_cnn import too_big

    if cfg.pooled is not None:
        return "pooled: pooled estimates need every window epoch's activity; such trials run alone"
    if (why := too_big(cfg)) is not None:
        return why
    try:
        check_array([cfg.model], [cfg.train])
    except ValueError as err:
        return str(err)
    return None


def array_key(cfg: config.TrialConfig) -> str:
    """Configs with equal keys can train as one array: equal but for the seed, the per-replica fields and the
    estimators (each replica is measured by its own)."""
    from ib_sweeps.train.array import PER_REPLICA_MODEL, PER_REPLICA_TRAIN

    raw = config.to_dict(cfg)
    raw.pop("seed", None)
    raw.pop("estimators", None)
    for section, free in (("model", PER_REPLICA_MODEL), ("train", PER_REPLICA_TRAIN)):
        raw[section] = {k: v for k, v in raw[section].items() if k not in free}
    return json.dumps(raw, sort_keys=True)


@dataclass
class Replica:
    """One trial of the array: its data, plan, trace and run; records what it measured, exactly as a trial alone."""

    index: int
    cfg: config.TrialConfig
    opts: tracking.RunOptions
    dataset: object
    seed: int  # the training seed a core alone would get
    plan: object
    trace: Trace
    kept: frozenset
    run: object = None  # the open trial_run context manager
    log: tracking.RunLogger | None = None
    pending: int | None = None  # the next epoch its schedule asks for
    error: BaseException | None = None
    logged: set = field(default_factory=set)
    queued: list = field(default_factory=list)  # metric steps not yet sent (:meth:`emit`)
    n_queued: int = 0
    seconds: dict = field(default_factory=lambda: {"train_s": 0.0, "estimate_s": 0.0})
    capacity: int = 0  # epochs of weight snapshots its schedule may need for one gap, as alone

    @property
    def active(self) -> bool:
        return self.error is None and self.pending is not None

    def open(self) -> None:
        run = tracking.trial_run(self.opts, run_tags(self.cfg))
        self.log = run.__enter__()
        self.run = run  # open: from here on it is ended FINISHED, FAILED or KILLED
        self.log.params(config.flatten(self.cfg))
        self.log.text(config_yaml(self.cfg), "config.yaml")
        self.log.metrics([(0, {records.ENTROPY_X: self.trace.h_x, records.ENTROPY_Y: self.trace.h_y})])
        self.pending = self.plan.next()

    def steps(self, first: int, rows: np.ndarray) -> list:
        """The history steps of ``rows`` (from ``first``) the store should hold and does not yet."""
        steps = [s for s in history_steps(first, rows, records.HISTORY, self.kept) if s[0] not in self.logged]
        self.logged.update(e for e, _ in steps)
        return steps

    def passed(self, first: int, rows: np.ndarray, grad: np.ndarray | None) -> list:
        """Keep the rows (and gradient statistics) of epochs ``first ..``; their history steps."""
        self.trace.history[first : first + len(rows)] = rows
        if self.trace.grad is not None and grad is not None:
            self.trace.grad[first : first + len(rows)] = grad
        return self.steps(first, rows)

    def record(self, epoch: int, ixt, iyt, steps, reason: str = "scheduled") -> None:
        """Log one measured epoch with the history ``steps`` before it (as :func:`ib_sweeps.trial.run_trial`)."""
        self.emit(measured_steps(self.trace, epoch, ixt, iyt, reason, steps, self.logged))

    def emit(self, steps: list) -> None:
        """Queue ``[(step, {key: value})]`` for the store, sent in batches of about :data:`FLUSH_METRICS` values.

        N replicas each logging every measured epoch as its own asynchronous
        batch kept MLflow's queue (one SQLite transaction per batch) behind
        training; batching changes nothing that is stored. On a SQLite store
        a batch is written directly, one transaction each as well
        (:meth:`ib_sweeps.tracking.RunLogger.metrics`).
        """
        self.queued.extend(steps)
        self.n_queued += sum(len(values) for _, values in steps)
        if self.n_queued >= FLUSH_METRICS:
            self.flush()

    def flush(self, synchronous: bool = False) -> None:
        if self.queued:
            self.log.metrics(self.queued, synchronous=synchronous)
        self.queued, self.n_queued = [], 0

    def fail(self, err: BaseException) -> None:
        """End this replica's run with ``err`` (FAILED, or KILLED on an interrupt), keeping its partial trace."""
        from ib_sweeps import plots

        self.error = err
        if self.run is None:
            return
        try:
            self.flush()
            save_artifacts(self.trace, self.log, plots)
        except Exception as save_err:
            err.add_note(f"(saving the partial trace also failed: {save_err!r})")
        run, self.run = self.run, None
        try:
            run.__exit__(type(err), err, err.__traceback__)
        except BaseException as end_err:  # the context manager re-raises err; anything else is noted
            if end_err is not err:
                err.add_note(f"(ending the run also failed: {end_err!r})")

    def finish(self, summarize, total_s: float) -> TrialResult:
        """Save the artifacts, log times and summary, and end the run FINISHED once the store holds it all.

        ``total_s``: this replica's share of the array's wall time. What it logs here is sent synchronously:
        ending a run stops MLflow's asynchronous queue (a wait of up to 1 s while it runs), and an asynchronous
        batch would start it again for the next replica's end to wait on (:func:`_finish`; ~0.8 s a replica).
        On a SQLite store every batch is written directly and synchronously, and the queue never runs.
        """
        from ib_sweeps import plots

        self.flush(synchronous=True)
        save_artifacts(self.trace, self.log, plots)
        self.seconds["backtrack_wait_s"] = 0.0  # gaps are filled as they open, in the estimation step: no wait
        self.seconds["total_s"] = total_s
        times = {records.time_key(k): v for k, v in self.seconds.items()}
        self.log.metrics([(int(self.cfg.train.epochs), times)], synchronous=True)
        trace = self.trace.sorted()
        summary = summarize(trace) if summarize is not None else {}
        if summary:
            self.log.metrics([(0, {records.summary(k): v for k, v in summary.items()})], synchronous=True)
        run, self.run = self.run, None
        run.__exit__(None, None, None)
        return TrialResult(self.log.run_id, trace, self.seconds, summary)


def _replica(index: int, cfg: config.TrialConfig, opts: tracking.RunOptions) -> Replica:
    """A replica's data and plan, drawn from its seed exactly as :func:`ib_sweeps.trial.run_trial` draws them."""
    data_ss, model_ss = np.random.SeedSequence(cfg.seed).spawn(2)
    dataset = data.load(cfg.data, np.random.default_rng(data_ss))
    h_x, h_y = input_entropies(dataset)
    plan = cfg.schedule.plan(cfg.train.epochs, h_x, h_y)
    capacity = snapshot_capacity(cfg, dataset, plan)
    plan.max_gap = capacity + 1 if plan.needs_snapshots else None
    history = np.full((cfg.train.epochs + 1, len(records.HISTORY)), np.nan)
    trace = Trace([e.key for e in cfg.estimators], [], list(records.HISTORY), h_x, h_y, history)
    seed = int(model_ss.generate_state(1)[0])
    kept = stored_history_epochs(cfg.train.epochs)
    return Replica(index, cfg, opts, dataset, seed, plan, trace, kept, capacity=capacity)


def run_array(cfgs: list[config.TrialConfig], opts: list[tracking.RunOptions]) -> list:
    """Train and measure ``cfgs`` as one array, one MLflow run each; per config a TrialResult or the error it met.

    Errors of single replicas are returned, not raised; an interrupt ends every
    open run KILLED and is raised.
    """
    from ib_sweeps import runtime
    from ib_sweeps.train.array import build_array_core

    for cfg in cfgs:
        if (why := unsupported(cfg)) is not None:
            raise ValueError(f"trial seed {cfg.seed} cannot train in an array: {why}")
    runtime.configure_tensorflow(opts[0].cpus, gpu_share=opts[0].gpus)
    t_start = time.perf_counter()
    reps = [_replica(i, c, o) for i, (c, o) in enumerate(zip(cfgs, opts, strict=True))]
    try:
        t0 = time.perf_counter()
        core = build_array_core(
            [r.cfg.model for r in reps], [r.cfg.train for r in reps], [r.dataset for r in reps], [r.seed for r in reps],
            snapshot_capacity=max(r.capacity for r in reps),
        )  # fmt: skip
        build_s = time.perf_counter() - t0
        for r in reps:
            r.trace.layers = list(core.layer_names)
            if r.cfg.train.gradient_stats:
                shape = (r.cfg.train.epochs + 1, len(core.layer_names), len(gradients.KEYS))
                r.trace.grad = np.full(shape, np.nan, dtype=np.float32)
            try:
                r.open()
            except Exception as err:
                r.fail(err)
        _train(core, reps, build_s)
    except BaseException as err:
        for r in reps:
            if r.run is not None:
                r.fail(err)
        if not isinstance(err, Exception):
            raise
        return [r.error for r in reps]
    return _finish(reps, t_start)


def _finish(reps: list[Replica], t_start: float) -> list:
    """End each replica's run in turn (:meth:`Replica.finish`, or FAILED); per replica a TrialResult or its error.

    Every replica's queued metrics are sent before the first run ends (on a SQLite store written directly, at
    once; elsewhere asynchronously, stored while the first draws its figures): ending a run stops MLflow's
    asynchronous queue, and :meth:`Replica.finish` sends nothing asynchronously after that, so only the first
    end waits for the queue (up to 1 s; on SQLite it never runs).
    """
    for r in reps:
        if r.error is None:
            try:
                r.flush()
            except Exception as err:
                r.fail(err)
    out = []
    for r in reps:
        if r.error is None:
            try:
                out.append(r.finish(r.opts.summarize, (time.perf_counter() - t_start) / len(reps)))
            except Exception as err:
                r.fail(err)
        if r.error is not None:
            out.append(r.error)
    return out


def _train(core, reps: list[Replica], build_s: float) -> None:
    """Advance the array to each next scheduled epoch and measure the replicas that asked for it.

    With fixed schedules (every replica's epochs known ahead) the replicas'
    estimation of one stretch runs in a worker thread while the array trains
    the next: at most one stretch in flight, and the replicas' state is touched
    by one thread at a time (the main thread waits for the worker before it
    reads the next results). Adaptive schedules need the measurement before
    they name the next epoch, so there the two alternate.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ib_sweeps.schedules.base import FixedPlan
    from ib_sweeps.train import TrainingDiverged

    ahead = all(isinstance(r.plan, FixedPlan) for r in reps)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="estimate") if ahead else None
    inflight = None
    snaps = Snapshots(core)
    try:
        while active := [r for r in reps if r.active]:
            target = min(r.pending for r in active)
            first = core.epoch + 1 if target > 0 else 0
            t0 = time.perf_counter()
            results = core.advance(target)
            snaps.keep(first)
            grads = core.gradient_stats(first, target + 1) if core.grad_norms is not None else None
            share = (time.perf_counter() - t0 + build_s) / len(reps)
            build_s = 0.0
            if inflight is not None:  # the previous stretch's estimates are recorded: the replicas are ours again
                inflight.result()
            jobs = []
            for r in [r for r in active if r.error is None]:
                r.seconds["train_s"] += share
                result = results[r.index]
                if isinstance(result, TrainingDiverged):
                    grad = None if grads is None else grads[: len(result.rows), r.index]
                    r.emit(r.passed(result.first_epoch, result.rows, grad))
                    r.fail(result)
                    continue
                rows, activities = result
                steps = r.passed(first, rows, None if grads is None else grads[:, r.index])
                if r.pending != target:
                    r.emit(steps)
                    continue
                jobs.append((r, activities, steps))
                if ahead:  # a fixed plan names its next epoch without the measurement
                    r.pending = r.plan.next()
            sampled = core.noisy and any(e.uses_noisy_samples for r, _, _ in jobs for e in r.cfg.estimators)
            samples = NoisySamples(core, target, core.weights()) if sampled else None  # the weights copied only then
            if pool is not None:  # fixed plans: nothing backtracks
                inflight = pool.submit(_measure, jobs, target, ahead, None, samples)
            else:
                _measure(jobs, target, ahead, snaps, samples)
                snaps.forget([r for r in reps if r.active])
        if pool is not None and inflight is not None:
            inflight.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


class NoisySamples:
    """A noisy array's noisy_sp samples at one epoch, from its weights then (N, n_params): what a trial alone's
    ``samples_of`` gives, replica by replica (:meth:`~ib_sweeps.train.array.ArrayCore.noisy_samples`).

    Every replica's are drawn in one pass per n_cond, when the first replica asks. The weights are a copy,
    so this may be used in the estimation thread while the array trains on.
    """

    def __init__(self, core, epoch: int, flat: np.ndarray):
        self.core, self.epoch, self.flat, self._drawn = core, epoch, flat, {}

    def of(self, replica: int):
        """``n_cond -> per layer (n_measure, n_cond, width)`` of ``replica``, as :func:`ib_sweeps.trial.measure`
        takes it."""

        def samples(n_cond: int) -> list:
            if n_cond not in self._drawn:
                self._drawn[n_cond] = self.core.noisy_samples(self.epoch, n_cond, self.flat)
            return [a[replica] for a in self._drawn[n_cond]]

        return samples


class Snapshots:
    """The array's weights after each trained epoch a replica's open gap may still need (backtracking schedules).

    A replica measured at epoch b whose plan finds the gap from its previous
    measurement a too wide fills it as alone (:func:`ib_sweeps.schedules.backtrack`),
    measuring epochs between a and b from these weights
    (:meth:`~ib_sweeps.train.array.ArrayCore.activity_from`); the stretches the
    array trained in lockstep since a may be several, so the weights are kept
    across :meth:`~ib_sweeps.train.array.ArrayCore.advance` calls until no
    replica's gap can reach them.
    """

    def __init__(self, core):
        self.core, self.by_epoch, self._acts, self._samples = core, {}, {}, {}

    def keep(self, first: int) -> None:
        """Keep the last advance's weights (its epochs from ``first``)."""
        if self.core.snapshots is not None:
            self.by_epoch.update({first + i: w for i, w in enumerate(self.core.snapshots)})

    def activity(self, replica: int, epoch: int) -> list:
        """Replica ``replica``'s activity per layer at a kept ``epoch`` (every replica's is computed once)."""
        if epoch not in self._acts:
            self._acts = {epoch: self.core.activity_from(self.by_epoch[epoch], epoch)}
        return [a[replica] for a in self._acts[epoch]]

    def samples(self, replica: int, epoch: int):
        """A noisy array's replica's noisy_sp samples at a kept ``epoch`` (:class:`NoisySamples`); None if noiseless."""
        if not self.core.noisy:
            return None
        if epoch not in self._samples:
            self._samples = {epoch: NoisySamples(self.core, epoch, self.by_epoch[epoch])}
        return self._samples[epoch].of(replica)

    def forget(self, active: list) -> None:
        """Drop weights no open gap can need: epochs up to the earliest last measurement of ``active`` replicas."""
        lasts = [r.plan.last for r in active if r.plan.needs_snapshots and r.plan.last is not None]
        low = min(lasts) if lasts else max(self.by_epoch, default=0)
        self.by_epoch = {e: w for e, w in self.by_epoch.items() if e > low}
        self._acts, self._samples = {}, {}


def _backtrack(r: Replica, gap, snaps: Snapshots) -> None:
    """Fill replica r's ``gap`` as the trial alone does, from the kept weights; record the epochs as backtracked."""
    from ib_sweeps.schedules import backtrack

    primary, found = r.cfg.primary_estimator(), []

    def measure_epoch(epoch):
        t0 = time.perf_counter()
        samples = snaps.samples(r.index, epoch)
        ixt, iyt = measure(r.cfg.estimators, snaps.activity(r.index, epoch), r.dataset.y_measure, samples)
        r.seconds["estimate_s"] += time.perf_counter() - t0
        found.append((epoch, ixt, iyt))
        return np.stack([ixt[primary], iyt[primary]])

    backtrack(gap, measure_epoch, r.plan.close, r.plan.budget)
    for epoch, ixt, iyt in found:
        r.record(epoch, ixt, iyt, [], "backtracked")


def _measure(jobs, epoch: int, ahead: bool, snaps: Snapshots | None = None, samples: NoisySamples | None = None):
    """Estimate and record ``epoch`` for each (replica, activities, history steps); a failure fails that replica.

    The replicas are estimated together (:func:`ib_sweeps.estimators.replicas.measure`: the binnings in one
    pass, each replica's numbers bit-identical to its estimation alone); ``estimate_s`` gets each replica's share.
    ``samples``: a noisy array's noisy_sp samples at ``epoch`` (None: noiseless). A gap a replica's plan opens
    is filled here, from ``snaps`` (:func:`_backtrack`).
    """
    from ib_sweeps.estimators import replicas

    estimates = replicas.measure(
        [
            (r.cfg.estimators, activities, r.dataset.y_measure, None if samples is None else samples.of(r.index))
            for r, activities, _ in jobs
        ]
    )
    for (r, _, steps), (planes, seconds) in zip(jobs, estimates, strict=True):
        try:
            r.seconds["estimate_s"] += seconds
            if isinstance(planes, BaseException):
                raise planes
            ixt, iyt = planes
            r.record(epoch, ixt, iyt, steps)
            primary = r.cfg.primary_estimator()
            gap = r.plan.observe(epoch, np.stack([ixt[primary], iyt[primary]]))
            if gap is not None:
                _backtrack(r, gap, snaps)
            if not ahead:
                r.pending = r.plan.next()
        except Exception as err:
            r.fail(err)
