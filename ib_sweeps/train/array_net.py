"""A trial array's network: N MLPs as stacked variables, their batched forward pass and loss.

Noisy and quantized replicas (``model.noise_std``, ``model.quantize_levels``,
equal for all) transform hidden outputs as :func:`~ib_sweeps.train.hidden_output`
does alone; replica r's noise is drawn with its own keys
(:func:`~ib_sweeps.train.noise_key` of its :func:`~ib_sweeps.train.noise_seed`),
one (rows, all hidden units) draw per pass as :class:`~ib_sweeps.train.noise.Noise`
draws it, so it gets exactly the numbers the core alone draws.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ib_sweeps import models
from ib_sweeps.train.noise import noise_key, noise_seed


@dataclass(frozen=True)
class ArrayNet:
    """N MLPs as stacked variables: ``kernels[i]`` (N, fan_in, width), ``biases[i]`` (N, width).

    ``acts[i]``: layer i's activation name per replica ("linear" for the output).
    ``levels``: quantization levels of hidden outputs (None: none); ``noise_std``:
    hidden-output noise (0: none), ``noise_seeds`` each replica's noise seed.
    ``conv``: CNN replicas' :class:`~ib_sweeps.train.array_cnn.ConvLayout` (their
    first kernels are conv kernels (N, k, k, c_in, filters)); None for MLPs.
    """

    kernels: list
    biases: list
    acts: list[list[str]]
    levels: int | None = None
    noise_std: float = 0.0
    noise_seeds: tuple[int, ...] = ()
    conv: object = None

    @property
    def noisy(self) -> bool:
        return bool(self.noise_std)

    @property
    def variables(self) -> list:
        """Kernel and bias of each layer in turn (the single core's variable order)."""
        return [v for pair in zip(self.kernels, self.biases, strict=True) for v in pair]

    @property
    def n(self) -> int:
        return int(self.kernels[0].shape[0])

    @property
    def layer_names(self) -> list[str]:
        """The single core's Keras layer names (models/mlp.py, models/cnn.py), one per measured layer."""
        if self.conv is not None:
            from ib_sweeps.train import array_cnn

            return array_cnn.layer_names(self)
        return [f"layer_{i + 1}" for i in range(len(self.kernels))]


def build_array_net(model_cfgs, data, init_seeds, seeds) -> ArrayNet:
    """The replicas' layers drawn by :func:`ib_sweeps.models.build`, as :func:`build_network` draws them, stacked."""
    import tensorflow as tf

    if model_cfgs[0].kind == "cnn":
        from ib_sweeps.train.array_cnn import build_cnn_net

        return build_cnn_net(model_cfgs, data, init_seeds)
    nets = [models.build(c, data.input_shape, data.n_classes, s) for c, s in zip(model_cfgs, init_seeds, strict=True)]
    kernels = [tf.Variable(np.stack([net[i].kernel.numpy() for net in nets])) for i in range(len(nets[0]))]
    biases = [tf.Variable(np.stack([net[i].bias.numpy() for net in nets])) for i in range(len(nets[0]))]
    acts = [[*models.layer_activations(c), "linear"] for c in model_cfgs]
    cfg = model_cfgs[0]
    noise = tuple(noise_seed(s) for s in seeds) if cfg.noise_std else ()
    acts = [list(layer) for layer in zip(*acts, strict=True)]
    return ArrayNet(kernels, biases, acts, cfg.quantize_levels, cfg.noise_std or 0.0, noise)


def draw_noise(net: ArrayNet, stream: int, epoch, *path, rows: int, feature_major: bool = True):
    """Standard normal noise (N, hidden units, rows) of one pass, replica r's as the core alone draws it; None
    for a noiseless net. Feature-major (transposed), as :func:`forward` computes; else (N, rows, hidden units)."""
    import tensorflow as tf

    if not net.noisy:
        return None
    units = sum(int(k.shape[-1]) for k in net.kernels[:-1])
    draws = tf.stack(
        [
            tf.random.stateless_normal([rows, units], noise_key(s, stream, epoch, *path), alg="philox")
            for s in net.noise_seeds
        ]
    )
    return tf.transpose(draws, [0, 2, 1]) if feature_major else draws


def activate(names: list[str], h, levels: int | None = None):
    """Each replica's slice of h (N, ...) through its activation, one slice per run of equal names.

    Sweeps put replicas of one activation next to each other, so there are few
    runs; slices and one concat cost less than a gather in and out (no cross-talk either way).
    """
    import keras
    import tensorflow as tf

    def act(name, part):  # as Dense then hidden_output alone: the activation, then quantized
        out = keras.activations.get(name)(part)
        return out if levels is None else models.quantize(out, name, levels)

    runs = [(name, len(list(group))) for name, group in itertools.groupby(names)]
    if len(runs) == 1:
        return act(names[0], h)
    parts = tf.split(h, [size for _, size in runs], axis=0)
    return tf.concat([act(name, part) for (name, _), part in zip(runs, parts, strict=True)], 0)


def forward(net: ArrayNet, x, noise=None):
    """Every layer's output (N, rows, width), logits last, of x: (N, rows, features), or (rows, features) for all.

    ``noise``: :func:`draw_noise` of this pass (None: noiseless). Computed
    feature-major, (N, width, rows): each batched matmul then runs along
    the long rows axis, ~1.3x faster on CPU with XLA than (N, rows, width) (measured,
    N = 5 and 30). A shared x (rows, features) enters as one matmul for all replicas.
    CNN replicas (``net.conv``): :func:`ib_sweeps.train.array_cnn.forward` (conv
    and pooling outputs (N, rows, height, width, channels); never noisy).
    """
    import tensorflow as tf

    if net.conv is not None:
        from ib_sweeps.train.array_cnn import forward as cnn_forward

        return cnn_forward(net, x)

    outs, h, cut = [], tf.transpose(x, [0, 2, 1] if len(x.shape) == 3 else [1, 0]), 0
    last = len(net.kernels) - 1
    for i, (kernel, bias, names) in enumerate(zip(net.kernels, net.biases, net.acts, strict=True)):
        z = (
            tf.einsum("nio,ib->nob", kernel, h)
            if i == 0 and len(h.shape) == 2
            else tf.matmul(kernel, h, transpose_a=True)
        )
        h = activate(names, z + bias[:, :, None], net.levels if i < last else None)
        if noise is not None and i < last:
            width = int(kernel.shape[-1])
            h = h + net.noise_std * noise[:, cut : cut + width]
            cut += width
        outs.append(h)
    return [tf.transpose(h, [0, 2, 1]) for h in outs]


def xent(net: ArrayNet, x, y, noise=None):
    """(mean cross-entropy (N,), logits (N, rows, classes)) of each replica on x, labels y (N, rows) or (rows,)."""
    import tensorflow as tf

    logits = forward(net, x, noise)[-1]
    y = tf.broadcast_to(y, tf.shape(logits)[:2])
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), axis=1), logits


