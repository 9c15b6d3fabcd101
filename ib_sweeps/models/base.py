"""The model plug-in contract, and what every kind shares: activations, initialisers, quantization.

A model kind is a :class:`ModelKind`: it owns its pydantic config class (the
``model:`` section, told apart by ``kind``), builds its Keras layers (the
measured layers in order, the last one emitting logits), knows the activity
shape of each layer and its parameter count without building anything, says
which data sets it can take, and how the training core should compile it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
from pydantic import BaseModel, Field, PlainSerializer, PlainValidator

from ib_sweeps.types import MAX_WIDTH

# Keras activation names accepted per layer.
ACTIVATIONS = (
    "tanh",
    "relu",
    "relu6",
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
# Output range of the bounded activations a quantized network may use (model.quantize_levels). relu6
# (min(max(x, 0), 6)) is the bounded ReLU: quantized ReLU networks use it (Lorenzen et al. 2022's contrast).
BOUNDED_RANGES = {"tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu6": (0.0, 6.0)}

Width = Annotated[int, Field(strict=True, gt=0, le=MAX_WIDTH)]  # units of a dense layer, filters of a convolution


def _activation(v):
    names = [v] if isinstance(v, str) else v
    if isinstance(names, list | tuple) and names and all(isinstance(n, str) for n in names):
        bad = [n for n in names if n not in ACTIVATIONS]
        if not bad:
            return v if isinstance(v, str) else tuple(v)
    raise ValueError(f"got {v!r}; allowed: one of {', '.join(ACTIVATIONS)}, or a list of them (one per hidden layer)")


# One activation name, or one per layer (a list is kept as a tuple and written back as a list).
Activation = Annotated[
    str | tuple[str, ...],
    PlainValidator(_activation),
    PlainSerializer(lambda v: v if isinstance(v, str) else list(v)),
]


class ModelKind:
    """Base class of a model kind; one instance per kind in :data:`ib_sweeps.models.REGISTRY`.

    Every config class (``config``) has ``kind``, ``activation``, ``init`` and
    ``init_std``, and answers ``noise_std`` and ``quantize_levels`` (None for a
    kind without them: a field, or a property that is always None), so no
    caller needs to ask which kind it holds. Shapes are per input, without the
    batch axis; ``data_shape`` is a data set's ``input_shape`` (``(12,)``,
    ``(8, 8, 1)``, channels last).
    """

    name: ClassVar[str]
    config: ClassVar[type[BaseModel]]
    jit: ClassVar[bool] = True  # compile the training graph with XLA by default (else a plain graph)
    chunked_eval: ClassVar[bool] = False  # evaluate in chunks (large activity per input), not in one pass
    width_key: ClassVar[str]  # the config key that sizes the model (named when a trial would not fit in memory)

    def n_hidden(self, cfg) -> int:
        """Layers with an activation before the output (one activation name each)."""
        raise NotImplementedError

    def n_layers(self, cfg) -> int:
        """Measured layers, the output included."""
        raise NotImplementedError

    def input_shape(self, cfg, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one input as the model takes it (the core reshapes the flat rows to it)."""
        raise NotImplementedError

    def shapes(self, cfg, data_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Activity shape of each measured layer before the output, for inputs of ``data_shape``."""
        raise NotImplementedError

    def count_params(self, cfg, data_shape: tuple[int, ...], n_classes: int) -> int:
        """Number of weights and biases for inputs of ``data_shape`` and ``n_classes`` outputs."""
        raise NotImplementedError

    def noise_widths(self, cfg) -> tuple[int, ...]:
        """Units of each hidden layer that takes noise (``noise_std``); () for a kind without noise."""
        return ()

    def check_data(self, cfg, name: str) -> None:
        """Raise ValueError (naming what is allowed) if the model cannot take the registered data set ``name``."""

    def build(self, cfg, data_shape: tuple[int, ...], n_classes: int, seed: int) -> list:
        """Built Keras layers, the measured layers in order (``layer_1`` ...), weights drawn from ``seed``."""
        raise NotImplementedError

    def activity_floats(self, cfg, data_shape: tuple[int, ...], n_classes: int) -> int:
        """Floats of activity one input produces over all measured layers (4 bytes each)."""
        return sum(int(np.prod(s)) for s in self.shapes(cfg, data_shape)) + n_classes


def layer_activations(cfg, n_hidden: int) -> list[str]:
    """One activation name per hidden layer (a single name applies to all ``n_hidden``)."""
    act = cfg.activation
    return [act] * n_hidden if isinstance(act, str) else list(act)


def initializers(cfg, fan_in: int, seed: int):
    """(kernel, bias) initialisers of one layer with ``fan_in`` inputs."""
    import keras

    if cfg.init == "keras_default":
        return keras.initializers.GlorotUniform(seed=seed), "zeros"
    # As in the Shwartz-Ziv & Tishby code: truncated normal, std 1/sqrt(fan_in), zero bias.
    std = cfg.init_std if cfg.init_std is not None else 1.0 / np.sqrt(fan_in)
    return keras.initializers.TruncatedNormal(stddev=std, seed=seed), "zeros"


def check_init_std(cfg) -> None:
    if cfg.init_std is not None and cfg.init != "truncated_normal":
        raise ValueError(f"init_std: only used with init: truncated_normal, not {cfg.init!r}")


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
