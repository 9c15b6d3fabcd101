"""Model builders: an MLP of Keras Dense layers, or a small CNN, with a softmax output.

A builder returns the layers in order; the training core chains them itself,
so every layer's activity comes out of one forward pass, and every layer it
returns is a measured layer (``layer_1`` ...). The last layer emits logits; its
recorded activity is their softmax.

The CNN (``model.kind: cnn``) is the Keras MNIST example without dropout, as in
the 2019 report "Information bottleneck theory: extensions to convolutional
neural networks and the stochastic gradient hypothesis" (Listing 1): Conv2D 32
3x3 -> Conv2D 64 3x3 -> MaxPool 2x2 -> Flatten -> Dense 128 -> Dense 10, ReLU,
"valid" padding. Measured layers: each convolution, the pooling layer, each
dense layer and the output (the report's layers 0-5 less Flatten, whose
activity is the pooling layer's, reshaped). Convolutional activity is
(n, height, width, channels); estimators reduce it by their ``reducer``. The
training core reshapes the flat inputs to the image shape and flattens the
input of the first Dense layer.
"""

from __future__ import annotations

import itertools

import numpy as np

# Keras activation names accepted per layer.
ACTIVATIONS = (
    "tanh",
    "relu",
    "sigmoid",
    "linear",
    "softsign",
    "softplus",
    "elu",
    "leaky_relu",
    "selu",
    "gelu",
    "swish",
)
INITS = ("truncated_normal", "keras_default")


def n_hidden(cfg) -> int:
    """Number of layers with an activation before the output (convolutions and dense layers; not pooling)."""
    return len(cfg.conv) + len(cfg.dense) if cfg.kind == "cnn" else len(cfg.hidden)


def layer_activations(cfg) -> list[str]:
    """One activation name per hidden layer (a single name applies to all)."""
    act = cfg.activation
    return [act] * n_hidden(cfg) if isinstance(act, str) else list(act)


