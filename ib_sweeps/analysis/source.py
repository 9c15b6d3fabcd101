"""Find a sweep invocation in MLflow: its experiment, parent run and child (trial) runs.

A sweep (one MLflow experiment) holds one parent run per invocation (tag
``ib_sweeps.role = sweep``, params ``profile`` and ``overrides``). Given a
sweep name, the invocation read is, unless one is asked for:

1. the latest one run as the sweep file is written (no profile, no overrides)
   with at least one FINISHED trial; else
2. the latest one with no profile and at least one FINISHED trial; else
3. the one with the most FINISHED trials (latest on a tie).

So a ``quick`` run never silently stands in for a full one. Which invocation
was read, and why, is said on stderr once per process (:func:`locate`) and in
the report; :func:`invocations` lists them all.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from dataclasses import dataclass, field

from ib_sweeps import records, tracking
from ib_sweeps.sweep.ledger import ROLE, children

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING")
_announced: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Invocation:
    """One parent run of a sweep and the statuses of its trials."""

    run: object  # mlflow.entities.Run (tag ib_sweeps.role = sweep)
    counts: dict  # child-run status -> number of runs

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def profile(self) -> str:
        """The profile it ran with; ``""`` for none (or a store that did not record it)."""
        return self.run.data.params.get("profile", "")

    @property
    def overrides(self) -> list[str]:
        try:
            return list(json.loads(self.run.data.params.get("overrides", "[]")))
        except ValueError:
            return [self.run.data.params["overrides"]]

    @property
    def finished(self) -> int:
        return self.counts.get("FINISHED", 0)

    @property
    def start_time(self) -> int:
        return self.run.info.start_time or 0

    def describe(self) -> str:
        """``3f2a9c1b... (name), profile quick, overrides [..], started .., RUNNING; trials: 2 FINISHED, ..``."""
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.start_time / 1000))
        counts = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATUSES if s != "RUNNING" or self.counts.get(s))
        overrides = f"overrides [{', '.join(self.overrides)}]" if self.overrides else "no overrides"
        return (
            f"{self.run_id} ({self.run.info.run_name}), {f'profile {self.profile}' if self.profile else 'no profile'}, "
            f"{overrides}, started {started}, {self.run.info.status}; trials: {counts}"
        )


@dataclass(frozen=True)
class Source:
    """One sweep invocation as stored in MLflow."""

    client: object  # mlflow.MlflowClient
    uri: str
    experiment_id: str
    experiment_name: str
    parent: object  # mlflow.entities.Run (tag ib_sweeps.role = sweep)
    children: tuple  # its child runs (every attempt of every trial), oldest first
    chosen_because: str = "asked for by its parent run id"
    others: int = 0  # the sweep's other invocations
    invocation: Invocation | None = field(default=None, repr=False)

    @property
    def parent_run_id(self) -> str:
        return self.parent.info.run_id

    def describe(self) -> str:
        """Which invocation this is and why it was chosen, in two lines."""
        inv = self.invocation or Invocation(self.parent, _counts(self.children))
        more, name = "", shlex.quote(self.experiment_name)
        if self.others:
            more = f"; {self.others} other invocation(s): ib-sweeps report {name} --list"
        return f"invocation {inv.describe()}\n  chosen: {self.chosen_because}{more}"


def _counts(runs) -> dict:
    out: dict[str, int] = {}
    for run in runs:
        out[run.info.status] = out.get(run.info.status, 0) + 1
    return out


def _experiment(client, sweep: str, uri: str):
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(sweep)
    if exp is None and sweep.isdigit():
        try:
            exp = client.get_experiment(sweep)
        except MlflowException:
            exp = None
    if exp is None:
        names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise LookupError(f"no sweep {sweep!r} in {uri}; experiments there: {', '.join(names) or '(none)'}")
    return exp


def _all_pages(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def invocations(sweep: str, tracking_uri: str | None = None) -> list[Invocation]:
    """Every invocation of ``sweep`` (a sweep/experiment name or experiment id), newest first."""
    from mlflow import MlflowClient

    uri = tracking.resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    return _invocations(client, _experiment(client, sweep, uri).experiment_id)


def _invocations(client, experiment_id: str) -> list[Invocation]:
    parents = _all_pages(client, experiment_id, f"tags.`{ROLE}` = 'sweep'")
    counts: dict[str, dict] = {run.info.run_id: {} for run in parents}
    for run in _all_pages(client, experiment_id, f"tags.`{ROLE}` = 'trial'"):
        per = counts.get(run.data.tags.get(records.PARENT_RUN_ID))
        if per is not None:
            per[run.info.status] = per.get(run.info.status, 0) + 1
    out = [Invocation(run, counts[run.info.run_id]) for run in parents]
    return sorted(out, key=lambda inv: inv.start_time, reverse=True)


def choose(invs: list[Invocation], invocation: str | None = None, profile: str | None = None):
    """``(Invocation, why)`` from ``invs`` (newest first): by run id prefix, by profile, or the default rule.

    The default rule is in the module docstring. Raises ``LookupError`` when
    nothing matches or a prefix is ambiguous.
    """
    if not invs:
        raise LookupError(f"no sweep parent run (tag {ROLE} = sweep)")
    if invocation:
        hits = [inv for inv in invs if inv.run_id.startswith(invocation.lower())]
        if len(hits) != 1:
            what = "no invocation" if not hits else f"{len(hits)} invocations"
            raise LookupError(f"{what} with a run id starting {invocation!r}; there are:\n{_listing(invs)}")
        return hits[0], f"asked for by its run id ({invocation})"
    if profile:
        hits = [inv for inv in invs if inv.profile == profile]
        if not hits:
            raise LookupError(f"no invocation with profile {profile!r}; there are:\n{_listing(invs)}")
        return hits[0], f"the latest invocation with profile {profile!r}"
    ran = [inv for inv in invs if inv.finished]
    as_written = [inv for inv in ran if not inv.profile and not inv.overrides]
    if as_written:
        return as_written[0], "the latest invocation without a profile or overrides that has FINISHED trials"
    no_profile = [inv for inv in ran if not inv.profile]
    if no_profile:
        return no_profile[0], "the latest invocation without a profile that has FINISHED trials (it has overrides)"
    best = max(invs, key=lambda inv: (inv.finished, inv.start_time))
    why = "every invocation ran with a profile; this one has the most FINISHED trials"
    return best, why if ran else "no invocation has a FINISHED trial; this is the latest"


def _listing(invs: list[Invocation]) -> str:
    return "\n".join(f"  {inv.describe()}" for inv in invs)


def locate(
    sweep: str | Source,
    tracking_uri: str | None = None,
    *,
    invocation: str | None = None,
    profile: str | None = None,
    announce: bool = True,
) -> Source:
    """The invocation named by ``sweep``: a sweep (experiment) name, an experiment id or a parent run id.

    A name or experiment id selects one of its invocations: ``invocation`` (a
    parent run id or prefix), else the latest with ``profile``, else the default
    rule of the module docstring. ``announce``: say on stderr (once per
    process and invocation) which one was chosen and why. Raises
    ``LookupError`` naming what exists when nothing matches.
    """
    if isinstance(sweep, Source):
        return sweep
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking.resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    parent, chosen, others = None, None, 0
    why = "asked for by its parent run id"
    if _RUN_ID.match(sweep):
        try:
            parent = client.get_run(sweep)
        except MlflowException:
            parent = None
        if parent is not None and parent.data.tags.get(ROLE) != "sweep":
            raise LookupError(f"run {sweep} is not a sweep's parent run (tag {ROLE} = sweep); pass its parent")
    if parent is None:
        exp = _experiment(client, sweep, uri)
        invs = _invocations(client, exp.experiment_id)
        if not invs:
            raise LookupError(f"experiment {exp.name!r} in {uri} has no sweep parent run (tag {ROLE} = sweep)")
        chosen, why = choose(invs, invocation, profile)
        parent, others = chosen.run, len(invs) - 1
    exp_id = parent.info.experiment_id
    kids = sorted(children(client, exp_id, parent.info.run_id), key=lambda r: r.info.start_time or 0)
    name = client.get_experiment(exp_id).name
    src = Source(client, uri, exp_id, name, parent, tuple(kids), why, others, chosen)
    if announce and chosen is not None and (uri, src.parent_run_id) not in _announced:
        _announced.add((uri, src.parent_run_id))
        print(f"ib-sweeps: sweep {name!r}: reading {src.describe()}", file=sys.stderr, flush=True)
    return src
