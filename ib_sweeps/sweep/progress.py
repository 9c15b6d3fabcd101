"""One concise, updating progress line for a sweep, instead of Ray Tune's tables.

On a terminal the line is rewritten in place; anywhere else (``mlflow run``, a
log file, CI) a line is printed when the counts change and at least every
:data:`HEARTBEAT_S` seconds, so a working sweep never looks hung.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HEARTBEAT_S = 60.0  # without a terminal: repeat an unchanged line this often


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def trial_label(trial) -> str:
    """The MLflow run name of a Ray trial (its axis values)."""
    from ib_sweeps.sweep.load import run_name

    return run_name(dict(trial.config))


def error_line(trial) -> str:
    """Last line of a failed Ray trial's error: the exception the trial raised."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:  # an unreadable error file must not stop the sweep
        text = ""
    if any(sign in text for sign in WORKER_DIED_SIGNS):  # Ray's paragraph about a dead actor says little more
        return "the trial's worker process died (killed, or out of memory)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(" ")]
    lines = [ln for ln in lines if not ln.startswith("Failure # ")]  # Ray's header of every error file
    causes = [ln for ln in lines if ln.startswith("ib_sweeps.") or "Error:" in ln]
    return (causes or lines or ["unknown error"])[0][:300]


# How Ray's error file reads when the process running a trial died under it (SIGKILL, the OOM killer).
WORKER_DIED_SIGNS = ("ActorDiedError", "WorkerCrashedError", "ActorUnavailableError", "died unexpectedly")


def make_callback(name: str, total: int, stream=None, enabled: bool = True, skipped: int = 0, labels=None):
    """A Ray Tune callback printing ``name: done/total, running, failed, skipped | elapsed, ETA``.

    On a terminal the line is rewritten in place (at most twice a second);
    otherwise a line is printed when the counts change and every
    :data:`HEARTBEAT_S` seconds. A first line is printed when Ray starts the
    experiment. Every write is flushed.

    Trial arrays (``labels``: a label per Ray trial's ``array`` index): each
    Ray trial reports how many trials it holds and how many failed, and the
    counts are of trials, not of Ray trials; ``skipped`` trials were done
    before the sweep started.
    """
    from ray.tune import Callback

    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    newline = "\n" if tty else ""  # end the in-place line before a message

    class Progress(Callback):
        def __init__(self):
            self.start = time.monotonic()
            self.running, self.done, self.failed, self.skipped = set(), skipped, 0, skipped
            self.reported: dict = {}  # arrays: Ray trial id -> its last report
            self.last_line, self.last_time = "", 0.0

        def line(self) -> str:
            elapsed = time.monotonic() - self.start
            ran = self.done - self.skipped
            left = total - self.done - self.failed
            eta = f"ETA {_clock(elapsed / ran * left)}" if ran and left > 0 else "ETA -"
            return (
                f"{name}: {self.done}/{total} done ({self.skipped} skipped), {len(self.running)} running, "
                f"{self.failed} failed | {_clock(elapsed)} elapsed, {eta}"
            )

        def show(self, force=False):
            if not enabled:
                return
            text, now = self.line(), time.monotonic()
            counts = text.split("|")[0]
            if tty and (force or now - self.last_time >= 0.5):
                stream.write("\r" + text.ljust(len(self.last_line)))
                stream.flush()
            elif not tty and (counts != self.last_line.split("|")[0] or now - self.last_time >= HEARTBEAT_S):
                stream.write(text + "\n")
                stream.flush()
            else:
                return
            self.last_line, self.last_time = text, now

        def write(self, text: str) -> None:
            if enabled:
                stream.write(text)
                stream.flush()

        def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
            self.start = time.monotonic()
            self.show(force=True)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.running.add(trial.trial_id)
            self.show(force=True)

        def label(self, trial) -> str:
            return labels[trial.config["array"]] if labels else f"trial {trial_label(trial)}"

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if labels:
                self.reported[trial.trial_id] = result
            elif result.get("skipped"):
                self.skipped += 1

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.running.discard(trial.trial_id)
            self.done += self.reported.get(trial.trial_id, {}).get("trials", 1)
            self.show(force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.running.discard(trial.trial_id)
            got = self.reported.pop(trial.trial_id, {})
            failed = got.get("failed", got.get("trials", 1))
            self.failed += failed
            self.done += got.get("trials", 1) - failed
            self.write(f"{newline}{name}: {self.label(trial)} failed: {error_line(trial)}\n")
            self.show(force=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.reported.pop(trial.trial_id, None)
            self.write(f"{newline}{name}: {self.label(trial)} failed, retrying: {error_line(trial)}\n")

        def on_step_end(self, iteration, trials, **info):
            self.show()

        def on_experiment_end(self, trials, **info):
            if tty:
                self.write("\n")

    return Progress()


def where_to_look(name: str, parent_run_id: str, experiment_id: str, tracking_uri: str) -> str:
    """Lines saying how to open a sweep invocation: the MLflow UI command, its pages, and its report command.

    The pages carry ``workflowType=machine_learning``: MLflow 3.17's UI picks
    its "GenAI" or "Model training" view from that (or the browser's last
    choice, GenAI at first), not from the experiment's ``mlflow.experimentKind``
    tag, so without it a first visit lands on an empty GenAI overview.
    """
    import shlex

    from ib_sweeps import tracking

    if tracking_uri.startswith(("http://", "https://")):
        start, base = "", tracking_uri.rstrip("/")
    else:
        start, base = f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}, then open ", "http://127.0.0.1:5000"
    runs = f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"
    parent = f"{base}/#/experiments/{experiment_id}/runs/{parent_run_id}?workflowType=machine_learning"
    plain = tracking.resolve_tracking_uri("sqlite:///mlflow.db")  # what a fresh shell here reads without options
    uri = "" if tracking_uri == plain else f" --tracking-uri {shlex.quote(tracking_uri)}"
    return (
        f"  look at it: {start}{runs}\n"
        f"              (experiment {name!r}: its trials, to group by an axis; Chart view for I(X;T) and compression)\n"
        f"  parent run: {parent}\n"
        f"  report:     ib-sweeps report {shlex.quote(name)} --invocation {parent_run_id[:8]}{uri}"
    )
