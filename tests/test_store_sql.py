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
