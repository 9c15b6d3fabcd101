"""Metric histories of many runs, read in bulk and cached per run id.

MLflow's client reads one (run, key) history per call; a sweep of 100 trials
with 50 keys each would be 5 000 round trips. On a SQL store (SQLite, the
default) every wanted key of up to 500 runs comes in one query, through
:mod:`ib_sweeps.store_sql` (the one module that reads MLflow's private store;
MLflow versions it was tested with only); on any other store (an ``mlflow
server``), or with another MLflow, the per-key calls go out from a thread pool.

Histories of runs that have ended are cached in memory per (tracking URI,
run id, key), so the report and repeated queries in a notebook read each
history once. Running runs are always read afresh.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ib_sweeps import store_sql

_THREADS = 16
_lock = threading.Lock()
_cache: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}


def clear_cache() -> None:
    """Forget every cached history."""
    with _lock:
        _cache.clear()


def read(client, uri: str, wanted: dict[str, Iterable[str]], ended: set[str]) -> dict:
    """Histories ``{(run_id, key): (steps int64, values float64)}`` sorted by step.

    ``wanted``: run id -> metric keys; ``ended``: run ids that can no longer
    change (their histories are cached). A step logged twice keeps the value
    logged last.
    """
    out, missing = {}, {}
    with _lock:
        for run_id, keys in wanted.items():
            for key in keys:
                hit = _cache.get((uri, run_id, key)) if run_id in ended else None
                if hit is None:
                    missing.setdefault(run_id, set()).add(key)
                else:
                    out[run_id, key] = hit
    if missing:
        store = store_sql.sql_store(client)
        if store is not None:
            fetched = {pair: _series(*rows) for pair, rows in store_sql.metric_rows(store, missing).items()}
        else:
            fetched = _read_each(client, missing)
        with _lock:
            for (run_id, key), series in fetched.items():
                if run_id in ended:
                    _cache[uri, run_id, key] = series
        out.update(fetched)
    return out


def _read_each(client, missing: dict[str, set[str]]) -> dict:
    pairs = [(run_id, key) for run_id, keys in missing.items() for key in sorted(keys)]

    def one(pair):
        history = sorted(client.get_metric_history(*pair), key=lambda m: (m.step, m.timestamp))
        return pair, _series([m.step for m in history], [m.value for m in history])

    with ThreadPoolExecutor(_THREADS) as pool:
        return dict(pool.map(one, pairs))


def _series(steps, values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by step (then logging time); a repeated step keeps its last value."""
    steps, values = np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)
    if len(steps) > 1:
        keep = np.append(steps[1:] != steps[:-1], True)
        steps, values = steps[keep], values[keep]
    return steps, values
