"""The default 12-bit tanh trial shows the familiar information plane (Shwartz-Ziv & Tishby 2017).

Shortened to 1500 epochs (a few seconds). Qualitative checks with wide margins: these are the
picture the project exists to measure, not tuned numbers.
"""

import subprocess
import sys

import numpy as np
import pytest

from ib_sweeps import config, tracking
from ib_sweeps.trial import run_trial

pytestmark = pytest.mark.usefixtures("tf_ready")


@pytest.mark.slow
def test_tanh_plane_layer_order_and_fitting(tracking_uri):
    cfg = config.validate({"train": {"epochs": 1500}, "schedule": {"kind": "log", "n": 40}})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    ixt, iyt = np.stack(result.trace.ixt)[:, 0], np.stack(result.trace.iyt)[:, 0]  # (epochs, layers)
    h_y = result.trace.h_y
    # Deeper layers carry no more information about X than shallower ones, at every measured epoch.
    assert (np.diff(ixt, axis=1) <= 1e-9).all()
    assert ixt[0, 0] == pytest.approx(12.0, abs=0.05)  # the first layer keeps the 12 input bits
    # Fitting: I(Y;T) of the last hidden and output layers rises towards H(Y).
    for layer in (-2, -1):
        assert iyt[0, layer] < 0.3 * h_y
        assert iyt[-1, layer] > 0.8 * h_y
    assert (iyt <= h_y + 1e-9).all() and (ixt <= 12 + 1e-9).all()


@pytest.mark.slow
def test_same_seed_same_trace(tracking_uri):
    cfg = config.validate({"seed": 5, "train": {"epochs": 20}, "model": {"hidden": [5, 3]}})
    opts = tracking.RunOptions(tracking_uri=tracking_uri, progress=False)
    a, b = run_trial(cfg, opts), run_trial(cfg, opts)
    assert a.run_id != b.run_id
    for key in ("ixt", "iyt"):
        assert np.array_equal(np.stack(getattr(a.trace, key)), np.stack(getattr(b.trace, key)))
    assert np.array_equal(a.trace.history, b.trace.history)


@pytest.mark.slow
def test_cpus_caps_tensorflow_thread_pools():
    code = (
        "from ib_sweeps import runtime\n"
        "runtime.configure_tensorflow(1)\n"
        "import tensorflow as tf\n"
        "t = tf.config.threading\n"
        "assert t.get_intra_op_parallelism_threads() == 1 == t.get_inter_op_parallelism_threads()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
