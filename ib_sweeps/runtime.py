"""Process-level TensorFlow setup; must run before TensorFlow does any work.

Why TensorFlow's start-up is filtered at the file-descriptor level: its C++
libraries log from static initialisers when they are loaded, before
``absl::InitializeLog()`` and so regardless of ``TF_CPP_MIN_LOG_LEVEL``, and
two of them (``libtensorflow_framework`` and ``libpywrap_tflite_common``,
both loaded by ``import tensorflow``) each carry a copy of that code, so every
notice came twice. The first device enumeration then logs ``failed call to
cuInit`` at ERROR level on a machine without a GPU. :func:`configure_tensorflow`
imports TensorFlow and enumerates its devices with file descriptor 2 pointed
at a temporary file, and writes back every line that is not one of the known
start-up notices (:data:`NOISE`), so real errors still show.
``CUDA_VISIBLE_DEVICES`` is left alone: a GPU machine sees its GPU, and there
the cuInit line is kept, because a failing cuInit is then a real problem.

GPU memory (:func:`configure_gpus`): by default TensorFlow reserves nearly all
of every visible GPU's memory when it first uses one, so a second trial that
Ray packs onto the same GPU (``resources.gpus: 0.5``) cannot allocate. Before
any TensorFlow work, each visible GPU gets a fixed limit of the trial's share
of its memory where a share below 1 is given and the GPU's size is known
(``nvidia-smi``), else memory growth (allocate as needed). :func:`device_tags`
says what a trial got; ``docs/explanation/devices.md`` what was tested where.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from ib_sweeps import records

log = logging.getLogger(__name__)

# Start-up notices of TensorFlow/XLA that say nothing about this run (each library prints its own copy).
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|cpu_feature_guard\.cc"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation_placer\.cc.*already registered"
)
NO_GPU_NOISE = re.compile(r"failed call to cuInit")  # noise only where no NVIDIA driver is installed


def has_nvidia_driver() -> bool:
    """Whether an NVIDIA kernel driver is loaded (then a CUDA error is a real error, not a start-up notice)."""
    return os.path.exists("/proc/driver/nvidia/version")


def is_noise(line: str, gpu_driver: bool = False) -> bool:
    """Whether ``line`` of TensorFlow's start-up output is a known, harmless notice."""
    return bool(NOISE.search(line)) or (not gpu_driver and bool(NO_GPU_NOISE.search(line)))


