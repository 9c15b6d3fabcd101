"""The epoch loop: minibatch steps, one epoch, and the compiled stretch of epochs that ``advance`` calls."""

from __future__ import annotations

from dataclasses import dataclass

from ib_sweeps.train.batching import Minibatches
from ib_sweeps.train.evaluation import Evaluation
from ib_sweeps.train.forward import Forward, activities
from ib_sweeps.train.gradient_stats import GradientStats
from ib_sweeps.train.loops import repeat, when
from ib_sweeps.train.network import flat_weights
from ib_sweeps.train.noise import MEASURE_NOISE, TRAIN_NOISE


@dataclass(frozen=True)
class EpochLoop:
    """One epoch of training: an optimizer step per minibatch, then evaluation and gradient statistics.

    ``grads``: None without gradient statistics (nothing of them in the graph).
    """

    fwd: Forward
    batches: Minibatches
    evaluation: Evaluation
    grads: GradientStats | None = None

    def step(self, xb, yb, sums, key=None):
        """One minibatch update; with gradient statistics, adds its kernel gradient (float64) to ``sums``."""
        import tensorflow as tf

        variables = self.fwd.net.variables
        with tf.GradientTape() as tape:
            loss, _ = self.fwd.xent(xb, yb, key)
        grads = tape.gradient(loss, variables)
        self.fwd.net.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return sums if self.grads is None else self.grads.add(sums, grads)

    def one_epoch(self):
        """Advance the live epoch by one: train on its minibatches, record history (and gradient statistics)."""
        noise = self.fwd.noise
        noise.epoch.assign_add(1)

        def train_on(b, xb, yb, sums):  # minibatch b's step, with its own noise
            return self.step(xb, yb, sums, noise.key(TRAIN_NOISE, b))

        # Loop-carried sum and sum of squares of the kernel gradients; nothing at all without statistics.
        sums = self.grads.zeros() if self.grads is not None else ()
        sums = self.batches.fold(noise.epoch, train_on, sums)
        self.evaluation.record()
        if self.grads is not None:
            self.grads.record(sums, self.batches.count, noise.epoch)


def compile_run(loop: EpochLoop, x_measure, snapshot_capacity: int, jit: bool):
    """The compiled ``run(n_epochs) -> (activities, snapshots)`` of :class:`~ib_sweeps.train.TrainingCore`.

    Trains ``n_epochs`` epochs from the live one (recording epoch 0 first if it
    is 0); activities: per layer (n_measure, ...) on x_measure at the last epoch;
    snapshots: float32 (snapshot_capacity + 1, n_params) flat weights after each
    epoch of the call (empty (0, n_params) without snapshots).
    """
    import tensorflow as tf

    epoch, net = loop.fwd.noise.epoch, loop.fwd.net

    @tf.function(jit_compile=jit, reduce_retracing=True, autograph=False)
    def run(n_epochs):
        when(tf.equal(epoch, 0), loop.evaluation.record)
        # Loop-carried (not a variable), so XLA updates it in place instead of copying it every epoch.
        # One row per epoch of the call; the last (to_epoch itself, measured live) is spare.
        snaps = tf.zeros([snapshot_capacity + 1 if snapshot_capacity else 0, sum(net.sizes)])

        def one_epoch(i, snaps):
            loop.one_epoch()
            return tf.tensor_scatter_nd_update(snaps, [[i]], [flat_weights(net)]) if snapshot_capacity else snaps

        snaps = repeat(n_epochs, one_epoch, snaps)  # a while loop: tf.range(n) would make XLA compile per n
        return activities(loop.fwd(x_measure, loop.fwd.noise.key(MEASURE_NOISE))), snaps

    return run
