"""Noise keys and draws of noisy networks, and the hidden-output transform of noisy and quantized ones.

The noise is stateless, keyed by the trial seed, a stream (training,
evaluation, measured activity, noisy_sp samples), the epoch and the batch, so
results do not depend on how the epochs are chunked and weight snapshots
reproduce the live measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ib_sweeps import models

# Streams of a noisy network's noise: minibatch steps, evaluation on the train and test sets, the
# measured activity, and the repeated passes of noisy_sp's samples.
TRAIN_NOISE, EVAL_TRAIN_NOISE, EVAL_TEST_NOISE, MEASURE_NOISE, SAMPLE_NOISE = range(5)


def noise_seed(seed: int) -> int:
    """Noise seed of a core built with ``seed``: the word after the two :func:`split_seed` draws."""
    return int(np.random.SeedSequence(seed).generate_state(3)[2]) & 0x7FFFFFFF


def noise_key(seed: int, stream: int, epoch, *path):
    """Stateless (2,) int32 key of one noise draw: ``seed`` and ``stream`` folded with ``epoch``, then ``path``."""
    import tensorflow as tf

    key = tf.stack([tf.constant(seed, tf.int32), tf.constant(stream, tf.int32)])
    for part in (epoch, *path):
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(part, tf.int32), alg="philox")
    return key


def hidden_output(model_cfg):
    """``f(i, h, z) -> (s, t)`` for hidden layer i's output h, or None for a plain network.

    s: h quantized to ``model.quantize_levels`` levels (straight-through,
    :func:`ib_sweeps.models.quantize`), else h; t: s + noise_std * z, z standard
    normal draws of h's shape (Goldfeld et al. 2019), or s when z is None. The
    next layer takes t; s is what noisy_sp's samples are. None when neither is
    set, so the graph of a plain network is exactly what it was.
    """
    levels = model_cfg.quantize_levels
    std = model_cfg.noise_std or 0.0
    if levels is None and not std:
        return None
    acts = models.layer_activations(model_cfg)

    def transform(i, h, z):
        s = h if levels is None else models.quantize(h, acts[i], levels)
        if not std:
            return s, s
        if z is None:
            raise ValueError("a noisy network's forward pass needs noise")
        return s, s + std * z

    return transform


@dataclass(frozen=True)
class Noise:
    """A core's noise streams: keys at the live ``epoch`` (an int32 tf.Variable) and one draw per pass.

    ``cuts`` (n_hidden + 1,): hidden layer i's units are columns ``cuts[i]:cuts[i+1]``
    of a draw. A noiseless network has no keys and no draws (None), so its graph
    holds no noise at all.
    """

    seed: int
    noisy: bool
    epoch: object
    cuts: np.ndarray

    def key(self, stream: int, *path, at=None):
        """The noise key of ``stream`` at epoch ``at`` (default: the live epoch); None for a noiseless network."""
        return noise_key(self.seed, stream, self.epoch if at is None else at, *path) if self.noisy else None

    def draw(self, key, x):
        """Standard normal draws (rows of x, all hidden units) for one forward pass; None without a key."""
        import tensorflow as tf

        # One draw per pass, not per layer, and Philox named: XLA on CPU compiles each draw site slowly
        # and draws "auto_select" about 7x slower (measured).
        return None if key is None else tf.random.stateless_normal([tf.shape(x)[0], self.cuts[-1]], key, alg="philox")


def build_noise(model_cfg, seed: int, epoch) -> Noise:
    """The noise of a core built with ``seed`` whose live epoch is the variable ``epoch``."""
    cuts = np.cumsum([0, *models.of(model_cfg).noise_widths(model_cfg)])  # each hidden layer's columns of the noise
    return Noise(noise_seed(seed), bool(model_cfg.noise_std), epoch, cuts)
