"""One measured epoch of many replicas (a trial array), estimated together, in bits.

:func:`measure` gives each replica exactly what :func:`ib_sweeps.trial.measure`
gives it alone: the same float64 bits, or the exception its own estimation
raises. Estimators with per-unit codes (``_unit_codes``: the binnings) bin the
layers of up to :data:`MAX_VALUES` activity values of the replicas sharing an
estimator config (its label aside), layer shapes and dtypes in one pass, and
count their states for all of them at once (:mod:`discrete_batch`); other
estimators (``noisy_sp`` of a noisy replica measures its own samples, as
alone), activity that fails validation, and a pass that raises are
estimated replica by replica, so a failure stays the failing replica's own.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from ib_sweeps.estimators import discrete_batch
from ib_sweeps.estimators.base import Estimator, check_activity

# Activity values binned per pass (4 replicas of the 12-bit net's 31 units x 4096 inputs): bounds the reused
# buffers (~25 bytes a value) while the per-call costs are spread thin (benchmarks/bench_estimators.py replicas).
MAX_VALUES = 2**19


def batches(est: Estimator) -> bool:
    """Whether ``est`` estimates many replicas in one pass (it has per-unit codes)."""
    return type(est)._unit_codes is not Estimator._unit_codes


def measure(jobs) -> list[tuple[object, float]]:
    """Per job ``(estimators, activities, labels[, samples])`` of one replica, the arguments of
    :func:`ib_sweeps.trial.measure`: ``((ixt, iyt), seconds)`` or ``(error, seconds)``.

    ``activities``: the replica's layers, each (n_inputs, width); ``labels``: int
    (n_inputs,); ``samples``: a noisy replica's ``n_cond -> [per layer (n_inputs,
    n_cond, ...)]`` (None or absent: none), which estimators that use noisy
    samples (``noisy_sp``) measure instead. ``ixt``, ``iyt``: (n_estimators,
    n_layers) in bits, as :func:`ib_sweeps.trial.measure`. ``seconds``: the
    replica's estimation time (its own calls, plus its share of each pass it was in).
    """
    values = [[None] * len(job[0]) for job in jobs]  # per job and estimator: (n_layers, 2) or an error
    seconds = np.zeros(len(jobs))
    groups: dict[tuple, list[tuple[int, int]]] = {}
    jobs = [(job[0], [np.asarray(a) for a in job[1]], job[2], job[3] if len(job) > 3 else None) for job in jobs]
    for j, (ests, activities, labels, samples) in enumerate(jobs):
        valid = _valid(activities, labels)
        for e, est in enumerate(ests):
            if samples is not None and est.uses_noisy_samples:
                seconds[j] += _alone(est, activities, labels, values[j], e, samples)
            elif valid and batches(est):
                key = (est.model_copy(update={"label": None}), *((a.shape, a.dtype) for a in activities))
                groups.setdefault(key, []).append((j, e))
            else:
                seconds[j] += _alone(est, activities, labels, values[j], e)
    for (est, *_), members in groups.items():
        per_pass = max(1, MAX_VALUES // sum(a.size for a in jobs[members[0][0]][1]))
        for chunk in (members[i : i + per_pass] for i in range(0, len(members), per_pass)):
            t0 = time.perf_counter()
            try:
                planes = information_planes(est, [jobs[j][1] for j, _ in chunk], [jobs[j][2] for j, _ in chunk])
            except Exception:  # estimated alone instead, each replica meets its own error (or none)
                for j, e in chunk:
                    seconds[j] += _alone(est, jobs[j][1], jobs[j][2], values[j], e)
                continue
            share = (time.perf_counter() - t0) / len(chunk)
            for (j, e), p in zip(chunk, planes, strict=True):
                values[j][e] = p
                seconds[j] += share
    return [(_result(v), s) for v, s in zip(values, seconds.tolist(), strict=True)]


def information_planes(est: Estimator, activities, labels) -> np.ndarray:
    """(R, n_layers, 2) (I(X;T), I(Y;T)) in bits; ``[r]`` is ``est.information_planes(activities[r], labels[r])``.

    ``activities``: R replicas' layers, each replica's of the same shapes (n, d_l)
    and validated; ``labels``: R int arrays (n,). ``est`` must have per-unit codes.
    """
    r, n_layers = len(activities), len(activities[0])
    codes, bounds = est._unit_codes([a for layers in activities for a in layers])
    by_replica = codes.reshape(r, bounds[n_layers], -1)  # one replica's units after another's
    ids = np.stack(
        [discrete_batch.state_ids(by_replica[:, s:t]) for s, t in itertools.pairwise(bounds[: n_layers + 1])],
        axis=1,
    )
    return discrete_batch.planes(ids, np.stack([np.asarray(y) for y in labels]))


def _valid(activities, labels) -> bool:
    """Whether every layer is 2-D, finite and matches ``labels`` (else the replica is estimated alone)."""
    try:
        for a in activities:
            check_activity(a, labels)
    except ValueError:
        return False
    return len(activities) > 0


def _alone(est: Estimator, activities, labels, out: list, e: int, samples=None) -> float:
    """``out[e]`` = ``est``'s planes of one replica (from ``samples``, when given: :func:`ib_sweeps.trial.measure`),
    or the error it raises; the seconds it took."""
    t0 = time.perf_counter()
    try:
        if samples is not None:
            out[e] = est.network_planes(samples(est.n_cond), labels)
        else:
            out[e] = est.information_planes(activities, labels)
    except Exception as err:
        out[e] = err
    return time.perf_counter() - t0


def _result(values: list):
    """(ixt, iyt) of one replica's per-estimator planes, or the first estimator's error, as the trial alone."""
    for v in values:
        if isinstance(v, BaseException):
            return v
    try:
        stacked = np.stack(values)  # (n_estimators, n_layers, 2)
    except ValueError as err:  # no estimators
        return err
    return stacked[..., 0], stacked[..., 1]
