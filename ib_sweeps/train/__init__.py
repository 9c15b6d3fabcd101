"""The training core: whole stretches of epochs in one compiled graph call.

``TrainingCore.advance(epoch)`` trains up to ``epoch`` inside one XLA-compiled
``tf.function`` (a loop over epochs, each a loop over shuffled minibatches) and
returns every layer's activity on the measured inputs from one forward pass at
that epoch. Per-epoch train/test loss and accuracy are written into a buffer
inside the graph, and, with ``train.gradient_stats``, each layer's minibatch
gradient mean and std norms (:mod:`ib_sweeps.gradients`). Epoch 0 is the
untrained network.

The same core trains the CNN (``model.kind: cnn``), as a plain graph (no XLA:
its CPU convolutions are ~20x slower than TensorFlow's): the flat inputs are
reshaped to the image shape in the graph and a Dense layer takes its input
flattened. Its pooling layer has no weights, so no gradient statistics (NaN).
Where the activity of a whole evaluation set would not fit in
:data:`EVAL_BYTES` (CNNs on MNIST), loss and accuracy are summed over chunks
of it; MLPs are evaluated in one pass, as always.

Noisy and quantized MLPs (:func:`hidden_output`): with ``model.noise_std``
every hidden layer's output gets N(0, sigma^2) noise in every pass, training,
evaluation and measurement alike (Goldfeld et al. 2019). The noise is
stateless, keyed by the trial seed, a stream (training, evaluation, measured
activity, noisy_sp samples), the epoch and the batch, so results do not depend
on how the epochs are chunked and weight snapshots reproduce the live
measurement; :meth:`TrainingCore.noisy_samples` re-runs every measured input
n_cond times for noisy_sp. With ``model.quantize_levels`` each hidden output is
rounded to k levels with a straight-through gradient. Neither set: the graph
is exactly the plain one.

:func:`build_core` composes the phases, one module each:

- :mod:`~ib_sweeps.train.network`: model and optimizer set-up (layers, flat variable order);
- :mod:`~ib_sweeps.train.batching`: each epoch's minibatch order and its minibatches;
- :mod:`~ib_sweeps.train.noise`: noise keys and draws, the noisy/quantized hidden-output transform;
- :mod:`~ib_sweeps.train.forward`: forward passes (live and from flat weights), the measurement functions;
- :mod:`~ib_sweeps.train.gradient_stats`: kernel-gradient sums and norms per epoch;
- :mod:`~ib_sweeps.train.evaluation`: full train/test loss and accuracy into the history buffer;
- :mod:`~ib_sweeps.train.epochs`: the minibatch step, one epoch, the compiled stretch of epochs;
- :mod:`~ib_sweeps.train.core`: :class:`TrainingCore`, the host side a trial drives.
"""

from __future__ import annotations

from ib_sweeps import models, records
from ib_sweeps.train.batching import minibatch_order, minibatches
from ib_sweeps.train.core import TrainingCore, TrainingDiverged
from ib_sweeps.train.epochs import EpochLoop, compile_run
from ib_sweeps.train.evaluation import Evaluation, eval_rows
from ib_sweeps.train.forward import Forward, layer_input, measurement
from ib_sweeps.train.gradient_stats import build_gradient_stats
from ib_sweeps.train.network import build_network, make_optimizer, split_seed
from ib_sweeps.train.noise import (
    EVAL_TEST_NOISE,
    EVAL_TRAIN_NOISE,
    MEASURE_NOISE,
    SAMPLE_NOISE,
    TRAIN_NOISE,
    build_noise,
    hidden_output,
    noise_key,
    noise_seed,
)

__all__ = [
    "EVAL_BYTES",
    "EVAL_TEST_NOISE",
    "EVAL_TRAIN_NOISE",
    "HISTORY_KEYS",
    "MEASURE_NOISE",
    "SAMPLE_NOISE",
    "TRAIN_NOISE",
    "TrainingCore",
    "TrainingDiverged",
    "build_core",
    "hidden_output",
    "layer_input",
    "make_optimizer",
    "minibatch_order",
    "noise_key",
    "noise_seed",
    "split_seed",
]

# Columns of the per-epoch history: loss/train, accuracy/train, loss/test, accuracy/test.
HISTORY_KEYS = records.HISTORY
# Most bytes of activity one evaluation pass may hold (CNN layers: ~270 kB per MNIST image).
# Read when a core is built (tests patch it here).
EVAL_BYTES = 256 * 2**20


def build_core(
    model_cfg, train_cfg, data, seed: int, jit: bool | None = None, snapshot_capacity: int = 0
) -> TrainingCore:
    """Build the model, optimizer and compiled epoch loop for ``data``.

    ``seed`` drives the weight initialisation and the minibatch order; the same
    seed and config give identical numbers. ``snapshot_capacity``: how many
    epochs' weights one call may keep for backtracking (memory: capacity x
    parameters x 4 bytes). ``jit``: compile with XLA; default: for an MLP, not
    for a CNN, whose graph runs plain (on CPU, TensorFlow's oneDNN convolutions
    train the digits CNN ~20x faster than XLA's: ``benchmarks/bench_cnn.py``).
    """
    import tensorflow as tf

    init_seed, order_seed = split_seed(seed)
    net = build_network(model_cfg, train_cfg, data, init_seed)
    jit = models.of(model_cfg).jit if jit is None else jit
    batches = minibatches(data, train_cfg.batch_size, order_seed)
    # The live epoch (0: untrained) and one history row per epoch, both updated inside the graph.
    epoch = tf.Variable(0, dtype=tf.int32, trainable=False)
    history = tf.Variable(tf.zeros([train_cfg.epochs + 1, 4]), trainable=False)
    grads = build_gradient_stats(net, train_cfg.epochs) if train_cfg.gradient_stats else None
    fwd = Forward(net, build_noise(model_cfg, seed, epoch), hidden_output(model_cfg))
    x_test, y_test = tf.constant(data.x_test), tf.constant(data.y_test)
    rows = eval_rows(model_cfg, data, EVAL_BYTES)
    evaluation = Evaluation(fwd, batches.x, batches.y, x_test, y_test, history, rows)
    loop = EpochLoop(fwd, batches, evaluation, grads)
    x_measure = tf.constant(data.x_measure)
    activity_at, samples_at = measurement(fwd, x_measure, jit)
    return TrainingCore(
        run=compile_run(loop, x_measure, snapshot_capacity, jit),
        history=history,
        layers=net.layers,
        activity_at=activity_at,
        snapshot_capacity=snapshot_capacity,
        grad_norms=None if grads is None else grads.norms,
        samples_at=samples_at,
    )
