"""The run ``mlflow run`` creates around a sweep: linked to the sweep's parent, then removed from view.

``mlflow run`` makes a run of its own (in ``Default`` unless told otherwise)
before it starts ``ib-sweeps sweep``, and ends it after the sweep exits. The
sweep's results live in the sweep's experiment under its parent run, so that
wrapper run holds nothing: it is tagged with the parent's id (the parent
records it as ``ib_sweeps.mlflow_project_run``) and, once ``mlflow run`` has
ended it, soft-deleted by a small detached process (:func:`main`), since
MLflow ends the run only after this process is gone and refuses to end a
deleted one. ``mlflow gc`` purges it; the UI can restore it. A wrapper run in
the sweep's own experiment (``mlflow run --experiment-name <sweep>``) is kept.
"""

from __future__ import annotations

import subprocess
import sys
import time

from ib_sweeps import records

PARENT_TAG, LINK_TAG = records.MLFLOW_PROJECT_RUN, records.SWEEP_PARENT_RUN
WAIT_S = 300.0  # how long the detached process waits for `mlflow run` to end its run


def link(client, uri: str, project_run: str | None, parent_run_id: str | None, experiment_id: str) -> None:
    """Tag ``mlflow run``'s run and the sweep's parent with each other; schedule the wrapper's removal."""
    if not project_run:
        return
    client.set_tag(project_run, LINK_TAG, parent_run_id or "")
    client.set_tag(project_run, records.NOTE, f"ib-sweeps sweep; results under parent run {parent_run_id}")
    if parent_run_id:
        client.set_tag(parent_run_id, PARENT_TAG, project_run)
    if client.get_run(project_run).info.experiment_id == experiment_id:
        return  # in the sweep's own experiment: kept beside its parent
    cmd = [sys.executable, "-m", "ib_sweeps.sweep.project_run", uri, project_run]
    subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)  # fmt: skip


def main(argv: list[str]) -> int:
    """``python -m ib_sweeps.sweep.project_run URI RUN_ID``: soft-delete the run once it is no longer RUNNING."""
    from mlflow import MlflowClient

    uri, run_id = argv
    client = MlflowClient(uri)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        run = client.get_run(run_id)
        if run.info.lifecycle_stage == "deleted":
            return 0
        if run.info.status != "RUNNING":
            client.delete_run(run_id)
            return 0
        time.sleep(0.5)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
