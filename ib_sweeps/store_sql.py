"""MLflow's SQL tracking store, read directly: the one module that touches MLflow's private store, ORM and schema.

Why: MLflow's public client reads one (run, key) metric history per call. A
sweep of 100 trials with 50 keys each is 5 000 calls for a report, and
checking that a finished trial's 41 keys (34 813 values) are all stored takes
~3 s that way; one query here takes ~0.1 s.

What it relies on, none of it public API (any MLflow release may change it):

* ``MlflowClient(uri)._tracking_client.store`` is a
  ``mlflow.store.tracking.sqlalchemy_store.SqlAlchemyStore`` for a SQL
  database, with a ``ManagedSessionMaker`` (used by :func:`metric_rows`);
* ``mlflow.store.tracking.dbmodels.models.SqlMetric``: the ``metrics`` table,
  columns ``run_uuid``, ``key``, ``step``, ``value``, ``is_nan`` (NaN stored as
  0 with ``is_nan`` set) and ``timestamp``; :func:`stored_steps` reads it with
  plain SQL from the SQLite file.

Works with MLflow 3.17.x (tested). ``tests/test_store_sql.py`` compares every
function here with the public API on a real SQLite store and fails when the
installed MLflow is not in :data:`TESTED`. Outside those versions nothing here
touches the store: :func:`usable` is False and the callers
(:mod:`ib_sweeps.analysis.histories`, :func:`ib_sweeps.tracking.stored_steps`)
use the public API, slower with the same answers. To allow a new MLflow
version, run that test with it and add the version to :data:`TESTED`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
from pathlib import Path

import numpy as np

TESTED = ((3, 17),)  # MLflow (major, minor) versions this module was checked against
CHUNK = 500  # run ids per SQL query (SQLite allows 32 766 bound variables)


@functools.cache
def mlflow_version() -> tuple[int, int] | None:
    """(major, minor) of the installed MLflow, None if it is not installed or not numbered so."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = version("mlflow").split(".")[:2]
        return int(major), int(minor)
    except (PackageNotFoundError, ValueError):
        return None


def usable() -> bool:
    """Whether the installed MLflow is one this module was tested with (else callers use the public API)."""
    return mlflow_version() in TESTED


def sql_store(client):
    """The SQL store behind an :class:`mlflow.MlflowClient`, or None (another store, or an untested MLflow)."""
    if not usable():
        return None
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - MLflow without SQL support
        return None
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


def metric_rows(store, wanted: dict[str, set[str]]) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Every stored value of the ``wanted`` keys (run id -> keys) of a :func:`sql_store`, in bulk.

    Returns ``{(run_id, key): (steps int64, values float64)}`` ordered by step,
    then logging time; a step logged twice appears twice. Two SELECTs per
    :data:`CHUNK` runs on the store's own connection: (run, key) counts, then
    bare (step, value, is_nan) rows straight into numpy, cut into series by the
    counts. Should a run log between the two queries (the totals disagree),
    that chunk is read again with run and key on every row.
    """
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    m = SqlMetric.__table__.c
    keys = sorted({k for ks in wanted.values() for k in ks})
    ids = sorted(wanted)
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

        for i in range(0, len(ids), CHUNK):
            where = (m.run_uuid.in_(ids[i : i + CHUNK]), m.key.in_(keys))
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
                if key in wanted.get(run_id, ()):
                    block = table[start : start + count]
                    out[run_id, key] = block[:, 0].astype(np.int64), block[:, 1]
                start += count
    return out


def _agree(counts, rows) -> bool:
    return sum(c for _, _, c in counts) == len(rows)


def stored_steps(path: str | Path, run_id: str) -> dict[str, list[int]] | None:
    """Every stored step of every metric of ``run_id`` in the SQLite file ``path``, by key (else None).

    One read-only query of the ``metrics`` table. None when :func:`usable` is
    False or SQLite fails, so the caller falls back to the public API.
    """
    if not usable():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute("SELECT key, step FROM metrics WHERE run_uuid = ?", (run_id,)).fetchall()
    except sqlite3.Error:
        return None
    out: dict[str, list[int]] = {}
    for key, step in rows:
        out.setdefault(key, []).append(int(step))
    return out
