"""The private MLflow path (:mod:`ib_sweeps.store_sql`) against MLflow's public API on a real SQLite store.

These fail loudly when MLflow changes what the module relies on: its version range, the store class and
session maker, the ``metrics`` table's columns, or what the direct reads return.
"""

import math
import time

import numpy as np
import pytest

from ib_sweeps import store_sql, tracking


def _store(uri):
    """Two runs with NaN values, a step logged twice and a key only one run has."""
    from mlflow.entities import Metric

    client = tracking.open_client(uri)
    exp = tracking.ensure_experiment(client, "store-sql", uri)
    now = int(time.time() * 1000)
    runs = []
    for r in range(2):
        rid = client.create_run(exp).info.run_id
        metrics = [Metric("ixt/binning/layer_1", float(s) / 3, now + s, s) for s in range(50)]
        metrics += [Metric("loss/train", math.nan if s % 7 == 3 else 1.0 / (s + 1), now, s) for s in range(20)]
        metrics += [Metric("loss/train", 9.0, now + 100, 5)]  # step 5 again, logged later
        if r == 1:
            metrics += [Metric("grad/snr/layer_1", -float(s), now, s) for s in range(0, 30, 3)]
        client.log_batch(rid, metrics=metrics)
        runs.append(rid)
    return client, runs


def test_mlflow_is_a_version_this_module_was_tested_with():
    import mlflow

    major_minor = tuple(int(p) for p in mlflow.__version__.split(".")[:2])
    assert major_minor in store_sql.TESTED, (
        f"MLflow {mlflow.__version__} is not in ib_sweeps.store_sql.TESTED {store_sql.TESTED}: run this file with it, "
        "then add it there"
    )
    assert store_sql.mlflow_version() == major_minor and store_sql.usable()


@pytest.mark.slow
def test_the_private_names_it_relies_on_exist(tracking_uri):
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    client, _ = _store(tracking_uri)
    store = store_sql.sql_store(client)
    assert isinstance(store, SqlAlchemyStore) and callable(store.ManagedSessionMaker)
    assert SqlMetric.__tablename__ == "metrics"
    assert {"run_uuid", "key", "step", "value", "is_nan", "timestamp"} <= set(SqlMetric.__table__.c.keys())


@pytest.mark.slow
@pytest.mark.parametrize("labels_on_rows", [False, True])
def test_bulk_rows_equal_the_public_metric_history(tracking_uri, monkeypatch, labels_on_rows):
    client, runs = _store(tracking_uri)
    if labels_on_rows:  # as when a run logs between the count and the value query
        monkeypatch.setattr(store_sql, "_agree", lambda counts, rows: False)
    wanted = {rid: {"ixt/binning/layer_1", "loss/train", "grad/snr/layer_1", "absent"} for rid in runs}
    rows = store_sql.metric_rows(store_sql.sql_store(client), wanted)
    assert set(rows) == {(rid, k) for rid in runs for k in ("ixt/binning/layer_1", "loss/train")} | {
        (runs[1], "grad/snr/layer_1")
    }
    for (rid, key), (steps, values) in rows.items():
        public = sorted(client.get_metric_history(rid, key), key=lambda m: (m.step, m.timestamp))
        assert steps.dtype == np.int64 and steps.tolist() == [m.step for m in public]
        assert np.array_equal(values, np.array([m.value for m in public]), equal_nan=True)
    steps, values = rows[runs[0], "loss/train"]
    assert steps.tolist().count(5) == 2 and values[steps == 5].tolist() == [1.0 / 6, 9.0]
    assert np.isnan(values[steps == 3]).all()  # stored as 0 with is_nan set


@pytest.mark.slow
def test_stored_steps_equal_the_public_metric_history(tracking_uri):
    client, runs = _store(tracking_uri)
    steps = store_sql.stored_steps(tracking.sqlite_path(tracking_uri), runs[1])
    assert set(steps) == {"ixt/binning/layer_1", "loss/train", "grad/snr/layer_1"}
    for key, found in steps.items():
        assert sorted(found) == sorted(m.step for m in client.get_metric_history(runs[1], key))
    assert tracking.stored_steps(tracking_uri, runs[1]) == steps


