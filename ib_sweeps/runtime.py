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
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

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


def configure_tensorflow(cpus: int | None) -> None:
    """Import TensorFlow quietly and cap its thread pools to ``cpus`` (None: TF's default).

    Thread pools can only be sized before TensorFlow initialises its runtime; if
    that already happened with other sizes, a warning says so and the old
    sizes stay.
    """
    quiet_environment()
    if "tensorflow" not in sys.modules:
        gpu_driver = has_nvidia_driver()
        with filtered_stderr(lambda line: is_noise(line, gpu_driver)):
            import tensorflow as tf

            tf.config.list_physical_devices()  # loads the device platforms (cuInit) inside the filter
    import tensorflow as tf

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
