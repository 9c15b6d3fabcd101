"""The MLflow side of a sweep: its parent run, its children, resume and the summary table.

Layout: the experiment is named after the sweep; each invocation has one
parent run (tag ``ib_sweeps.role = sweep``) holding the sweep file, the
resolved sweep, the profile and overrides (params) and ``summary.csv``; each
trial is a child run (``mlflow.parentRunId``, ``ib_sweeps.role = trial``).

Resume: an invocation is identified by the hash of the resolved sweep
(``ib_sweeps.invocation``). Running the same command again reopens the latest
parent with that hash unless it FINISHED; children that FINISHED are matched by
(config hash without the seed, seed) and not re-run; children left RUNNING by
a process that is gone are marked KILLED first.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from dataclasses import dataclass, field

from ib_sweeps import __version__, tracking
from ib_sweeps.sweep.load import Sweep

ROLE, SWEEP, INVOCATION = "ib_sweeps.role", "ib_sweeps.sweep", "ib_sweeps.invocation"
HOST, PID, AXES = "ib_sweeps.host", "ib_sweeps.pid", "ib_sweeps.axes"
HASH, SEED, ERROR = "ib_sweeps.config_hash", "ib_sweeps.seed", "ib_sweeps.error"


class SweepBusy(RuntimeError):
    """The same sweep invocation is running in a live process."""


@dataclass
class Ledger:
    """Handle on one sweep invocation's parent run."""

    client: object
    uri: str
    experiment_id: str
    parent_run_id: str
    resumed: bool = False
    complete: bool = False  # the invocation had already FINISHED: nothing to run
    finished: set = field(default_factory=set)  # {(config_hash, seed)} of FINISHED children
    stale: int = 0  # children marked KILLED because their process was gone


def children(client, experiment_id: str, parent_run_id: str) -> list:
    """Every child run of ``parent_run_id`` (all pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
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


def _alive(run) -> bool:
    tags = run.data.tags
    if tags.get(HOST) != socket.gethostname() or not tags.get(PID, "").isdigit():
        return False  # another machine: cannot tell, treat as gone (documented)
    pid = int(tags[PID])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_parent(sweep: Sweep, uri: str, *, fresh: bool = False) -> Ledger:
    """Create the invocation's parent run, or reopen an unfinished one with the same resolved sweep."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp_id = tracking.ensure_experiment(client, sweep.spec.name, uri)
    latest = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{ROLE}` = 'sweep' and tags.`{INVOCATION}` = '{sweep.invocation}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    here = {HOST: socket.gethostname(), PID: str(os.getpid())}
    if latest and not fresh:
        parent = latest[0]
        if parent.info.status == "RUNNING" and _alive(parent):
            raise SweepBusy(
                f"sweep {sweep.spec.name!r} (same profile and overrides) is already running in process "
                f"{parent.data.tags[PID]}; parent run {parent.info.run_id}"
            )
        kids = children(client, exp_id, parent.info.run_id)
        finished = {trial_key(r) for r in kids if r.info.status == "FINISHED"} - {None}
        if parent.info.status == "FINISHED":
            return Ledger(client, uri, exp_id, parent.info.run_id, True, True, finished)
        stale = [r for r in kids if r.info.status == "RUNNING"]
        for run in stale:
            client.set_tag(run.info.run_id, ERROR, "left RUNNING by an interrupted sweep; marked KILLED on resume")
            client.set_terminated(run.info.run_id, "KILLED")
        client.update_run(parent.info.run_id, status="RUNNING")
        for key, value in here.items():
            client.set_tag(parent.info.run_id, key, value)
        return Ledger(client, uri, exp_id, parent.info.run_id, True, False, finished, len(stale))
    tags = {ROLE: "sweep", SWEEP: sweep.spec.name, INVOCATION: sweep.invocation, "ib_sweeps.version": __version__}
    tags["mlflow.note.content"] = sweep.spec.description
    run = client.create_run(exp_id, run_name=f"{sweep.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags | here)
    rid = run.info.run_id
    client.log_param(rid, "profile", sweep.profile or "")
    client.log_param(rid, "overrides", json.dumps(list(sweep.overrides)))
    client.log_param(rid, "sweep_file", sweep.path)
    client.log_text(rid, sweep.source, "sweep.yaml")
    client.log_text(rid, _yaml(sweep.spec.model_dump(mode="json")), "resolved_sweep.yaml")
    return Ledger(client, uri, exp_id, rid)


def finish(ledger: Ledger, status: str) -> dict[str, int]:
    """Mark children left RUNNING as KILLED, write ``summary.csv`` and counts, end the parent with ``status``."""
    kids = children(ledger.client, ledger.experiment_id, ledger.parent_run_id)
    running = [run for run in kids if run.info.status == "RUNNING"]
    for run in running:
        ledger.client.set_tag(run.info.run_id, ERROR, "sweep interrupted while this trial ran")
        ledger.client.set_terminated(run.info.run_id, "KILLED")
    if running:  # read their new status and tags back
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
        row.update({k: v for k, v in sorted(metrics.items()) if k.startswith("summary/") or k.endswith("/test")})
        rows.append(row)
    return pd.DataFrame(rows)


def _count_metrics(counts: dict[str, int]):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(f"trials/{k.lower()}", float(v), now, 0) for k, v in counts.items()]


def _yaml(tree) -> str:
    import yaml

    return yaml.safe_dump(tree, sort_keys=False)