@pytest.mark.slow
def test_an_untested_mlflow_falls_back_to_the_public_api(tracking_uri, monkeypatch):
    client, runs = _store(tracking_uri)
    monkeypatch.setattr(store_sql, "mlflow_version", lambda: (99, 0))
    assert not store_sql.usable() and store_sql.sql_store(client) is None
    assert tracking.stored_steps(tracking_uri, runs[0]) is None
    assert store_sql.stored_steps(tracking.sqlite_path(tracking_uri) or "", runs[0]) is None


def test_a_missing_or_foreign_file_reads_as_none(tmp_path):
    assert store_sql.stored_steps(tmp_path / "absent.db", "0" * 32) is None
    (tmp_path / "text.db").write_text("not a database")
    assert store_sql.stored_steps(tmp_path / "text.db", "0" * 32) is None


# --- the direct writer (store_sql.log_metrics) against MLflow's log_batch ---------------------------------------

TABLES = ("metrics", "latest_metrics")


def _rows(path, run_id: str, table: str) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(path) as db:
        query = f"SELECT key, value, timestamp, step, is_nan FROM {table} WHERE run_uuid = ? ORDER BY 1, 2, 3, 4, 5"
        return db.execute(query, (run_id,)).fetchall()


def _two_runs(uri, n=2):
    client = tracking.open_client(uri)
    exp = tracking.ensure_experiment(client, "writer", uri)
    return client, [client.create_run(exp).info.run_id for _ in range(n)]


def _batches() -> list[list]:
    """Hand-made cases, then seeded random batches over few keys, steps, timestamps and values (many ties)."""
    from mlflow.entities import Metric

    nan, inf = math.nan, math.inf
    M = Metric
    many_keys = [M(f"k{i % 60}/layer_{i % 7}", i / 7, 1000 + i % 5, (i * 37) % 50) for i in range(1000)]
    cases = [M("nan", nan, 5, 1), M("nan", nan, 5, 1), M("nan", 0.0, 5, 1),  # NaN twice, then a 0 that ties it
             M("inf", inf, 1, 1), M("inf", -inf, 1, 2), M("inf", inf, 1, 0),
             M("dup", 1.0, 7, 3), M("dup", 1.0, 7, 3),  # an exact duplicate in one batch
             M("order", 3.0, 9, 30), M("order", 1.0, 9, 10), M("order", 2.0, 9, 20),  # steps out of order
             M("tie", 1.0, 10, 4), M("tie", 2.0, 10, 4), M("tie", 0.5, 11, 4), M("tie", 0.1, 9, 4),  # equal steps
             M("zero", -0.0, 3, 3), M("zero", 0.0, 3, 3)]  # fmt: skip
    no_change = [M("dup", 1.0, 7, 3), M("order", 0.0, 1, 5), M("tie", 1.0, 10, 4),  # stored already, or older
                 M("nan", 0.0, 5, 1), M("nan", nan, 5, 1), M("inf", 5.0, 0, 2)]  # fmt: skip
    ties = [M("tie", 0.5, 11, 4), M("tie", nan, 11, 4), M("order", nan, 9, 30), M("new", 2, 1, 1)]  # and an int
    batches = [many_keys, cases, no_change, ties]
    rng = np.random.default_rng(7)
    values = [nan, inf, -inf, 0.0, -0.0, 1.0, 2.5, -3.0]
    for _ in range(6):
        n = int(rng.integers(1, 400))
        keys, steps, stamps, picks = (rng.integers(0, k, n) for k in (9, 6, 4, len(values)))
        batches.append(
            [M(f"r/{k}", values[v], int(t), int(s)) for k, s, t, v in zip(keys, steps, stamps, picks, strict=True)]
        )
    return batches


