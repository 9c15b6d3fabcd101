"""Which trials of a sweep train together as one trial array (``resources.array_size``).

A grid sweep's trials are grouped by :func:`ib_sweeps.trial_array.array_key`:
trials equal but for the seed and the per-replica fields (activation,
initialisation, learning rate, momentum) can share one compiled program. Each
group is cut into arrays of at most ``array_size`` trials, in the sweep's
trial order; trials the array core cannot train
(:func:`ib_sweeps.trial_array.unsupported`) stay alone. The sweep's trials,
names and config hashes are the same whatever the grouping.

``array_size: auto`` splits each group evenly over the trial slots the
machine offers (CPUs, or GPUs when the sweep asks for them), so every slot
gets one array, capped at :data:`MAX_AUTO_CPU` replicas per array on CPUs
(more gave no further gain per CPU here) and :data:`MAX_AUTO_GPU` on a GPU,
and by memory: all arrays running at once must fit in half the physical memory.
Where groups do not divide evenly (5 groups of 20 on 2 slots), a size down to
half that is taken if it finishes sooner, an array of s trials counted as
1 + (s - 1) / :data:`REPLICA_GAIN` trials alone (arrays of 10: 5 rounds of 5.5,
instead of 3 rounds of 10.5); a size of 1 only when that is sooner still.
On CPUs ``auto`` keeps CNN trials alone: an array of CNNs trains no faster
per net than the CNN core alone there (:data:`CNN_REPLICA_GAIN`, measured);
an explicit ``array_size`` still arrays them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ib_sweeps import config
from ib_sweeps.sweep.load import Sweep, Trial

AUTO = "auto"
MAX_AUTO_CPU = 64
MAX_AUTO_GPU = 1024
# An array of s trials takes about 1 + (s - 1) / REPLICA_GAIN times as long as one trial alone: measured here, a
# replica trains 1.8-2x the net-epochs per CPU second of a trial alone and shares its start-up (docs: Trial arrays).
REPLICA_GAIN = 2.0
# The same for CNN replicas on CPU (the cnn sweep's network, digits): measured with benchmarks/bench_cnn.py --arrays,
# an array's net-epochs/s over the CNN core alone's (docs: Trial arrays). At most 1: auto keeps CNN trials alone.
CNN_REPLICA_GAIN = 0.5  # 0.71 / 0.51 / 0.49 at N = 1 / 5 / 10 per CPU second, load 6-11 (2026-11-29)


@dataclass(frozen=True)
class Layout:
    """The arrays a sweep's trials train in, and why it is so."""

    arrays: list[list[Trial]]
    size: int  # the largest array size allowed (auto: as chosen)
    reason: str  # one line: how the size was chosen, and what stays alone

    @property
    def n_trials(self) -> int:
        return sum(len(a) for a in self.arrays)


def local_slots(gpus: float, cpus: int) -> int:
    """How many trials this machine runs at once: CPUs (or GPUs, when trials ask for them) over each trial's share."""
    if gpus > 0:
        n_gpus = _local_gpus()
        return max(1, int(n_gpus // gpus)) if n_gpus else 1
    return max(1, len(os.sched_getaffinity(0)) // cpus)


def _local_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    return len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])


def layout(sweep: Sweep, trials: list[Trial], slots: int) -> Layout:
    """Arrays of ``trials`` (a grid sweep's, or those left to run) for ``slots`` concurrent trial slots."""
    from ib_sweeps.trial_array import array_key, unsupported

    spec = sweep.spec
    requested = spec.resources.array_size
    if spec.search is not None or requested == 1:
        why = "a search draws its trials one by one" if spec.search is not None else "array_size: 1"
        return Layout([[t] for t in trials], 1, f"one network per trial ({why})")
    groups: dict[str, list[Trial]] = {}
    alone, reasons = [], set()
    for t in trials:
        why = unsupported(t.config)
        if why is None:
            groups.setdefault(array_key(t.config), []).append(t)
        else:
            alone.append([t])
            reasons.add(why.split(";")[0])
    if requested == AUTO and spec.resources.gpus <= 0 and CNN_REPLICA_GAIN <= 1:
        for key in [k for k, g in groups.items() if g[0].config.model.kind == "cnn"]:
            alone += [[t] for t in groups.pop(key)]
            reasons.add("auto: CNN trials on CPUs, where an array of CNNs trains no faster than each alone")
    if requested == AUTO:
        size = _auto_size(list(groups.values()), slots, spec.resources.gpus)
        per = f"for {slots} trial slot{'s' * (slots != 1)}"
        how = f"auto: {size} {per}" if size > 1 else f"one network per trial (auto: 1 {per})"
    else:
        size, how = int(requested), f"array_size: {requested}"
    arrays = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    note = f"; {len(alone)} trials alone ({'; '.join(sorted(reasons))})" if alone else ""
    return Layout(arrays + alone, size, how + note)


def _auto_size(groups: list[list[Trial]], slots: int, gpus: float) -> int:
    """Even arrays over the slots, within the caps of the module docstring (1 when nothing can be grouped)."""
    if not groups:
        return 1
    n = sum(len(g) for g in groups)
    size = math.ceil(n / slots)
    size = min(size, MAX_AUTO_GPU if gpus > 0 else MAX_AUTO_CPU, max(len(g) for g in groups))
    memory = config.physical_memory()
    if memory:
        per_trial = max(sum(config.footprint(t.config).values()) for g in groups for t in g)
        size = min(size, max(1, int(memory // 2 // (per_trial * slots))))
    size = max(1, size)

    def makespan(s: int) -> tuple[float, int]:  # rounds of arrays over the slots x an array's time; larger first
        arrays = sum(math.ceil(len(g) / s) for g in groups)
        return math.ceil(arrays / slots) * (1 + (s - 1) / REPLICA_GAIN), -s

    return min(range(max(1, size // 2), size + 1), key=makespan)
