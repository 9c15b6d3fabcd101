"""Find a sweep invocation in MLflow: its experiment, parent run and child (trial) runs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ib_sweeps import tracking
from ib_sweeps.sweep.ledger import ROLE, children

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Source:
    """One sweep invocation as stored in MLflow."""

    client: object  # mlflow.MlflowClient
    uri: str
    experiment_id: str
    experiment_name: str
    parent: object  # mlflow.entities.Run (tag ib_sweeps.role = sweep)
    children: tuple  # its child runs (every attempt of every trial), oldest first

    @property
    def parent_run_id(self) -> str:
        return self.parent.info.run_id


def locate(sweep: str | Source, tracking_uri: str | None = None) -> Source:
    """The invocation named by ``sweep``: a sweep (experiment) name, an experiment id or a parent run id.

    A name or experiment id selects its latest invocation (the parent run that
    started last). Raises ``LookupError`` naming what exists when nothing matches.
    """
    if isinstance(sweep, Source):
        return sweep
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking.resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    parent = None
    if _RUN_ID.match(sweep):
        try:
            parent = client.get_run(sweep)
        except MlflowException:
            parent = None
        if parent is not None and parent.data.tags.get(ROLE) != "sweep":
            raise LookupError(f"run {sweep} is not a sweep's parent run (tag {ROLE} = sweep); pass its parent")
    if parent is None:
        exp = client.get_experiment_by_name(sweep)
        if exp is None and sweep.isdigit():
            try:
                exp = client.get_experiment(sweep)
            except MlflowException:
                exp = None
        if exp is None:
            names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
            raise LookupError(f"no sweep {sweep!r} in {uri}; experiments there: {', '.join(names) or '(none)'}")
        latest = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{ROLE}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not latest:
            raise LookupError(f"experiment {exp.name!r} in {uri} has no sweep parent run (tag {ROLE} = sweep)")
        parent = latest[0]
    exp_id = parent.info.experiment_id
    kids = sorted(children(client, exp_id, parent.info.run_id), key=lambda r: r.info.start_time or 0)
    return Source(client, uri, exp_id, client.get_experiment(exp_id).name, parent, tuple(kids))