@pytest.mark.slow
def test_the_writer_stores_what_mlflow_log_batch_stores_row_for_row(tracking_uri):
    client, (via_mlflow, direct) = _two_runs(tracking_uri)
    path = tracking.sqlite_path(tracking_uri)
    for batch in _batches():
        client.log_batch(via_mlflow, metrics=batch)
        store_sql.log_metrics(path, direct, batch)
        for table in TABLES:  # after every batch, not only at the end
            assert _rows(path, direct, table) == _rows(path, via_mlflow, table), table
    assert len(_rows(path, direct, "metrics")) > 1000 and len(_rows(path, direct, "latest_metrics")) > 60
    # MLflow's public API reads it back the same
    for key in ("nan", "inf", "tie", "order", "zero", "k3/layer_3", "r/0"):
        histories = [sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(r, key))
                     for r in (via_mlflow, direct)]  # fmt: skip
        assert str(histories[0]) == str(histories[1])  # str: NaN equals NaN
    latest = [client.get_run(r).data.metrics for r in (via_mlflow, direct)]
    assert str(sorted(latest[0].items())) == str(sorted(latest[1].items()))
    assert math.isnan(latest[1]["nan"]) and latest[1]["inf"] == -1.7976931348623157e308


@pytest.mark.slow
def test_search_runs_filters_and_orders_by_what_the_writer_stored(tracking_uri):
    from mlflow.entities import Metric

    client, runs = _two_runs(tracking_uri, 3)
    path = tracking.sqlite_path(tracking_uri)
    for i, rid in enumerate(runs):
        metrics = [Metric("summary/compression", float(10 * i + s), 5, s) for s in range(4)]  # latest: 10 i + 3
        store_sql.log_metrics(path, rid, [*metrics, Metric("loss/train", 1.0 / (i + 1), 5, 0)])
    exp = client.get_run(runs[0]).info.experiment_id
    found = client.search_runs(
        [exp], "metrics.`summary/compression` > 5", order_by=["metrics.`summary/compression` DESC"]
    )
    assert [r.info.run_id for r in found] == [runs[2], runs[1]]
    assert [r.data.metrics["summary/compression"] for r in found] == [23.0, 13.0]
    found = client.search_runs([exp], order_by=["metrics.`loss/train` ASC"])
    assert [r.info.run_id for r in found] == runs[::-1]


@pytest.mark.slow
def test_the_writer_refuses_what_mlflow_refuses_with_its_error(tracking_uri):
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    client, (via_mlflow, direct) = _two_runs(tracking_uri)
    path = tracking.sqlite_path(tracking_uri)
    ok, bad_name = [Metric("a", 1.0, 1, 1)], [Metric("a", 1.0, 1, 1), Metric("../up", 1.0, 1, 1)]
    for rid in (via_mlflow, direct):  # an ended run still takes metrics, in MLflow and here
        client.set_terminated(rid, "FINISHED")
    client.log_batch(via_mlflow, metrics=ok)
    store_sql.log_metrics(path, direct, ok)
    assert _rows(path, direct, "metrics") == _rows(path, via_mlflow, "metrics") != []

    def refusal(write, rid, metrics):
        with pytest.raises(MlflowException) as caught:
            write(rid, metrics)
        return caught.value.error_code, str(caught.value).replace(rid, "<run>")

    def mlflow_write(rid, metrics):  # the store's log_batch: the client's would split 1001 metrics in two
        store_sql.sql_store(client).log_batch(rid, metrics, [], [])

    def direct_write(rid, metrics):
        store_sql.log_metrics(path, rid, metrics)

    cases = [(bad_name, False), ([Metric("a", "x", 1, 1)], False), ([Metric("a", 1.0, -1, 1)], False),
             ([Metric("a", 1.0, 1, 1)] * 1001, False), (ok, True)]  # fmt: skip
    for metrics, deleted in cases:
        if deleted:
            for rid in (via_mlflow, direct):
                client.delete_run(rid)
        assert refusal(direct_write, direct, metrics) == refusal(mlflow_write, via_mlflow, metrics)
    assert refusal(direct_write, "0" * 32, ok) == refusal(mlflow_write, "0" * 32, ok)  # no such run
    assert len(_rows(path, direct, "metrics")) == 1  # nothing of a refused batch was stored


