"""Forward passes: the live network's (training, evaluation, measurement), a stateless one from flat
weights (snapshots, noisy_sp samples), and the compiled measurement functions built on it.

Every pass returns every layer's output, hidden layers then the output logits,
so each layer's activity comes out of one pass; :func:`activities` turns the
logits into the softmax that is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ib_sweeps.train.network import Network
from ib_sweeps.train.noise import MEASURE_NOISE, SAMPLE_NOISE, Noise


def layer_input(layer, h):
    """``h`` as ``layer`` takes it: a Dense layer after convolutions gets it flattened (n, h*w*c)."""
    import keras
    import tensorflow as tf

    if len(h.shape) > 2 and isinstance(layer, keras.layers.Dense):
        return tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])
    return h


def activities(outs):
    """Layer outputs as recorded: hidden layers as they are, the output logits as their softmax."""
    import tensorflow as tf

    return [*outs[:-1], tf.nn.softmax(outs[-1])]


@dataclass(frozen=True)
class Forward:
    """Forward passes of ``net`` on flat inputs x (n, features), with ``noise``.

    ``transform``: :func:`~ib_sweeps.train.noise.hidden_output` of the model
    (quantized and/or noisy hidden outputs), None for a plain network.
    """

    net: Network
    noise: Noise
    transform: object = None

    def model_input(self, x):
        """x (n, features) as the first layer takes it: (n, height, width, channels) for a CNN."""
        import tensorflow as tf

        shape = self.net.input_shape
        return x if len(shape) == 1 else tf.reshape(x, [-1, *shape])

    def hidden(self, i, h, z):
        """(noiseless, passed on) output of layer i: quantized and/or noisy for hidden layers, else (h, h)."""
        if self.transform is None or i >= len(self.net.layers) - 1:
            return h, h
        cuts = self.noise.cuts
        return self.transform(i, h, None if z is None else z[:, cuts[i] : cuts[i + 1]])

    def __call__(self, x, key=None):
        """Every layer's output (n, ...) with the live weights; noise from ``key`` (None: noiseless)."""
        z = self.noise.draw(key, x)
        outs, h = [], self.model_input(x)
        for layer in self.net.layers:
            h = layer(layer_input(layer, h))
            if self.transform is not None:
                _, h = self.hidden(len(outs), h, z)
            outs.append(h)
        return outs

    def xent(self, x, y, key=None):
        """(mean cross-entropy loss, logits (n, n_classes)) of the live network on x, labels y (n,)."""
        import tensorflow as tf

        logits = self(x, key)[-1]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return loss, logits

    def stateless(self, flat, x, key=None, noiseless=False):
        """Layer outputs with flat weights ``flat`` (n_params,), the live variables untouched.

        ``noiseless``: hidden outputs before their own noise (noisy_sp's S_l).
        """
        import tensorflow as tf

        shapes, sizes = self.net.shapes, self.net.sizes
        z = self.noise.draw(key, x)
        outs, h, offset = [], self.model_input(x), 0
        for layer in self.net.layers:
            n_vars = len(layer.trainable_variables)
            values = []
            for shape, size in zip(shapes[offset : offset + n_vars], sizes[offset : offset + n_vars], strict=True):
                values.append(tf.reshape(flat[:size], shape))
                flat = flat[size:]
            offset += n_vars
            h, _ = layer.stateless_call(values, [], layer_input(layer, h))
            s, h = self.hidden(len(outs), h, z)
            outs.append(s if noiseless else h)
        return outs


def measurement(fwd: Forward, x_measure, jit: bool):
    """Compiled ``(activity_at, samples_at)`` on the measured inputs x_measure (n_measure, features).

    activity_at(flat (n_params,), epoch) -> per layer (n_measure, ...), as the
    live core measured it at that epoch; samples_at(flat, epoch, n_cond) -> per
    layer (n_measure, n_cond, ...), noiseless outputs of n_cond noisy passes
    (None for a noiseless network).
    """
    import tensorflow as tf

    n_measure = int(x_measure.shape[0])

    @tf.function(jit_compile=jit, reduce_retracing=True, autograph=False)
    def activity_at(flat, at_epoch):
        return activities(fwd.stateless(flat, x_measure, fwd.noise.key(MEASURE_NOISE, at=at_epoch)))

    @tf.function(jit_compile=jit, reduce_retracing=True, autograph=False)
    def samples_at(flat, at_epoch, n_cond):
        # Row i * n_cond + k: pass k of input i, independent noise on every row.
        x = tf.repeat(x_measure, n_cond, axis=0)
        outs = activities(fwd.stateless(flat, x, fwd.noise.key(SAMPLE_NOISE, at=at_epoch), noiseless=True))
        return [tf.reshape(a, [n_measure, n_cond, *a.shape[1:]]) for a in outs]

    return activity_at, (samples_at if fwd.noise.noisy else None)
