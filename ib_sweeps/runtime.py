"""Process-level TensorFlow setup; must run before TensorFlow does any work."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def configure_tensorflow(cpus: int | None) -> None:
    """Import TensorFlow quietly and cap its thread pools to ``cpus`` (None: TF's default).

    Thread pools can only be sized before TensorFlow initialises its runtime; if
    that already happened with other sizes, a warning says so and the old
    sizes stay.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
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
