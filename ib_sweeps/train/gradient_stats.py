"""Gradient statistics: each layer's minibatch kernel-gradient mean and std norms, per epoch, in the graph.

The loop over an epoch's minibatches carries the sum and sum of squares of the
flat kernel gradient; after the epoch :meth:`GradientStats.record` writes each
layer's norms (:mod:`ib_sweeps.gradients`) into a buffer. Layers without
weights (pooling) get NaN rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ib_sweeps.train.network import Network


@dataclass(frozen=True)
class GradientStats:
    """Where each layer's kernel lies in the flat kernel gradient, and the buffer of norms.

    ``norms``: tf.Variable float32 (epochs + 1, n_layers, 2), (mean norm, std
    norm) per epoch and layer, NaN until recorded. ``weighted``: indices of the
    layers with weights; ``kernels``: index of each one's kernel among the
    variables; layer ``weighted[j]``'s kernel is ``bounds[j]:bounds[j+1]`` of the
    flat gradient (n_kernel,).
    """

    weighted: list[int]
    kernels: list[int]
    bounds: np.ndarray
    n_layers: int
    norms: object

    def zeros(self):
        """The loop-carried (sum, sum of squares) of an epoch's kernel gradients: two float64 (n_kernel,)."""
        import tensorflow as tf

        return (tf.zeros([self.bounds[-1]], tf.float64),) * 2

    def add(self, sums, grads):
        """``sums`` plus one minibatch's gradients (one per variable), kernels flattened, in float64."""
        import tensorflow as tf

        g = tf.cast(tf.concat([tf.reshape(grads[i], [-1]) for i in self.kernels], axis=0), tf.float64)
        return sums[0] + g, sums[1] + g * g

    def record(self, sums, n_batches: int, epoch):
        """Write epoch ``epoch``'s row (n_layers, 2) of ``norms`` from the sums over its ``n_batches`` minibatches."""
        import tensorflow as tf

        # Sums in float64, so E[g^2] - E[g]^2 keeps its digits even when the mean dominates.
        mean = sums[0] / n_batches
        var = tf.maximum(sums[1] / n_batches - mean * mean, 0.0)
        norms = [
            tf.stack([tf.norm(mean[a:b]), tf.sqrt(tf.reduce_sum(var[a:b]))]) for a, b in itertools.pairwise(self.bounds)
        ]
        if len(self.weighted) < self.n_layers:  # NaN rows for layers without weights
            by_layer = dict(zip(self.weighted, norms, strict=True))
            norms = [by_layer.get(j, tf.constant([np.nan, np.nan], tf.float64)) for j in range(self.n_layers)]
        self.norms.scatter_nd_update([[epoch]], [tf.cast(tf.stack(norms), tf.float32)])


def build_gradient_stats(net: Network, epochs: int) -> GradientStats:
    """The gradient statistics of ``net``'s kernels over ``epochs`` epochs (pooling layers have none)."""
    import tensorflow as tf

    layers, variables = net.layers, net.variables
    weighted = [j for j, layer in enumerate(layers) if layer.trainable_variables]
    kernels = [next(i for i, v in enumerate(variables) if v is layers[j].kernel) for j in weighted]
    bounds = np.cumsum([0, *(int(np.prod(variables[i].shape)) for i in kernels)])
    norms = tf.Variable(tf.fill([epochs + 1, len(layers), 2], np.nan), trainable=False)
    return GradientStats(weighted, kernels, bounds, len(layers), norms)