def quiet_environment() -> None:
    """Environment defaults read once when TensorFlow loads (children such as Ray workers inherit them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextmanager
def filtered_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block; then write back the lines ``drop`` keeps.

    Catches output of C++ libraries that bypass ``sys.stderr``. Where fd 2 cannot
    be redirected (closed, not a file), the block runs unfiltered.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not drop(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def configure_tensorflow(cpus: int | None, gpu_share: float | None = None) -> None:
    """Import TensorFlow quietly, set its GPU memory policy and cap its thread pools to ``cpus`` (None: TF's default).

    ``gpu_share``: GPUs per trial (``resources.gpus``; None: not given), see
    :func:`configure_gpus`. Thread pools and GPU memory can only be set before
    TensorFlow initialises its runtime; if that already happened, a warning says
    so and the old settings stay.
    """
    quiet_environment()
    if "tensorflow" not in sys.modules:
        gpu_driver = has_nvidia_driver()
        with filtered_stderr(lambda line: is_noise(line, gpu_driver)):
            import tensorflow as tf

            tf.config.list_physical_devices()  # loads the device platforms (cuInit) inside the filter
    import tensorflow as tf

    configure_gpus(gpu_share)
    if cpus is None:
        return
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == cpus and threading.get_inter_op_parallelism_threads() == cpus:
        return
    try:
        threading.set_intra_op_parallelism_threads(cpus)
        threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:
        log.warning("TensorFlow is already initialised; cannot cap its thread pools to %d CPUs", cpus)


# --- GPUs --------------------------------------------------------------------------------------------------

NO_GPU = "none: no GPU"
HIDDEN = "hidden: no GPU share"  # resources.gpus 0 on a node with GPUs
GROWTH = "growth"
TF_FIRST = "default: TensorFlow initialised first"  # TensorFlow's own policy: it reserves nearly all memory
CONTEXT_MIB = 1024  # per process, outside TensorFlow's allocator: the CUDA context, cuBLAS/cuDNN workspaces

_policy: tuple[float | None, str] | None = None  # (share, policy) of this process's first configure_gpus


def configure_gpus(share: float | None = None) -> str:
    """Set how TensorFlow takes GPU memory in this process, before it does any work; return the policy.

    ``share``: GPUs per trial (``resources.gpus``). Below 1, every visible GPU
    gets one logical device of ``share x total - CONTEXT_MIB`` MiB
    (``"limit:<MiB>"``) where ``nvidia-smi`` gives the total: memory growth
    alone would not stop one of two trials on a GPU from growing into the
    other's half. Otherwise (no share, a whole GPU or more, size unknown) memory
    growth (``"growth"``): memory is taken as needed, not all at the start.
    A share of 0 hides the GPUs from TensorFlow (``"hidden: no GPU share"``):
    Ray 2.60 leaves ``CUDA_VISIBLE_DEVICES`` unset for a task without GPUs, so
    a CPU trial would otherwise run on GPU 0 beside the trials Ray placed
    there. Without a GPU: ``"none: no GPU"`` and nothing is set.

    Once per process: a later call returns the first policy (with a warning if
    its share differs). If TensorFlow has already initialised its GPUs, nothing
    can be set: a warning, and the policy found is returned.
    """
    global _policy
    if _policy is not None:
        if _policy[0] != share:
            log.warning("GPU memory policy is already %s; share %s ignored", _policy[1], share)
        return _policy[1]
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    limit = 0
    if not gpus:
        policy = NO_GPU
    elif share == 0:
        policy = HIDDEN
    else:
        total = gpu_total_mib() if share is not None and share < 1 else None
        limit = int(share * total) - CONTEXT_MIB if share is not None and total else 0
        policy = f"limit:{limit}" if limit > 0 else GROWTH
    try:
        if policy == HIDDEN:
            tf.config.set_visible_devices([], "GPU")
        elif limit > 0:
            for gpu in gpus:
                config = tf.config.LogicalDeviceConfiguration(memory_limit=limit)
                tf.config.set_logical_device_configuration(gpu, [config])
        else:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # "Physical devices cannot be modified after being initialized"
        grows = all(tf.config.experimental.get_memory_growth(gpu) for gpu in gpus)
        policy = GROWTH if grows else TF_FIRST
        log.warning("TensorFlow is already initialised; its GPU memory policy stays %s", policy)
    _policy = (share, policy)
    return policy


def gpu_total_mib() -> int | None:
    """The smallest total memory (MiB) of the GPUs this process may use, from ``nvidia-smi``; None if unknown.

    Those GPUs are ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs, as Ray sets it),
    or all of them where it is unset.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = [exe, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        rows = [[field.strip() for field in line.split(",")] for line in out.splitlines() if line.strip()]
        size = {key: int(row[2]) for row in rows for key in row[:2]}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [i.strip() for i in visible.split(",") if i.strip()] if visible is not None else [r[0] for r in rows]
    if not ids or any(i not in size for i in ids):
        return None
    return min(size[i] for i in ids)


def assigned_gpus() -> str:
    """``"ray:<ids>"``: the GPUs Ray assigned to this task or actor (``"ray:"`` for none); outside a Ray worker
    ``"env:<CUDA_VISIBLE_DEVICES>"`` (``"env:unset"``: every GPU is visible)."""
    ray = sys.modules.get("ray")  # a Ray worker has imported it; nothing else needs to
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        if context.worker.mode == ray.WORKER_MODE:
            return "ray:" + ",".join(str(i) for i in context.get_accelerator_ids().get("GPU", []))
    return "env:" + os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def device_tags() -> dict[str, str]:
    """Where this process's trial runs, as MLflow tags: the GPUs assigned (:data:`~ib_sweeps.records.GPU_IDS`),
    those TensorFlow sees (:data:`~ib_sweeps.records.GPU_DEVICES`) and the memory policy
    (:data:`~ib_sweeps.records.GPU_MEMORY`; ``"unset"`` before :func:`configure_gpus`)."""
    seen = "tensorflow not imported"
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        seen = ",".join(gpu.name for gpu in tf.config.list_physical_devices("GPU")) or "none"
    return {
        records.GPU_IDS: assigned_gpus(),
        records.GPU_DEVICES: seen,
        records.GPU_MEMORY: _policy[1] if _policy is not None else "unset",
    }
