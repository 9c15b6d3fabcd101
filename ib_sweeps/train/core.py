"""The compiled training state and what a trial calls: :class:`TrainingCore`, :class:`TrainingDiverged`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss; ``rows`` holds the finite history before it."""

    # Its public path: Ray's tracebacks and the sweep's progress lines name it so, and pickles find it there.
    __module__ = "ib_sweeps.train"

    def __init__(self, epoch: int, first_epoch: int, rows: np.ndarray):
        super().__init__(f"training diverged: non-finite loss at epoch {epoch}")
        self.epoch, self.first_epoch, self.rows = epoch, first_epoch, rows

    def __reduce__(self):  # copyable and picklable (Ray ships errors between processes)
        return type(self), (self.epoch, self.first_epoch, self.rows)


@dataclass
class TrainingCore:
    """Compiled training state. Build with :func:`build_core`."""

    run: object  # tf.function: n_epochs -> (layer activities, snapshots (capacity, n_params) or None)
    history: object  # tf.Variable (epochs + 1, 4)
    layers: list
    activity_at: object  # tf.function: flat weights (n_params,), epoch -> list of layer activities
    snapshot_capacity: int = 0  # most epochs one advance() keeps the weights of
    grad_norms: object = None  # tf.Variable (epochs + 1, n_layers, 2) with gradient_stats, else None
    # Noisy network (model.noise_std): tf.function (flat weights, epoch, n_cond) -> per layer (n, n_cond, ...).
    samples_at: object = None
    epoch: int = 0
    _snapshots: object = None

    @property
    def noisy(self) -> bool:
        """Whether every hidden layer adds Gaussian noise (model.noise_std > 0)."""
        return self.samples_at is not None

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def gradient_stats(self, first: int, stop: int) -> np.ndarray:
        """Gradient statistics of epochs ``first .. stop-1``: float64 (k, n_layers, 3).

        Columns :data:`ib_sweeps.gradients.KEYS` (mean norm, std norm, SNR);
        NaN for epoch 0, epochs not trained yet and layers without weights
        (pooling). Needs ``train.gradient_stats``.
        """
        from ib_sweeps import gradients

        if self.grad_norms is None:
            raise ValueError("gradient statistics are off (train.gradient_stats: false)")
        return gradients.with_snr(self.grad_norms[first:stop].numpy())

    def advance_with_snapshots(self, to_epoch: int):
        """Like :meth:`advance`, and also the flat weights (k, n_params) after epochs ``epoch+1 .. to_epoch-1``.

        Those are the epochs a backtracking schedule may need to measure later
        (:meth:`activity_from`); at most ``snapshot_capacity`` epochs per call.
        """
        k = max(to_epoch - self.epoch - 1, 0)
        if k > self.snapshot_capacity:
            raise ValueError(f"cannot keep {k} snapshots; capacity is {self.snapshot_capacity}")
        rows, acts = self.advance(to_epoch)
        return rows, acts, self._snapshots[:k].numpy()

    def activity_from(self, flat_weights: np.ndarray, epoch: int | None = None) -> list[np.ndarray]:
        """Every layer's activity on the measured inputs for the given flat weights.

        Stateless: the live network being trained is not touched, so this may run
        in another thread while training goes on. A noisy network needs the
        ``epoch`` the weights are from: its measurement noise is drawn per epoch,
        so this gives exactly what :meth:`advance` gave live at that epoch.
        """
        import tensorflow as tf

        if self.noisy and epoch is None:
            raise ValueError("a noisy network's measurement noise is drawn per epoch: pass the weights' epoch")
        at = tf.constant(epoch or 0, tf.int32)
        return [a.numpy() for a in self.activity_at(tf.constant(flat_weights, tf.float32), at)]

    def weights(self) -> np.ndarray:
        """The live network's flat weights (n_params,) float32, in the order :meth:`activity_from` takes."""
        return np.concatenate([v.numpy().ravel() for layer in self.layers for v in layer.trainable_variables])

    def noisy_samples(self, epoch: int, n_cond: int, flat_weights: np.ndarray | None = None) -> list[np.ndarray]:
        """A noisy network's noiseless layer outputs S_l over ``n_cond`` noisy passes of each measured input.

        One float32 array (n_measure, n_cond, width) per layer (the softmax for
        the output): pass k of input i carries independent noise on every hidden
        layer, drawn from the trial seed, ``epoch`` and k; S_l itself is taken
        before layer l's own noise, as :class:`~ib_sweeps.estimators.noisy_sp.NoisySP`
        wants it. Weights: ``flat_weights``, else the live network's (at ``epoch``).
        """
        import tensorflow as tf

        if not self.noisy:
            raise ValueError("noisy samples need a noisy network (model.noise_std > 0)")
        if flat_weights is None and epoch != self.epoch:
            raise ValueError(f"the live network is at epoch {self.epoch}, not {epoch}; pass that epoch's weights")
        flat = self.weights() if flat_weights is None else flat_weights
        out = self.samples_at(tf.constant(flat, tf.float32), tf.constant(epoch, tf.int32), n_cond)
        return [a.numpy() for a in out]

    def advance(self, to_epoch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Train epochs ``epoch+1 .. to_epoch``; return their history rows and the activity.

        History rows: float64 (to_epoch - epoch, 4) in ``HISTORY_KEYS`` order
        (for ``to_epoch == 0``, the row of epoch 0). Activity: one float32
        array (n_measure, width) per layer, hidden layers then softmax output,
        exactly as the network computed it; (n_measure, height, width,
        channels) for convolutional and pooling layers.
        Raises :class:`TrainingDiverged` on a non-finite loss.
        """
        if to_epoch < self.epoch:
            raise ValueError(f"cannot go back from epoch {self.epoch} to {to_epoch}")
        first = self.epoch + 1 if to_epoch > 0 else 0
        import tensorflow as tf

        if self.snapshot_capacity and to_epoch - self.epoch - 1 > self.snapshot_capacity:
            raise ValueError(f"a core keeping snapshots advances at most {self.snapshot_capacity + 1} epochs a call")
        acts, self._snapshots = self.run(tf.constant(to_epoch - self.epoch, tf.int32))
        rows = self.history[first : to_epoch + 1].numpy().astype(np.float64)
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            k = int(np.argmax(bad))
            raise TrainingDiverged(first + k, first, rows[:k])
        self.epoch = to_epoch
        return rows, [a.numpy() for a in acts]
