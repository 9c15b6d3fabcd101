"""Model builders: an MLP of Keras Dense layers with a softmax output.

The builder returns the layers in order; the training core chains them itself,
so every layer's activity comes out of one forward pass. The last layer emits
logits; its recorded activity is their softmax.
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


def layer_activations(cfg) -> list[str]:
    """One activation name per hidden layer (a single name applies to all)."""
    act = cfg.activation
    return [act] * len(cfg.hidden) if isinstance(act, str) else list(act)


def count_params(cfg, n_inputs: int, n_classes: int) -> int:
    """Number of weights and biases of the MLP."""
    widths = [n_inputs, *cfg.hidden, n_classes]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


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
