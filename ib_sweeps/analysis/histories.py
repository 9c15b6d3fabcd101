"""Metric histories of many runs, read in bulk and cached per run id.

MLflow's client reads one (run, key) history per call; a sweep of 100 trials
with 50 keys each would be 5 000 round trips. On a SQL store (SQLite, the
default) this module asks the store for every wanted key of up to 500 runs in
one query, returning bare (run, key, step, value) rows; on any other store
(an ``mlflow server``) it issues the per-key calls from a thread pool.

Histories of runs that have ended are cached in memory per (tracking URI,
run id, key), so the report and repeated queries in a notebook read each
history once. Running runs are always read afresh.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_CHUNK = 500  # run ids per SQL query (SQLite allows 32 766 bound variables)
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
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        fetched = _read_sql(store, missing) if _is_sql(store) else _read_each(client, missing)
        with _lock:
            for (run_id, key), series in fetched.items():
                if run_id in ended:
                    _cache[uri, run_id, key] = series
        out.update(fetched)
    return out


def _is_sql(store) -> bool:
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - MLflow without SQL support
        return False
    return isinstance(store, SqlAlchemyStore)


def _read_sql(store, missing: dict[str, set[str]]) -> dict:
    """Two SELECTs per 500 runs on the store's own connection: (run, key) counts, then bare numbers.

    Only (step, value, is_nan) travel per row, straight into numpy; the counts
    cut them into series. Should a run log between the two queries (the
    totals disagree), that chunk is read again with run and key on every row.
    """
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    m = SqlMetric.__table__.c
    keys = sorted({k for ks in missing.values() for k in ks})
    ids = sorted(missing)
    out: dict = {}
    with store.ManagedSessionMaker() as session:
        conn = session.connection()

        def fetch(query) -> list:
            # A plain DB-API cursor: SQLAlchemy's row objects would cost more than the query itself.
            sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql)
                return cursor.fetchall()
            finally:
                cursor.close()

        for i in range(0, len(ids), _CHUNK):
            where = (m.run_uuid.in_(ids[i : i + _CHUNK]), m.key.in_(keys))
            order = (m.run_uuid, m.key)
            counts = fetch(
                sa.select(m.run_uuid, m.key, sa.func.count()).where(*where).group_by(*order).order_by(*order)
            )
            rows = fetch(sa.select(m.step, m.value, m.is_nan).where(*where).order_by(*order, m.step, m.timestamp))
            if not _agree(counts, rows):  # logged in between: labels on every row instead
                full = fetch(
                    sa.select(m.run_uuid, m.key, m.step, m.value, m.is_nan)
                    .where(*where)
                    .order_by(*order, m.step, m.timestamp)
                )
                counts = [(r, k, len(list(g))) for (r, k), g in itertools.groupby(full, key=lambda x: x[:2])]
                rows = [x[2:] for x in full]
            table = np.array(rows, dtype=np.float64).reshape(-1, 3)
            table[table[:, 2] != 0, 1] = np.nan  # MLflow stores NaN as 0 with is_nan set
            start = 0
            for run_id, key, count in counts:
                if key in missing.get(run_id, ()):
                    block = table[start : start + count]
                    out[run_id, key] = _series(block[:, 0].astype(np.int64), block[:, 1])
                start += count
    return out


def _agree(counts, rows) -> bool:
    return sum(c for _, _, c in counts) == len(rows)


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
