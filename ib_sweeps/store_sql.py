"""MLflow's SQL tracking store, read and written directly: the one module touching MLflow's private store and schema.

Why: MLflow's public client reads one (run, key) metric history per call. A
sweep of 100 trials with 50 keys each is 5 000 calls for a report, and
checking that a finished trial's 41 keys (34 813 values) are all stored takes
~3 s that way; one query here takes ~0.1 s. Writing goes through MLflow's ORM
at ~0.12 ms CPU a metric value (~1.3 s a trial of ~11 000 values, in a thread
that competes with training); :func:`log_metrics` stores the same rows with
one ``executemany`` per batch (see ``benchmarks/bench_logging.py``).

What it relies on, none of it public API (any MLflow release may change it):

* ``MlflowClient(uri)._tracking_client.store`` is a
  ``mlflow.store.tracking.sqlalchemy_store.SqlAlchemyStore`` for a SQL
  database, with a ``ManagedSessionMaker`` (used by :func:`metric_rows`);
* ``mlflow.store.tracking.dbmodels.models.SqlMetric``: the ``metrics`` table,
  columns ``run_uuid``, ``key``, ``step``, ``value``, ``is_nan`` (NaN stored as
  0 with ``is_nan`` set) and ``timestamp``, primary key all six; :func:`stored_steps`
  reads it with plain SQL from the SQLite file;
* for :func:`log_metrics`: the ``latest_metrics`` table (one row per run and key,
  same columns), ``runs.lifecycle_stage``, the validators in
  ``mlflow.utils.validation`` and ``SqlAlchemyStore._log_metrics_once`` /
  ``_update_latest_metrics_if_necessary``, whose stored result it reproduces.

Works with MLflow 3.17.x (tested). ``tests/test_store_sql.py`` compares every
function here with the public API on a real SQLite store (for the writer: row
for row against ``log_batch``) and fails when the installed MLflow is not in
:data:`TESTED`. Outside those versions nothing here touches the store:
:func:`usable` is False and the callers (:mod:`ib_sweeps.analysis.histories`,
:func:`ib_sweeps.tracking.stored_steps`, :class:`ib_sweeps.tracking.RunLogger`)
use the public API, slower with the same answers. To allow a new MLflow
version, run that test with it and add the version to :data:`TESTED`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

TESTED = ((3, 17),)  # MLflow (major, minor) versions this module was checked against
CHUNK = 500  # run ids (or metric keys) per SQL query (SQLite allows 32 766 bound variables)
BUSY_TIMEOUT_S = 60.0  # a writer waits this long for another's transaction (MLflow's own sessions wait 20 s)
KEEP_CONNECTIONS = 4  # open write connections a process keeps, one per store file


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


def writable(client) -> bool:
    """Whether :func:`log_metrics` may stand in for ``client.log_batch``: a tested MLflow's plain SQLite store.

    Not a subclass of the store (MLflow's workspace-aware one scopes runs to a workspace; the writer does not).
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = sql_store(client)
    return type(store) is SqlAlchemyStore and store.db_type == "sqlite"


_INSERT = (
    "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key, timestamp, step, run_uuid, value, is_nan) DO NOTHING"
)  # a row stored already is skipped, as MLflow skips it; the conflict target is the whole primary key
_CONNECTIONS: dict[tuple[int, str], tuple[sqlite3.Connection, int]] = {}  # (pid, path) -> (connection, inode)
_LOCK = threading.Lock()  # one write at a time per process: the connections are shared by its threads


def log_metrics(path: str | Path, run_id: str, metrics) -> None:
    """Store ``metrics`` (:class:`mlflow.entities.Metric`, at most 1000) in run ``run_id`` of the SQLite file ``path``.

    The rows MLflow 3.17's ``SqlAlchemyStore.log_batch`` stores, in one ``BEGIN IMMEDIATE`` transaction: the
    same validation and errors (:class:`mlflow.exceptions.MlflowException`, also for a deleted or missing run;
    an ended run takes metrics, as in MLflow), NaN as 0 with ``is_nan`` set, +-inf as +-1.7976931348623157e308,
    a row stored already skipped, and ``latest_metrics`` per key the first maximum by (step, timestamp, value)
    of its old row and the new ones. Metrics of a logged model (``model_id``) are refused (ValueError): MLflow
    stores those in another table too. SQLite errors (a schema this does not know, a lock held longer than
    :data:`BUSY_TIMEOUT_S`) are raised as ``sqlite3.Error``, a missing file as ``FileNotFoundError``, with
    nothing stored.
    """
    if not metrics:
        return
    rows = _validated(run_id, metrics)
    with _LOCK:
        db = _connection(Path(path))
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: upgrading a read lock fails at once when busy
            _check_active(db, run_id)
            db.executemany(_INSERT, [(*row, run_id) for row in rows])
            _update_latest(db, run_id, rows)
            db.execute("COMMIT")
        except BaseException as err:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(err, sqlite3.Error):  # a fresh connection next time
                _close(Path(path))
            raise


def _validated(run_id: str, metrics) -> list[tuple]:
    """``(key, value, timestamp, step, is_nan)`` rows of ``metrics``, converted, validated and sanitised as
    ``MlflowClient.log_batch`` and the store do it (MLflow's own functions, same errors)."""
    from mlflow.tracking.metric_value_conversion_utils import convert_metric_value_to_float_if_possible
    from mlflow.utils.validation import _validate_batch_log_limits, _validate_metric, _validate_run_id

    _validate_run_id(run_id)
    rows, named = [], set()
    for i, m in enumerate(metrics):
        if m.model_id is not None:
            raise ValueError(f"metric {m.key!r} names logged model {m.model_id}; log it through MLflow")
        key, value, timestamp, step = m.key, m.value, m.timestamp, m.step
        if type(value) is not float:
            value = convert_metric_value_to_float_if_possible(value)
        # MLflow's checks cost ~6 us a value, mostly the name's; a key already checked in this batch with a
        # float value, an int timestamp >= 0 and an int step passes them all
        if key not in named or not (
            type(value) is float and type(timestamp) is int and timestamp >= 0 and type(step) is int
        ):
            _validate_metric(key, value, timestamp, step, path=f"metrics[{i}]")
            named.add(key)
        is_nan = math.isnan(value)
        if is_nan:
            value = 0.0
        elif math.isinf(value):  # SQL has no infinities
            value = math.copysign(1.7976931348623157e308, value)
        rows.append((key, value, timestamp, step, is_nan))
    _validate_batch_log_limits(metrics, [], [])
    return rows


def _check_active(db: sqlite3.Connection, run_id: str) -> None:
    """Refuse a missing or deleted run with MLflow's own error (``SqlAlchemyStore._check_run_is_active``)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    row = db.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
    if row is None:
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
    if row[0] != "active":
        raise MlflowException(
            f"The run {run_id} must be in the 'active' state. Current state is {row[0]}.", INVALID_PARAMETER_VALUE
        )


def _update_latest(db: sqlite3.Connection, run_id: str, rows: list[tuple]) -> None:
    """Move each key's ``latest_metrics`` row to the first of ``rows`` greater by (step, timestamp, value).

    As ``_update_latest_metrics_if_necessary``: sanitised values compared, ties keep the older row. A row
    the store held already changes nothing (the latest row is at least as great), so all ``rows`` are folded.
    """
    keys = sorted({row[0] for row in rows})
    old: dict[str, tuple] = {}
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i : i + CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT key, step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key IN ({marks})"
        old.update((key, tuple(rest)) for key, *rest in db.execute(query, (run_id, *chunk)))
    new: dict[str, tuple] = {}
    for key, value, timestamp, step, is_nan in rows:
        best = new.get(key) or old.get(key)
        if best is None or (step, timestamp, value) > best[:3]:
            new[key] = (step, timestamp, value, is_nan)
    db.executemany(
        "UPDATE latest_metrics SET step = ?, timestamp = ?, value = ?, is_nan = ? WHERE run_uuid = ? AND key = ?",
        [(*new[k], run_id, k) for k in new if k in old],
    )
    db.executemany(
        "INSERT INTO latest_metrics (step, timestamp, value, is_nan, run_uuid, key) VALUES (?, ?, ?, ?, ?, ?)",
        [(*new[k], run_id, k) for k in new if k not in old],
    )


def _connection(path: Path) -> sqlite3.Connection:
    """This process's write connection to ``path``, kept open between batches (caller holds :data:`_LOCK`).

    Keyed by process id (a connection must not cross a fork) and checked against the file's inode (a store
    deleted and made again is reopened). ``mode=rw``: a missing file is an error, not a new empty database.
    MLflow's pragmas are set (foreign keys on, the busy timeout); its journal mode (rollback journal) is
    left as it is: WAL would be a persistent change to the file that MLflow did not ask for.
    """
    inode = os.stat(path).st_ino  # FileNotFoundError for a missing store
    key = (os.getpid(), str(path))
    held = _CONNECTIONS.get(key)
    if held is not None and held[1] == inode:
        return held[0]
    if held is not None:
        _close(path)
    db = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
        check_same_thread=False,
    )  # fmt: skip
    db.execute("PRAGMA foreign_keys = ON")
    mine = [k for k in _CONNECTIONS if k[0] == key[0]]
    for old in mine[: max(0, len(mine) - KEEP_CONNECTIONS + 1)]:  # the oldest go
        _CONNECTIONS.pop(old)[0].close()
    _CONNECTIONS[key] = (db, inode)
    return db


def _close(path: Path) -> None:
    held = _CONNECTIONS.pop((os.getpid(), str(path)), None)
    if held is not None:
        with contextlib.suppress(sqlite3.Error):
            held[0].close()
