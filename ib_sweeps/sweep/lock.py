"""One driver per sweep invocation: a lock held from reading the store until the parent run has ended.

* SQLite stores: an exclusive ``flock`` on ``<database>.locks/<sweep>-<invocation>.lock``.
  The kernel releases it when the holder dies, however it dies, so a killed
  driver never blocks a resume and a reused PID cannot fool it. The file names
  the holder (host, PID, process start time) for the refusal message.
* Tracking servers (``http(s)://``): a lease held as an MLflow experiment
  named ``.ib-sweeps-lock/<sweep>/<invocation>``. Names are unique in MLflow,
  so of drivers starting together exactly one creates it. Its tags name the
  holder (host, PID, process start time) and a heartbeat renewed every 30 s.
  A lease whose holder is gone (on this host: no process with that PID and
  start time; elsewhere: no heartbeat for 5 minutes) is taken over. Released
  (and taken over) by renaming it to a unique name and deleting it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ib_sweeps import records, tracking

HEARTBEAT_S, EXPIRY_S = 30.0, 300.0
_PREFIX = ".ib-sweeps-lock"


class SweepBusy(RuntimeError):
    """The same sweep invocation is being run by another live driver."""


def process_start(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot ('' when unknown): with the PID, names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def holder() -> dict[str, str]:
    """This process as a lock holder: host, PID and process start time."""
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "start": process_start(os.getpid())}


def _alive(who: dict[str, str]) -> bool | None:
    """Whether the holder ``who`` still runs; None when it is on another host (cannot tell)."""
    if who.get("host") != socket.gethostname():
        return None
    pid = who.get("pid", "")
    return pid.isdigit() and process_start(int(pid)) == who.get("start") != ""


def _describe(who: dict[str, str]) -> str:
    return f"process {who.get('pid', '?')} on host {who.get('host', '?')}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@contextlib.contextmanager
def driver_lock(sweep: str, invocation: str, uri: str) -> Iterator[None]:
    """Hold the lock of invocation ``invocation`` of ``sweep``; :class:`SweepBusy` if another driver has it."""
    path = tracking.sqlite_path(uri)
    if path is not None:
        with _file_lock(path.with_name(path.name + ".locks") / f"{_safe(sweep)}-{invocation}.lock", sweep):
            yield
    elif uri.startswith(("http://", "https://")):
        with _server_lease(uri, f"{_PREFIX}/{sweep}/{invocation}", sweep):
            yield
    else:  # a store ib-sweeps cannot lock (e.g. databricks): one driver is the user's responsibility
        yield


@contextlib.contextmanager
def _file_lock(path: Path, sweep: str) -> Iterator[None]:
    import fcntl
    import json

    path.parent.mkdir(exist_ok=True)  # beside the store, whose directory exists (tracking.check_store)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                who = json.loads(handle.read() or "{}")
            except ValueError:
                who = {}
            raise SweepBusy(
                f"sweep {sweep!r} (same profile and overrides) is already running in {_describe(who)}; "
                f"wait for it to end, or stop it (a stopped sweep resumes with the same command)"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(holder()))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _server_lease(uri: str, name: str, sweep: str) -> Iterator[None]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    me = holder()
    tags = {records.lock_tag(k): v for k, v in me.items()}
    for attempt in range(3):
        try:
            exp_id = client.create_experiment(name, tags={**tags, records.lock_tag("heartbeat"): str(time.time())})
            break
        except MlflowException:
            current = client.get_experiment_by_name(name)
            if current is None:  # released (or taken over) meanwhile: try again
                continue
            who = {k.removeprefix(records.lock_tag("")): v for k, v in current.tags.items()}
            alive = _alive(who)
            if alive is None:
                alive = time.time() - float(who.get("heartbeat", "0")) < EXPIRY_S
            if alive or attempt == 2:
                raise SweepBusy(
                    f"sweep {sweep!r} (same profile and overrides) is already running in {_describe(who)} "
                    f"(lease {name!r} on {uri}); wait for it to end, or stop it"
                ) from None
            _drop(client, current.experiment_id)
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat only ages the lease
                client.set_experiment_tag(exp_id, records.lock_tag("heartbeat"), str(time.time()))

    thread = threading.Thread(target=beat, name="ib-sweeps-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        _drop(client, exp_id)


def _drop(client, experiment_id: str) -> None:
    """Free a lease's name: rename the experiment to a unique one, then delete it."""
    with contextlib.suppress(Exception):
        client.rename_experiment(experiment_id, f"{_PREFIX}-released/{uuid.uuid4().hex}")
        client.delete_experiment(experiment_id)
