"""The sweep ledger on a real SQLite store, without Ray: look-up, resume after a dead driver, --fresh, finish."""

import textwrap

from mlflow import MlflowClient

from ib_sweeps import sweep as sweep_pkg
from ib_sweeps.sweep import ledger

SWEEP = textwrap.dedent(
    """\
    name: led
    description: a ledger test
    base:
      model: {hidden: [4, 3]}
      train: {epochs: 5}
      schedule: {kind: every}
    grid:
      model.activation: [tanh, relu]
    seeds: 1
    profiles:
      quick: {}
    """
)


def _sweep(tmp_path):
    path = tmp_path / "led.yaml"
    path.write_text(SWEEP)
    return sweep_pkg.load(str(path))


def _child(client, led, trial, status):
    tags = {"mlflow.parentRunId": led.parent_run_id, ledger.HASH: trial.key[0], ledger.SEED: str(trial.key[1])}
    run = client.create_run(led.experiment_id, run_name=trial.name, tags=tags).info.run_id
    if status != "RUNNING":
        client.set_terminated(run, status)
    return run


def test_resume_after_a_dead_driver_then_finish_then_fresh(tracking_uri, tmp_path):
    sw = _sweep(tmp_path)
    first, second = sw.trials()
    led = ledger.look_up(sw, tracking_uri)
    assert (led.parent_run_id, led.complete, led.finished) == (None, False, set())
    ledger.open_parent(sw, led)
    client = MlflowClient(tracking_uri)
    done = _child(client, led, first, "FINISHED")
    left = _child(client, led, second, "RUNNING")  # its driver died here: nothing ended it
    parent = led.parent_run_id

    again = ledger.look_up(sw, tracking_uri)
    assert not again.complete and again.finished == {first.key}
    ledger.open_parent(sw, again)
    assert again.resumed and again.parent_run_id == parent and again.stale == 1
    assert client.get_run(left).info.status == "KILLED"
    assert client.get_run(left).data.tags[ledger.ERROR] == ledger.STALE
    assert client.get_run(done).info.status == "FINISHED"

    counts = ledger.finish(again, "FINISHED")
    assert counts == {"FINISHED": 1, "FAILED": 0, "KILLED": 1}
    assert ledger.look_up(sw, tracking_uri).complete

    fresh = ledger.look_up(sw, tracking_uri, fresh=True)
    assert not fresh.complete and fresh.previous.info.run_id == parent
    ledger.open_parent(sw, fresh, fresh=True)
    assert fresh.parent_run_id != parent and not fresh.resumed and fresh.finished == set()


def test_fresh_after_a_dead_driver_ends_its_parent_and_children(tracking_uri, tmp_path):
    sw = _sweep(tmp_path)
    led = ledger.look_up(sw, tracking_uri)
    ledger.open_parent(sw, led)
    client = MlflowClient(tracking_uri)
    orphan = _child(client, led, sw.trials()[0], "RUNNING")
    old = led.parent_run_id
    fresh = ledger.look_up(sw, tracking_uri, fresh=True)
    ledger.open_parent(sw, fresh, fresh=True)
    assert fresh.stale == 2  # the child and the parent
    assert client.get_run(old).info.status == "KILLED" and client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(fresh.parent_run_id).info.status == "RUNNING"