def input_shape(cfg, data_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one input as the model takes it: flat for an MLP, the data set's image shape for a CNN."""
    return tuple(data_shape) if cfg.kind == "cnn" else (int(np.prod(data_shape)),)


def cnn_shapes(cfg, image_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Activity shape (without the input axis) of each hidden layer of a CNN on ``image_shape`` (h, w, c).

    Convolutions are "valid" (each shrinks height and width by kernel - 1),
    pooling floors (h // pool). A size below 1 means the image is too small.
    """
    h, w, _ = image_shape
    shapes = []
    for filters in cfg.conv:
        h, w = h - cfg.kernel + 1, w - cfg.kernel + 1
        shapes.append((h, w, filters))
    if cfg.pool is not None:
        h, w = h // cfg.pool, w // cfg.pool
        shapes.append((h, w, cfg.conv[-1]))
    return shapes + [(width,) for width in cfg.dense]


def count_params(cfg, data_shape: tuple[int, ...], n_classes: int) -> int:
    """Number of weights and biases of the model for inputs of ``data_shape`` (e.g. ``(12,)``, ``(8, 8, 1)``)."""
    if cfg.kind != "cnn":
        widths = [int(np.prod(data_shape)), *cfg.hidden, n_classes]
        return sum((a + 1) * b for a, b in itertools.pairwise(widths))
    total, channels = 0, data_shape[-1]
    for filters in cfg.conv:
        total += (cfg.kernel * cfg.kernel * channels + 1) * filters
        channels = filters
    last_map = cnn_shapes(cfg, data_shape)[len(cfg.conv) + (cfg.pool is not None) - 1]  # what Flatten gets
    widths = [int(np.prod(last_map)), *cfg.dense, n_classes]
    return total + sum((a + 1) * b for a, b in itertools.pairwise(widths))


def activity_floats(cfg, data_shape: tuple[int, ...], n_classes: int) -> int:
    """Floats of activity one input produces over all measured layers (4 bytes each)."""
    if cfg.kind != "cnn":
        return sum(cfg.hidden) + n_classes
    return sum(int(np.prod(s)) for s in cnn_shapes(cfg, data_shape)) + n_classes


def _initializers(cfg, fan_in: int, seed: int):
    import keras

    if cfg.init == "keras_default":
        return keras.initializers.GlorotUniform(seed=seed), "zeros"
    # As in the Shwartz-Ziv & Tishby code: truncated normal, std 1/sqrt(fan_in), zero bias.
    std = cfg.init_std if cfg.init_std is not None else 1.0 / np.sqrt(fan_in)
    return keras.initializers.TruncatedNormal(stddev=std, seed=seed), "zeros"


def build_mlp(cfg, n_inputs: int, n_classes: int, seed: int) -> list:
    """Built Keras Dense layers: hidden widths ``cfg.hidden`` then ``n_classes`` logits.

    Weights are drawn from ``seed`` (one derived seed per layer).
    """
    import keras

    seeds = np.random.SeedSequence(seed).generate_state(len(cfg.hidden) + 1)
    widths = [*cfg.hidden, n_classes]
    acts = [*layer_activations(cfg), "linear"]
    layers, fan_in = [], n_inputs
    for i, (width, act) in enumerate(zip(widths, acts, strict=True)):
        kernel, bias = _initializers(cfg, fan_in, int(seeds[i]))
        name = f"layer_{i + 1}"
        layer = keras.layers.Dense(width, activation=act, kernel_initializer=kernel, bias_initializer=bias, name=name)
        layer.build((None, fan_in))
        layers.append(layer)
        fan_in = width
    return layers


def build(cfg, data_shape: tuple[int, ...], n_classes: int, seed: int) -> list:
    """Built Keras layers of the model ``cfg.kind`` for inputs of ``data_shape``, the measured layers in order."""
    if cfg.kind == "cnn":
        return build_cnn(cfg, tuple(data_shape), n_classes, seed)
    return build_mlp(cfg, int(np.prod(data_shape)), n_classes, seed)


def build_cnn(cfg, image_shape: tuple[int, ...], n_classes: int, seed: int) -> list:
    """Built Keras layers of the CNN: Conv2D per ``cfg.conv``, MaxPooling2D, Dense per ``cfg.dense``, logits.

    Weights are drawn from ``seed`` (one derived seed per layer with weights).
    The first Dense layer is built for the flattened activity before it.
    """
    import keras

    acts = layer_activations(cfg)
    seeds = iter(np.random.SeedSequence(seed).generate_state(n_hidden(cfg) + 1))
    layers, shape, channels = [], (None, *image_shape), image_shape[-1]

    def add(layer):
        layer.build(shape)
        layers.append(layer)
        return (None, *layer.compute_output_shape(shape)[1:])

    for filters, act in zip(cfg.conv, acts, strict=False):
        kernel, bias = _initializers(cfg, cfg.kernel * cfg.kernel * channels, int(next(seeds)))
        conv = keras.layers.Conv2D(
            filters,
            cfg.kernel,
            activation=act,
            kernel_initializer=kernel,
            bias_initializer=bias,
            name=f"layer_{len(layers) + 1}",
        )
        shape, channels = add(conv), filters
    if cfg.pool is not None:
        shape = add(keras.layers.MaxPooling2D(cfg.pool, name=f"layer_{len(layers) + 1}"))
    shape = (None, int(np.prod(shape[1:])))  # Flatten: the core flattens a Dense layer's input
    for width, act in zip([*cfg.dense, n_classes], [*acts[len(cfg.conv) :], "linear"], strict=True):
        kernel, bias = _initializers(cfg, shape[1], int(next(seeds)))
        dense = keras.layers.Dense(
            width, activation=act, kernel_initializer=kernel, bias_initializer=bias, name=f"layer_{len(layers) + 1}"
        )
        shape = add(dense)
    return layers


# Output range of the bounded activations a quantized network may use (model.quantize_levels).
BOUNDED_RANGES = {"tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def quantize(h, activation: str, levels: int):
    """``h`` (a tensor of ``activation`` outputs) rounded to the nearest of ``levels`` uniform levels.

    The levels span the activation's range (:data:`BOUNDED_RANGES`), both ends
    included (2 levels of tanh: -1 and 1). Straight-through gradient (Bengio,
    Leonard & Courville 2013): the backward pass is the identity, so the
    gradient is that of the unquantized activation. The forward value is
    ``lo + i * (hi - lo) / (levels - 1)`` for an integer i, one float32 per i,
    so each unit takes at most ``levels`` distinct values.
    """
    import tensorflow as tf

    lo, hi = BOUNDED_RANGES[activation]
    step = (hi - lo) / (levels - 1)

    @tf.custom_gradient
    def straight_through(x):
        index = tf.clip_by_value(tf.round((x - lo) / step), 0.0, levels - 1.0)
        # index * (hi - lo) is exact, so the top level is hi itself (lo + index * step can miss it by an ulp).
        return lo + index * (hi - lo) / (levels - 1), lambda dy: dy

    return straight_through(h)