def _write_from_a_process(path: str, run_ids: list[str], worker: int) -> None:
    from mlflow.entities import Metric

    for b in range(20):
        own = [Metric(f"k{i % 10}", float(b), 100 + worker, b * 50 + i // 10) for i in range(500)]
        shared = [Metric("shared", float(worker), 100 + worker, worker * 1000 + b * 50 + s) for s in range(50)]
        store_sql.log_metrics(path, run_ids[worker], own)
        store_sql.log_metrics(path, run_ids[2], shared + shared[:5])  # a few twice: stored once


@pytest.mark.slow
def test_two_processes_and_mlflow_write_one_store_at_once_nothing_lost_or_doubled(tracking_uri):
    import multiprocessing

    from mlflow.entities import Metric

    client, runs = _two_runs(tracking_uri, 4)
    path = str(tracking.sqlite_path(tracking_uri))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_from_a_process, args=(path, runs, w)) for w in (0, 1)]
    for p in procs:
        p.start()
    for b in range(20):  # MLflow's own engine writes meanwhile
        client.log_batch(runs[3], metrics=[Metric("m", float(b), 1, b * 10 + s) for s in range(10)])
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    for w in (0, 1):
        steps = tracking.stored_steps(tracking_uri, runs[w])
        assert {k: sorted(v) for k, v in steps.items()} == {f"k{k}": list(range(1000)) for k in range(10)}
        assert client.get_run(runs[w]).data.metrics == {f"k{k}": 19.0 for k in range(10)}
    shared = tracking.stored_steps(tracking_uri, runs[2])["shared"]
    assert sorted(shared) == [w * 1000 + s for w in (0, 1) for s in range(1000)]
    assert client.get_run(runs[2]).data.metrics == {"shared": 1.0}  # worker 1's last step is the greatest
    assert sorted(tracking.stored_steps(tracking_uri, runs[3])["m"]) == list(range(200))


@pytest.mark.slow
def test_a_store_replaced_at_the_same_path_is_reopened(tracking_uri):
    import shutil

    from mlflow.entities import Metric

    _, (rid,) = _two_runs(tracking_uri, 1)
    path = tracking.sqlite_path(tracking_uri)
    store_sql.log_metrics(path, rid, [Metric("a", 1.0, 1, 0)])  # the process keeps this connection
    shutil.copy(path, path.with_name("copy.db"))
    path.with_name("copy.db").replace(path)  # a new file (inode) at the same path, as a restored backup
    store_sql.log_metrics(path, rid, [Metric("a", 1.0, 1, 1)])  # must reach the new file, not the old one
    assert sorted(tracking.stored_steps(tracking_uri, rid)["a"]) == [0, 1]
    path.unlink()
    with pytest.raises(FileNotFoundError):  # never a new empty database
        store_sql.log_metrics(path, rid, [Metric("a", 1.0, 1, 2)])
    assert not path.exists()


@pytest.mark.slow
def test_run_logger_writes_a_sqlite_store_directly_and_falls_back_to_mlflow(tracking_uri, monkeypatch, caplog):
    import sqlite3

    client, (rid,) = _two_runs(tracking_uri, 1)
    log = tracking.RunLogger(client, rid, tracking_uri)
    assert log.direct == tracking.sqlite_path(tracking_uri)
    log.metrics([(s, {"loss/train": float(s), "ixt/binning/layer_1": 0.5}) for s in range(700)])
    assert log.pending == [] and len(tracking.stored_steps(tracking_uri, rid)["loss/train"]) == 700

    def broken(*args):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store_sql, "log_metrics", broken)
    log.metrics([(s, {"loss/test": 1.0}) for s in range(3)])  # MLflow sends it, and what follows
    assert log.direct is None and len(log.pending) == 1 and "database is locked" in caplog.text
    log.settle(timeout_s=5)
    assert log.missing() == {} and sorted(tracking.stored_steps(tracking_uri, rid)["loss/test"]) == [0, 1, 2]
    monkeypatch.setattr(store_sql, "mlflow_version", lambda: (99, 0))  # an untested MLflow: never directly
    assert tracking.RunLogger(client, rid, tracking_uri).direct is None
    assert tracking.RunLogger(client, rid).direct is None  # no URI, no direct path
