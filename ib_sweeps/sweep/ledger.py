"""The MLflow side of a sweep: its parent run, its children, one driver at a time, resume, the summary table.

Layout: the experiment is named after the sweep; each invocation has one
parent run (tag ``ib_sweeps.role = sweep``) holding the sweep file, the
resolved sweep, the profile and overrides (params) and ``summary.csv``; each
trial is a child run (``mlflow.parentRunId``, ``ib_sweeps.role = trial``).

One driver per invocation: an invocation is identified by the hash of the
resolved sweep (``ib_sweeps.invocation``), and a driver holds that
invocation's lock (:mod:`ib_sweeps.sweep.lock`) from before it reads the
store until it has ended the parent. A second driver of the same invocation
is refused (:class:`SweepBusy`, naming the holder). Because the lock is held,
any run of this invocation still RUNNING in the store was left by a driver
that died: resume (and ``--fresh``) marks it KILLED. Resume reopens the latest
parent with the invocation's hash unless it FINISHED; children that FINISHED
are matched by (config hash without the seed, seed) and not re-run.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from dataclasses import dataclass, field

from ib_sweeps import __version__, records, tracking
from ib_sweeps.records import AXES, ERROR, HOST, INVOCATION, PID, RESTATED, ROLE, SEED, SWEEP
from ib_sweeps.records import CONFIG_HASH as HASH
from ib_sweeps.sweep.load import Sweep
from ib_sweeps.sweep.lock import SweepBusy  # noqa: F401 (re-exported: the CLI catches ledger.SweepBusy)

STALE = "left RUNNING by a sweep driver that is gone; marked KILLED on resume"
INTERRUPTED = "the sweep was interrupted while this trial ran"


@dataclass
class Ledger:
    """Handle on one sweep invocation's parent run (``parent_run_id`` is None until :func:`open_parent`)."""

    client: object
    uri: str
    experiment_id: str
    parent_run_id: str | None
    resumed: bool = False
    complete: bool = False  # the invocation had already FINISHED: nothing to run
    finished: set = field(default_factory=set)  # {(config_hash, seed)} of FINISHED children
    stale: int = 0  # runs marked KILLED because their driver was gone
    restated: bool = False  # the reopened parent took the sweep file's current claims, description, profiles
    previous: object = None  # the latest parent run of this invocation, if any (mlflow.entities.Run)


