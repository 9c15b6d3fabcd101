"""A trial array's CNN replicas (``model.kind: cnn``): stacked conv weights, their batched forward pass, plain orders.

Replica r's initial weights are what :func:`ib_sweeps.models.build` draws
alone with its initialisation seed (the layers with weights stacked on a
leading replica axis, as :func:`~ib_sweeps.train.array_net.build_array_net`
stacks an MLP's): conv kernels (N, k, k, c_in, filters), dense kernels
(N, fan_in, width), biases (N, width). Every layer's output keeps the replica
axis first and is, per replica, what the model alone outputs: conv and pooling
layers (N, rows, height, width, channels), dense layers (N, rows, width),
named layer_1 .. as alone.

Convolutions are im2col and one batched matmul per layer: the k x k shifted
slices of the input concatenated along the channels (the kernel's (i, j, c)
order), times the kernel reshaped to (N, k*k*c_in, filters). The array is
compiled with XLA, which runs this well on CPU; replicas folded into channels
(one grouped convolution, ``feature_group_count``) ran ~50x slower under XLA
(digits CNN, N = 1, 5, 10: docs/explanation/trial-arrays.md). Still, on CPU an
array of CNNs trains about half the net-epochs per second of the CNN core
alone (oneDNN convolutions, no XLA), so ``auto`` keeps CNN trials alone there.

Minibatch orders: the CNN core alone trains as a plain graph (no XLA), whose
stateless draws differ from XLA's, so :func:`plain_orders` draws every
epoch's orders up front in a plain graph, from the same keys with the same
ops as :func:`~ib_sweeps.train.minibatch_order`, into a table the compiled
loop reads (epochs x N x n_train int32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ib_sweeps import models
from ib_sweeps.train.array_net import activate


@dataclass(frozen=True)
class ConvLayout:
    """What a CNN replica's weights do not say: kernel size, how many conv layers, the pool, the image shape."""

    kernel: int
    n_conv: int
    pool: int | None
    image: tuple[int, int, int]


def build_cnn_net(model_cfgs, data, init_seeds):
    """The replicas' CNNs drawn by :func:`ib_sweeps.models.build`, layers with weights stacked (an ArrayNet)."""
    import tensorflow as tf

    from ib_sweeps.train.array_net import ArrayNet

    built = [models.build(c, data.input_shape, data.n_classes, s) for c, s in zip(model_cfgs, init_seeds, strict=True)]
    weighted = [[layer for layer in net if layer.trainable_variables] for net in built]
    kernels = [tf.Variable(np.stack([w[i].kernel.numpy() for w in weighted])) for i in range(len(weighted[0]))]
    biases = [tf.Variable(np.stack([w[i].bias.numpy() for w in weighted])) for i in range(len(weighted[0]))]
    acts = [list(layer) for layer in zip(*[[*models.layer_activations(c), "linear"] for c in model_cfgs], strict=True)]
    cfg = model_cfgs[0]
    layout = ConvLayout(cfg.kernel, len(cfg.conv), cfg.pool, tuple(int(s) for s in data.input_shape))
    return ArrayNet(kernels, biases, acts, conv=layout)


def conv(h, kernel):
    """'valid' stride-1 convolution of each replica's h (N, rows, H, W, C) with its kernel (N, k, k, C, F)."""
    import tensorflow as tf

    n, k, _, c, f = (int(d) for d in kernel.shape)
    rows, height, width = h.shape[1], int(h.shape[2]) - k + 1, int(h.shape[3]) - k + 1
    patches = tf.concat([h[:, :, i : i + height, j : j + width, :] for i in range(k) for j in range(k)], axis=-1)
    z = tf.matmul(tf.reshape(patches, [n, -1, k * k * c]), tf.reshape(kernel, [n, k * k * c, f]))
    return tf.reshape(z, [n, rows, height, width, f])


