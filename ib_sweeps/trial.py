"""One trial: validated config -> training core -> estimators -> one MLflow run.

Data flows one way: the config builds the data set and the compiled core; at
each scheduled epoch the core returns every layer's activity, each estimator
turns it into (I(X;T), I(Y;T)) in bits, and one flat metrics dict per measured
epoch goes to MLflow, with each layer's minibatch-gradient statistics of that
epoch (``train.gradient_stats``; the core records them for every epoch, so
backtracked epochs have them too, and the trace keeps all of them). The trace,
figures and config are logged as artifacts. With a ``pooled`` section, windows
of epochs are also estimated pooled (:mod:`ib_sweeps.pooled`). On a noisy
network (``model.noise_std``) the activity is one noisy draw, which every
estimator but ``noisy_sp`` measures; ``noisy_sp`` gets n_cond noisy passes of
each input instead (:func:`measure`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ib_sweeps import __version__, config, data, gradients, pooled, records, tracking
from ib_sweeps.estimators import discrete
from ib_sweeps.trace import Trace, plane_metrics


@dataclass(frozen=True)
class TrialResult:
    run_id: str
    trace: Trace
    seconds: dict[str, float]
    summary: dict[str, float]  # ``RunOptions.summarize`` of the trace, as logged ({} without it)


def input_entropies(dataset: data.Dataset) -> tuple[float, float]:
    """H(X) = log2(#measured inputs) and H(Y) in bits, X uniform over the measured rows."""
    return float(np.log2(len(dataset.x_measure))), discrete.entropy(discrete.dense_ids(dataset.y_measure))


def measure(estimators, activities, labels, samples=None) -> tuple[np.ndarray, np.ndarray]:
    """(I(X;T), I(Y;T)) in bits, each (n_estimators, n_layers), for one epoch's activities.

    ``samples``: for a noisy network, ``n_cond -> [per layer (n_inputs, n_cond, ...)]``, the
    noiseless outputs of n_cond noisy passes of each input (:meth:`TrainingCore.noisy_samples`):
    ``noisy_sp`` measures from them (:meth:`NoisySP.network_planes`); every other estimator
    measures ``activities``, one noisy draw.
    """
    drawn: dict[int, list] = {}

    def planes(est):
        if samples is None or not est.uses_noisy_samples:
            return est.information_planes(activities, labels)
        if est.n_cond not in drawn:
            drawn[est.n_cond] = samples(est.n_cond)
        return est.network_planes(drawn[est.n_cond], labels)

    values = np.stack([planes(est) for est in estimators])  # (n_est, n_layers, 2)
    return values[..., 0], values[..., 1]


def epoch_metrics(keys, layers, ixt, iyt) -> dict[str, float]:
    """Flat metric dict ``ixt/<estimator>/<layer>`` and ``iyt/...`` of one measured epoch."""
    return plane_metrics(keys, layers, ixt, iyt)


def measured_steps(trace: Trace, epoch: int, ixt, iyt, reason: str, steps, logged: set) -> list:
    """Add one measured epoch to ``trace``; the metric steps that log it (a trial alone and an array replica).

    ``steps``: history steps (epoch, {key: value}) before it, logged first; then the
    epoch's plane (bits), ``schedule/backtracked``, its gradient statistics and,
    unless ``logged`` says the store has them, its loss and accuracy.
    """
    trace.add(epoch, ixt, iyt, reason)
    metrics = epoch_metrics(trace.estimators, trace.layers, ixt, iyt)
    metrics[records.BACKTRACKED] = float(reason == "backtracked")
    if trace.grad is not None and epoch > 0:  # epoch 0 trained on no batch
        metrics.update(gradients.metrics(trace.layers, trace.grad[epoch]))
    own = next((values for e, values in steps if e == epoch), {})
    row = trace.history[epoch]
    if not own and epoch not in logged and not np.isnan(row).all():  # a measured epoch has its loss
        own = dict(zip(records.HISTORY, row, strict=True))
        logged.add(epoch)
    return [*(s for s in steps if s[0] != epoch), (epoch, {**own, **metrics})]


HISTORY_DENSE_UNTIL, HISTORY_LOG_POINTS = 100, 400


def stored_history_epochs(n_epochs: int) -> frozenset[int]:
    """Epochs whose loss and accuracy go to the MLflow store: 0 .. 100 and 400 log-spaced epochs up to the last.

    Every epoch's loss and accuracy are in ``trace.npz``; the store holds these
    and every measured epoch (scheduled or backtracked), enough for the UI's
    charts and the analysis on a log-epoch axis at a fraction of the rows (a
    default 8000-epoch trial: about 800 of 8001 epochs).
    """
    kept = set(range(min(n_epochs, HISTORY_DENSE_UNTIL) + 1)) | {n_epochs}
    if n_epochs > HISTORY_DENSE_UNTIL:
        kept |= {int(e) for e in np.round(np.geomspace(HISTORY_DENSE_UNTIL, n_epochs, HISTORY_LOG_POINTS))}
    return frozenset(kept)


def history_steps(first_epoch: int, rows: np.ndarray, keys, kept) -> list[tuple[int, dict[str, float]]]:
    """``(epoch, {loss/accuracy key: value})`` of the epochs in ``kept`` among ``rows`` (from ``first_epoch``)."""
    return [
        (first_epoch + i, dict(zip(keys, row, strict=True))) for i, row in enumerate(rows) if first_epoch + i in kept
    ]


def _advance(core, to_epoch: int, wanted, snapshots: bool):
    """Train to ``to_epoch``: (history rows, activities, weight snapshots or None, {epoch: activities}).

    The dict holds the activities of the ``wanted`` epochs reached by this call
    (``to_epoch`` included), for pooled windows. With snapshots, those before
    ``to_epoch`` are recomputed from the snapshots and the core trains in one
    call, exactly as without pooling; else the core stops at each of them,
    which gives the same numbers (training does not depend on the chunking).
    """
    from ib_sweeps import train

    start, first = core.epoch, core.epoch + 1 if to_epoch > 0 else 0
    between = sorted(e for e in wanted if start < e < to_epoch)
    if snapshots:
        rows, acts, snaps = core.advance_with_snapshots(to_epoch)
        passed = {e: core.activity_from(snaps[e - start - 1], epoch=e) for e in between}
    else:
        chunks, passed, snaps = [], {}, None
        try:
            for e in between:
                r, passed[e] = core.advance(e)
                chunks.append(r)
            r, acts = core.advance(to_epoch)
        except train.TrainingDiverged as err:  # report the whole call's finite history
            raise train.TrainingDiverged(err.epoch, first, np.concatenate([*chunks, err.rows])) from None
        rows = np.concatenate([*chunks, r])
    if to_epoch in wanted:
        passed[to_epoch] = acts
    return rows, acts, snaps, passed


def run_trial(cfg: config.TrialConfig, opts: tracking.RunOptions | None = None) -> TrialResult:
    """Train and measure one trial, logging to MLflow; returns the run id and trace.

    Raises whatever the trial raised (the run is then marked FAILED with the
    error, and the partial trace is kept as an artifact).
    """
    from ib_sweeps import runtime

    opts = opts or tracking.RunOptions()
    runtime.configure_tensorflow(opts.cpus, gpu_share=opts.gpus)  # before any TensorFlow work
    tags = run_tags(cfg)
    with tracking.trial_run(opts, tags) as log:
        log.params(config.flatten(cfg))
        log.text(config_yaml(cfg), "config.yaml")
        trace, seconds = _train_and_measure(cfg, log, opts.progress)
        summary = opts.summarize(trace.sorted()) if opts.summarize is not None else {}
        if summary:  # inside the run: it ends FINISHED only once these are stored too
            log.metrics([(0, {records.summary(k): v for k, v in summary.items()})])
    return TrialResult(log.run_id, trace.sorted(), seconds, summary)


def run_tags(cfg: config.TrialConfig) -> dict[str, str]:
    """A trial's own tags: version, config hash, seed, and where it ran (GPU ids, memory policy)."""
    from ib_sweeps import runtime

    return {
        records.VERSION: __version__,
        records.CONFIG_HASH: config.config_hash(cfg),
        records.SEED: str(cfg.seed),
        **runtime.device_tags(),
    }


def snapshot_capacity(cfg, dataset, plan) -> int:
    """Epochs of weights one gap may need, within the schedule's memory bound."""
    if not plan.needs_snapshots:
        return 0
    from ib_sweeps import models

    n_params = models.count_params(cfg.model, dataset.input_shape, dataset.n_classes)
    by_memory = int(cfg.schedule.snapshot_limit_mb() * 2**20 // (4 * n_params))
    return max(1, min(cfg.train.epochs, by_memory))


def _train_and_measure(cfg, log, progress: bool):
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from ib_sweeps import plots, schedules, train

    t_start = time.perf_counter()
    data_ss, model_ss = np.random.SeedSequence(cfg.seed).spawn(2)
    dataset = data.load(cfg.data, np.random.default_rng(data_ss))
    labels = dataset.y_measure
    h_x, h_y = input_entropies(dataset)
    plan = cfg.schedule.plan(cfg.train.epochs, h_x, h_y)
    capacity = snapshot_capacity(cfg, dataset, plan)
    plan.max_gap = capacity + 1 if plan.needs_snapshots else None
    core = train.build_core(
        cfg.model, cfg.train, dataset, int(model_ss.generate_state(1)[0]), snapshot_capacity=capacity
    )
    keys, primary = [e.key for e in cfg.estimators], cfg.primary_estimator()
    history = np.full((cfg.train.epochs + 1, len(train.HISTORY_KEYS)), np.nan)
    trace = Trace(keys, core.layer_names, list(train.HISTORY_KEYS), h_x, h_y, history)
    if cfg.train.gradient_stats:
        # float32, as the core computes them: half the size in trace.npz (8001 x 6 x 3 values by default).
        shape = (cfg.train.epochs + 1, len(core.layer_names), len(gradients.KEYS))
        trace.grad = np.full(shape, np.nan, dtype=np.float32)
    windows = pooled.Windows(cfg.pooled, cfg.train.epochs) if cfg.pooled is not None else None
    pooled_ests = [cfg.estimators[i] for i in cfg.pooled_estimators()]
    if windows is not None:
        trace.pooled_window, trace.pooled_estimators = cfg.pooled.window, [e.key for e in pooled_ests]
    log.metrics([(0, {records.ENTROPY_X: h_x, records.ENTROPY_Y: h_y})])
    seconds = {"train_s": 0.0, "estimate_s": 0.0}
    if windows is not None:
        seconds["pooled_s"] = 0.0

    kept = stored_history_epochs(cfg.train.epochs)
    logged: set[int] = set()  # epochs whose loss/accuracy went to the store (each exactly once)

    def new_history_steps(first_epoch, rows):
        steps = [s for s in history_steps(first_epoch, rows, train.HISTORY_KEYS, kept) if s[0] not in logged]
        logged.update(e for e, _ in steps)
        return steps

    def record(epoch, ixt, iyt, reason, steps=()):
        """Log one measured epoch: its plane, gradient statistics and loss/accuracy, with ``steps`` before it."""
        log.metrics(measured_steps(trace, epoch, ixt, iyt, reason, steps, logged))

    def samples_of(epoch, flat=None):
        """A noisy network's noisy_sp samples at ``epoch`` (live weights, or ``flat``); None if deterministic."""
        if not core.noisy:
            return None
        return lambda n_cond: core.noisy_samples(epoch, n_cond, flat)

    def measure_windows(passed):
        for epoch in sorted(passed):  # window epochs reached, in order
            window = windows.add(epoch, passed[epoch])
            if window is not None:
                t0 = time.perf_counter()
                ixt, iyt = pooled.measure(pooled_ests, window, labels)
                seconds["pooled_s"] += time.perf_counter() - t0
                trace.add_pooled(epoch, ixt, iyt)
                log.metrics([(epoch, pooled.metrics(trace.pooled_estimators, core.layer_names, ixt, iyt))])

    def backtrack_gap(gap, snaps):
        # Runs in a worker thread while training goes on; the live network is not touched.
        found = []

        def measure_epoch(epoch):
            flat = snaps[epoch - gap.a - 1]
            ixt, iyt = measure(cfg.estimators, core.activity_from(flat, epoch=epoch), labels, samples_of(epoch, flat))
            found.append((epoch, ixt, iyt))
            return np.stack([ixt[primary], iyt[primary]])

        schedules.backtrack(gap, measure_epoch, plan.close, plan.budget)
        return found

    def harvest(futures, wait=False):
        for fut in [f for f in futures if wait or f.done()]:
            futures.remove(fut)
            for epoch, ixt, iyt in fut.result():
                record(epoch, ixt, iyt, "backtracked")

    bar = tqdm(total=cfg.train.epochs, unit="epoch", disable=not progress, mininterval=0.5)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backtrack") if plan.needs_snapshots else None
    futures: list = []
    try:
        while (epoch := plan.next()) is not None:
            first = core.epoch + 1 if epoch > 0 else 0
            t0 = time.perf_counter()
            wanted = windows.wanted if windows is not None else ()
            rows, activities, snaps, passed = _advance(core, epoch, wanted, pool is not None)
            t1 = time.perf_counter()
            ixt, iyt = measure(cfg.estimators, activities, labels, samples_of(epoch))
            seconds["estimate_s"] += time.perf_counter() - t1
            seconds["train_s"] += t1 - t0
            history[first : epoch + 1] = rows
            if trace.grad is not None:
                trace.grad[first : epoch + 1] = core.gradient_stats(first, epoch + 1)
            record(epoch, ixt, iyt, "scheduled", new_history_steps(first, rows))
            gap = plan.observe(epoch, np.stack([ixt[primary], iyt[primary]]))
            if gap is not None:
                futures.append(pool.submit(backtrack_gap, gap, snaps))
            harvest(futures)
            if windows is not None:
                measure_windows(passed)
            bar.update(int(epoch) - bar.n)
            last = dict(zip(records.HISTORY, rows[-1], strict=True))
            shown = {"loss": f"{last[records.LOSS_TRAIN]:.3g}", "test_acc": f"{last[records.ACCURACY_TEST]:.3f}"}
            bar.set_postfix(shown, refresh=False)
        t_wait = time.perf_counter()
        harvest(futures, wait=True)
        seconds["backtrack_wait_s"] = time.perf_counter() - t_wait
    except BaseException as err:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            for fut in futures:  # keep gaps the worker had already filled in
                if not fut.cancelled() and fut.exception() is None:
                    for epoch, ixt, iyt in fut.result():
                        record(epoch, ixt, iyt, "backtracked")
        if isinstance(err, train.TrainingDiverged):
            finite = slice(err.first_epoch, err.first_epoch + len(err.rows))
            history[finite] = err.rows
            if trace.grad is not None:
                trace.grad[finite] = core.gradient_stats(finite.start, finite.stop)
            log.metrics(new_history_steps(err.first_epoch, err.rows))
        try:  # keep what was measured; never mask the original error
            save_artifacts(trace, log, plots)
        except Exception as save_err:
            err.add_note(f"(saving the partial trace also failed: {save_err!r})")
        raise
    bar.close()
    if pool is not None:
        pool.shutdown()
    save_artifacts(trace, log, plots)
    seconds["total_s"] = time.perf_counter() - t_start
    log.metrics([(int(cfg.train.epochs), {records.time_key(k): v for k, v in seconds.items()})])
    return trace, seconds


def save_artifacts(trace, log, plots) -> None:
    """Trace always (partial if the trial failed); figures when there is something to draw."""
    with tempfile.TemporaryDirectory() as tmp:
        log.artifacts([trace.save(Path(tmp) / "trace.npz")])
        if len(trace.epochs) >= 1:
            log.artifacts(plots.save_all(trace, tmp), "figures")


def config_yaml(cfg) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(cfg), sort_keys=False)