def children(client, experiment_id: str, parent_run_id: str) -> list:
    """Every child run of ``parent_run_id`` (all pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{records.PARENT_RUN_ID}` = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def trial_key(run) -> tuple[str, int] | None:
    tags = run.data.tags
    if HASH in tags and SEED in tags:
        return tags[HASH], int(tags[SEED])
    return None


def _finished(runs) -> set:
    """(config hash, seed) of the runs that FINISHED."""
    return {trial_key(r) for r in runs if r.info.status == "FINISHED"} - {None}


def finished_keys(uri: str, parent_run_id: str, experiment: str) -> frozenset:
    """(config hash, seed) of the children of ``parent_run_id`` that FINISHED (read now, from the store)."""
    client = tracking.open_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return frozenset()
    return frozenset(_finished(children(client, exp.experiment_id, parent_run_id)))


def look_up(sweep: Sweep, uri: str, *, fresh: bool = False) -> Ledger:
    """What the store holds of this invocation, written nowhere (call it holding the invocation's lock).

    ``complete`` when its latest parent FINISHED (and not ``fresh``); ``finished``
    lists the trials already done when it would be resumed.
    """
    client = tracking.open_client(uri)
    exp_id = tracking.ensure_experiment(client, sweep.spec.name, uri)
    latest = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{ROLE}` = '{records.ROLE_SWEEP}' and tags.`{INVOCATION}` = '{sweep.invocation}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    ) or _stored_earlier(client, exp_id, sweep)
    led = Ledger(client, uri, exp_id, None, previous=latest[0] if latest else None)
    if latest and not fresh:
        parent = latest[0]
        kids = children(client, exp_id, parent.info.run_id)
        led.finished = _finished(kids)
        led.complete = parent.info.status == "FINISHED"
        led.parent_run_id = parent.info.run_id if led.complete else None
    return led


def _stored_earlier(client, exp_id: str, sweep: Sweep) -> list:
    """[the latest parent run whose stored resolved sweep is this invocation under another tag], or [].

    Parents written before claims, description and profiles were left out of
    the invocation (until 2026-11-29) carry the hash with them; their stored
    ``resolved_sweep.yaml`` is hashed the current way (:func:`load.invocation_of`).
    Only the latest :data:`EARLIER_SCAN` parents are read.
    """
    import yaml

    from ib_sweeps.sweep.load import invocation_of

    parents = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{ROLE}` = '{records.ROLE_SWEEP}'",
        order_by=["attributes.start_time DESC"],
        max_results=EARLIER_SCAN,
    )
    for parent in parents:
        text = _stored_text(client, parent.info.run_id, "resolved_sweep.yaml")
        resolved = yaml.safe_load(text) if text else None
        if isinstance(resolved, dict) and invocation_of(resolved) == sweep.invocation:
            return [parent]
    return []


EARLIER_SCAN = 100


def open_parent(sweep: Sweep, led: Ledger, *, fresh: bool = False) -> Ledger:
    """Reopen the invocation's unfinished parent (runs left RUNNING marked KILLED), or create a new one.

    With ``fresh``, a previous parent left RUNNING is ended KILLED (with its
    running children) before the new parent is created.
    """
    client, previous = led.client, led.previous
    here = {HOST: socket.gethostname(), PID: str(os.getpid())}
    if previous is not None and previous.info.status == "RUNNING":
        led.stale = _kill_stale(client, led.experiment_id, previous.info.run_id, end_parent=fresh)
    if previous is not None and not fresh and previous.info.status != "FINISHED":
        led.restated = restate(sweep, led)
        client.update_run(previous.info.run_id, status="RUNNING")
        for key, value in here.items():
            client.set_tag(previous.info.run_id, key, value)
        led.parent_run_id, led.resumed = previous.info.run_id, True
        return led
    tags = {ROLE: records.ROLE_SWEEP, SWEEP: sweep.spec.name, INVOCATION: sweep.invocation}
    tags |= {records.VERSION: __version__, records.NOTE: sweep.spec.description}
    run_name = f"{sweep.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    rid = client.create_run(led.experiment_id, run_name=run_name, tags=tags | here).info.run_id
    client.log_param(rid, "profile", sweep.profile or "")
    client.log_param(rid, "overrides", json.dumps(list(sweep.overrides)))
    client.log_param(rid, "sweep_file", sweep.path)
    client.log_text(rid, sweep.source, "sweep.yaml")
    client.log_text(rid, _yaml(sweep.spec.model_dump(mode="json")), "resolved_sweep.yaml")
    led.parent_run_id, led.resumed, led.finished = rid, False, set()
    return led


def restate(sweep: Sweep, led: Ledger) -> bool:
    """Store the sweep's current claims, description and profiles on the invocation's latest parent run.

    They are not part of the invocation (:attr:`Sweep.invocation`): a claim added
    to a sweep that already ran is judged on its stored trials, which are not run
    again. Rewrites ``sweep.yaml`` and ``resolved_sweep.yaml``, the note and the
    invocation tag (a parent found under an earlier hash gets the current one);
    True when anything changed.
    """
    parent = led.previous
    if parent is None:
        return False
    rid, client, resolved = parent.info.run_id, led.client, _yaml(sweep.spec.model_dump(mode="json"))
    if parent.data.tags.get(INVOCATION) != sweep.invocation:
        client.set_tag(rid, INVOCATION, sweep.invocation)
    if _stored_text(client, rid, "resolved_sweep.yaml") == resolved:
        return False
    client.log_text(rid, sweep.source, "sweep.yaml")
    client.log_text(rid, resolved, "resolved_sweep.yaml")
    client.set_tag(rid, records.NOTE, sweep.spec.description)
    client.set_tag(rid, RESTATED, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return True


def _stored_text(client, run_id: str, name: str) -> str | None:
    import tempfile

    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp, open(client.download_artifacts(run_id, name, dst_path=tmp)) as fh:
            return fh.read()
    except (OSError, MlflowException):
        return None


def _kill_stale(client, experiment_id: str, parent_run_id: str, *, end_parent: bool) -> int:
    """Mark the children of a dead driver's parent left RUNNING as KILLED (and the parent too if asked)."""
    stale = _end_running(client, children(client, experiment_id, parent_run_id), STALE)
    if end_parent:
        client.set_tag(parent_run_id, ERROR, STALE.replace("on resume", "when a fresh invocation started"))
        client.set_terminated(parent_run_id, "KILLED")
    return len(stale) + int(end_parent)


def _end_running(client, runs, reason: str) -> list:
    """End the runs among ``runs`` still RUNNING as KILLED, with ``reason`` in their error tag; return them."""
    running = [run for run in runs if run.info.status == "RUNNING"]
    for run in running:
        client.set_tag(run.info.run_id, ERROR, reason)
        client.set_terminated(run.info.run_id, "KILLED")
    return running


def finish(ledger: Ledger, status: str, reason: str = INTERRUPTED) -> dict[str, int]:
    """Mark children left RUNNING as KILLED (``reason``), write ``summary.csv`` and counts, end the parent."""
    kids = children(ledger.client, ledger.experiment_id, ledger.parent_run_id)
    if _end_running(ledger.client, kids, reason):  # read their new status and tags back
        kids = children(ledger.client, ledger.experiment_id, ledger.parent_run_id)
    table = summary_table(kids)
    counts = {s: int((table["status"] == s).sum()) if len(table) else 0 for s in ("FINISHED", "FAILED", "KILLED")}
    if len(table):
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        ledger.client.log_text(ledger.parent_run_id, buf.getvalue(), "summary.csv")
    ledger.client.log_batch(ledger.parent_run_id, metrics=_count_metrics(counts))
    ledger.client.set_terminated(ledger.parent_run_id, status)
    return counts


def summary_table(runs):
    """One row per child run: name, status, axis values, seed, headline metrics (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        row = {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status}
        row.update(json.loads(tags.get(AXES, "{}")))
        row["error"] = tags.get(ERROR, "")
        row.update({k: v for k, v in sorted(metrics.items()) if records.parse_summary(k) or k in records.HISTORY_TEST})
        rows.append(row)
    return pd.DataFrame(rows)


def _count_metrics(counts: dict[str, int]):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(records.trials(k), float(v), now, 0) for k, v in counts.items()]


def _yaml(tree) -> str:
    import yaml

    return yaml.safe_dump(tree, sort_keys=False)