def forward(net, x):
    """Every layer's output, logits last, of x: (N, rows, features), or (rows, features) for all replicas.

    Conv and pooling layers give (N, rows, height, width, channels), dense
    layers (N, rows, width); a dense layer takes its input flattened as
    Keras's Flatten does (height, width, channels).
    """
    import tensorflow as tf

    lay, n = net.conv, net.n
    if len(x.shape) == 2:
        x = tf.broadcast_to(x, [n, *x.shape])
    rows = x.shape[1]
    h, outs = tf.reshape(x, [n, rows, *lay.image]), []
    for i in range(lay.n_conv):
        h = activate(net.acts[i], conv(h, net.kernels[i]) + net.biases[i][:, None, None, None, :])
        outs.append(h)
    if lay.pool is not None:
        p, shape = lay.pool, [int(d) for d in h.shape[2:]]
        pooled = tf.nn.max_pool2d(tf.reshape(h, [-1, *shape]), p, p, "VALID")
        h = tf.reshape(pooled, [n, rows, *pooled.shape[1:]])
        outs.append(h)
    h = tf.reshape(h, [n, rows, -1])
    for i in range(lay.n_conv, len(net.kernels)):
        h = activate(net.acts[i], tf.matmul(h, net.kernels[i]) + net.biases[i][:, None, :])
        outs.append(h)
    return outs


def layer_names(net) -> list[str]:
    """The model alone's Keras layer names (models/cnn.py): layer_1 .. for conv, pooling and dense layers."""
    lay = net.conv
    return [f"layer_{i + 1}" for i in range(len(net.kernels) + (lay.pool is not None))]


def weighted_layers(net) -> list[int]:
    """Indices of the layers with weights among :func:`layer_names` (all but the pooling layer)."""
    lay = net.conv
    names = range(len(layer_names(net)))
    return [i for i in names if lay.pool is None or i != lay.n_conv]


def plain_orders(order_seeds, epochs: int, n: int):
    """The replicas' minibatch orders of epochs 1 .. ``epochs``: int32 (epochs, N, n), drawn in a plain graph.

    [e - 1, r] is ``minibatch_order(order_seeds[r], e, n)`` as the CNN core alone
    draws it (not under XLA): the same keys, stateless uniform draws and argsort
    (tests/test_array_cnn.py: bit-identical).
    """
    import tensorflow as tf

    keys = tf.constant([[s, e] for e in range(1, epochs + 1) for s in order_seeds], tf.int32)

    @tf.function(jit_compile=False, autograph=False)
    def draw():
        u = tf.map_fn(lambda key: tf.random.stateless_uniform([n], seed=key), keys, fn_output_signature=tf.float32)
        return tf.argsort(u, axis=-1)

    return tf.reshape(draw(), [epochs, len(order_seeds), n])


def too_big(cfg) -> str | None:
    """Why a CNN trial cannot be an array replica (its evaluation would not fit in one pass), else None.

    The array evaluates the whole training and test sets in one pass per replica; the core alone evaluates a
    CNN in chunks of :data:`ib_sweeps.train.EVAL_BYTES` of activity (the rule of
    :func:`~ib_sweeps.train.evaluation.eval_rows`, here with the registry's input shape and class count, before
    loading), and where it would chunk (MNIST-size CNNs) the trial runs alone.
    """
    from ib_sweeps import config, data, train
    from ib_sweeps.train.evaluation import eval_rows

    rows = config.measured_inputs(cfg.data.model_copy(update={"measure_on": "all", "measure_size": None}))
    chunk = eval_rows(cfg.model, data.DATASETS[cfg.data.name], train.EVAL_BYTES)
    if chunk is not None and chunk < rows:
        return (
            f"model.kind: cnn on {cfg.data.name}: the core alone evaluates it in chunks of {chunk} inputs "
            f"({train.EVAL_BYTES / 2**20:.0f} MiB of activity), fewer than its {rows}, an array replica in one pass; "
            "such trials run alone"
        )
    return None
