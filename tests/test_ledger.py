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


CLAIM = "claims:\n  - {kind: compresses, where: {model.activation: tanh}}\n"


def _stored(client, run_id, name):
    return ledger._stored_text(client, run_id, name)


def test_new_claims_and_description_keep_the_invocation_and_are_stored_on_its_parent(tracking_uri, tmp_path):
    sw = _sweep(tmp_path)
    led = ledger.look_up(sw, tracking_uri)
    ledger.open_parent(sw, led)
    client = MlflowClient(tracking_uri)
    for trial in sw.trials():
        _child(client, led, trial, "FINISHED")
    ledger.finish(led, "FINISHED")
    parent = led.parent_run_id

    path = tmp_path / "led.yaml"
    path.write_text(SWEEP.replace("a ledger test", "a ledger test, described again") + CLAIM)
    edited = sweep_pkg.load(str(path))
    assert edited.invocation == sw.invocation and edited.spec.claims  # claims and description run nothing
    again = ledger.look_up(edited, tracking_uri)
    assert again.complete and again.parent_run_id == parent and again.finished == {t.key for t in sw.trials()}
    assert ledger.restate(edited, again)
    assert "compresses" in _stored(client, parent, "resolved_sweep.yaml")
    assert "described again" in _stored(client, parent, "sweep.yaml")
    tags = client.get_run(parent).data.tags
    assert tags[ledger.records.NOTE] == "a ledger test, described again" and ledger.RESTATED in tags
    assert not ledger.restate(edited, ledger.look_up(edited, tracking_uri))  # nothing new to store

    path.write_text(SWEEP.replace("[tanh, relu]", "[tanh]") + CLAIM)  # a different grid is a new invocation
    assert sweep_pkg.load(str(path)).invocation != sw.invocation
    assert not ledger.look_up(sweep_pkg.load(str(path)), tracking_uri).complete


def test_a_parent_stored_under_the_earlier_hash_is_found_by_its_resolved_sweep(tracking_uri, tmp_path):
    path = tmp_path / "led.yaml"
    path.write_text(SWEEP)
    sw = sweep_pkg.load(str(path))
    client = MlflowClient(tracking_uri)
    other = tmp_path / "other.yaml"  # another invocation's parent in the same experiment is not taken
    other.write_text(SWEEP.replace("seeds: 1", "seeds: 2"))
    ledger.open_parent(sweep_pkg.load(str(other)), ledger.look_up(sweep_pkg.load(str(other)), tracking_uri))
    led = ledger.look_up(sw, tracking_uri)
    ledger.open_parent(sw, led)
    client.set_tag(led.parent_run_id, ledger.INVOCATION, "ee7f9c7312eb")  # as 0.1.0 hashed it, with its claims
    first = _child(client, led, sw.trials()[0], "FINISHED")

    path.write_text(SWEEP + CLAIM)  # and since then a claim was added
    edited = sweep_pkg.load(str(path))
    again = ledger.look_up(edited, tracking_uri)
    assert again.previous.info.run_id == led.parent_run_id and again.finished == {sw.trials()[0].key}
    ledger.open_parent(edited, again)
    assert again.resumed and again.parent_run_id == led.parent_run_id and again.restated
    assert client.get_run(led.parent_run_id).data.tags[ledger.INVOCATION] == sw.invocation
    assert "compresses" in _stored(client, led.parent_run_id, "resolved_sweep.yaml")
    assert client.get_run(first).info.status == "FINISHED"
