"""Model kinds: one registry from ``model.kind`` to :class:`~ib_sweeps.models.base.ModelKind`.

A builder returns the layers in order; the training core chains them itself,
so every layer's activity comes out of one forward pass, and every layer it
returns is a measured layer (``layer_1`` ...). The last layer emits logits; its
recorded activity is their softmax. Kinds: ``mlp`` (:mod:`~ib_sweeps.models.mlp`,
the default) and ``cnn`` (:mod:`~ib_sweeps.models.cnn`). The functions below
take a model config and dispatch on its ``kind``.

>>> from ib_sweeps import models
>>> models.available()
['cnn', 'mlp']
"""

from __future__ import annotations

from ib_sweeps.models import base
from ib_sweeps.models.base import (
    ACTIVATIONS,
    BOUNDED_RANGES,
    INITS,
    Activation,
    ModelKind,
    Width,
    quantize,
)
from ib_sweeps.models.cnn import CNN, CNNConfig
from ib_sweeps.models.mlp import MLP, ModelConfig

REGISTRY: dict[str, ModelKind] = {"mlp": MLP(), "cnn": CNN()}
DEFAULT = "mlp"  # the kind of a config without ``model.kind``; not dumped, so MLP configs keep their hashes
# Config class of each kind, for the ``model:`` section of a trial config.
CONFIGS = {name: kind.config for name, kind in REGISTRY.items()}

__all__ = [
    "ACTIVATIONS",
    "BOUNDED_RANGES",
    "CONFIGS",
    "DEFAULT",
    "INITS",
    "REGISTRY",
    "Activation",
    "CNNConfig",
    "ModelConfig",
    "ModelKind",
    "Width",
    "activity_floats",
    "available",
    "build",
    "cnn_shapes",
    "count_params",
    "get",
    "input_shape",
    "layer_activations",
    "n_hidden",
    "quantize",
]


def available() -> list[str]:
    """Names of all registered model kinds."""
    return sorted(REGISTRY)


def get(kind: str) -> ModelKind:
    """The model kind ``kind``; ``ValueError`` naming the valid kinds."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown model kind {kind!r}; available: {', '.join(available())}")
    return REGISTRY[kind]


def of(cfg) -> ModelKind:
    """The model kind of a model config."""
    return get(cfg.kind)


def n_hidden(cfg) -> int:
    """Number of layers with an activation before the output (convolutions and dense layers; not pooling)."""
    return of(cfg).n_hidden(cfg)


def n_layers(cfg) -> int:
    """Number of measured layers, the output included."""
    return of(cfg).n_layers(cfg)


def layer_activations(cfg) -> list[str]:
    """One activation name per hidden layer (a single name applies to all)."""
    return base.layer_activations(cfg, n_hidden(cfg))


def input_shape(cfg, data_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one input as the model takes it: flat for an MLP, the data set's image shape for a CNN."""
    return of(cfg).input_shape(cfg, data_shape)


def shapes(cfg, data_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Activity shape (without the input axis) of each hidden layer on inputs of ``data_shape``."""
    return of(cfg).shapes(cfg, data_shape)


def cnn_shapes(cfg, image_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Activity shape (without the input axis) of each hidden layer of a CNN on ``image_shape`` (h, w, c)."""
    return REGISTRY["cnn"].shapes(cfg, image_shape)


def count_params(cfg, data_shape: tuple[int, ...], n_classes: int) -> int:
    """Number of weights and biases of the model for inputs of ``data_shape`` (e.g. ``(12,)``, ``(8, 8, 1)``)."""
    return of(cfg).count_params(cfg, data_shape, n_classes)


def activity_floats(cfg, data_shape: tuple[int, ...], n_classes: int) -> int:
    """Floats of activity one input produces over all measured layers (4 bytes each)."""
    return of(cfg).activity_floats(cfg, data_shape, n_classes)


def build(cfg, data_shape: tuple[int, ...], n_classes: int, seed: int) -> list:
    """Built Keras layers of the model ``cfg.kind`` for inputs of ``data_shape``, the measured layers in order."""
    return of(cfg).build(cfg, tuple(data_shape), n_classes, seed)