def noiseless_outputs(net: ArrayNet, x, noise):
    """noisy_sp's S_l: every layer's output (N, rows, width) before its own noise, logits last; the next layer
    takes it with the noise. x: (N, rows, features) or (rows, features); ``noise`` (N, rows, hidden units):
    :func:`draw_noise`, not feature-major.

    Rows-major, as the single core's Dense layers compute (x @ kernel + bias), so each replica's batched matmul
    rounds as its matmul alone: replica r's hidden outputs are the core alone's bit for bit, its logits (and
    softmax) to float rounding, a few ulp (measured on CPU with XLA: tests/test_array_core.py);
    :func:`forward`'s faster feature-major matmuls round every layer differently (about 1 ulp).
    """
    import tensorflow as tf

    outs, h, cut = [], x, 0
    last = len(net.kernels) - 1
    for i, (kernel, bias, names) in enumerate(zip(net.kernels, net.biases, net.acts, strict=True)):
        z = tf.einsum("bi,nio->nbo", h, kernel) if len(h.shape) == 2 else tf.matmul(h, kernel)
        h = s = activate(names, z + bias[:, None, :], net.levels if i < last else None)
        if i < last:
            width = int(kernel.shape[-1])
            h = s + net.noise_std * noise[:, :, cut : cut + width]
            cut += width
        outs.append(s)
    return outs
