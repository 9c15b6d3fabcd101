"""The MLP (``model.kind: mlp``, the default): Keras Dense layers, hidden widths then the logits.

Optionally noisy (Goldfeld et al. 2019: N(0, noise_std^2) added to every
hidden output) or quantized (every hidden output rounded to one of k levels of
its bounded activation's range); the training core applies both.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from ib_sweeps.models.base import (
    BOUNDED_RANGES,
    Activation,
    ModelKind,
    Width,
    check_init_std,
    initializers,
    layer_activations,
)
from ib_sweeps.types import FROZEN, MAX_LAYERS, Float, Int, PositiveFloat


class ModelConfig(BaseModel):
    """MLP hidden widths, activation(s) and weight initialisation (``kind: mlp``, the default; not dumped)."""

    model_config = FROZEN
    kind: Literal["mlp"] = "mlp"
    hidden: Annotated[tuple[Width, ...], Field(min_length=1, max_length=MAX_LAYERS)] = (10, 7, 5, 4, 3)
    activation: Activation = "tanh"
    init: Literal["truncated_normal", "keras_default"] = "truncated_normal"
    init_std: PositiveFloat | None = None
    # Goldfeld et al. (2019): N(0, noise_std^2) added to every hidden layer's output, in training and
    # measurement (0 or absent: deterministic). Absent keys are not dumped, so hashes stay as they were.
    noise_std: Annotated[Float, Field(ge=0)] | None = None
    # Every hidden unit's output rounded to one of k levels over its (bounded) activation's range.
    quantize_levels: Annotated[Int, Field(ge=2)] | None = None

    @model_validator(mode="after")
    def _noise_and_levels(self):
        if self.quantize_levels is not None:
            unbounded = sorted(set(layer_activations(self, len(self.hidden))) - set(BOUNDED_RANGES))
            if unbounded:
                raise ValueError(
                    f"quantize_levels: got {self.quantize_levels} with model.activation {unbounded}; allowed only "
                    f"with bounded activations ({', '.join(BOUNDED_RANGES)}), whose range is cut into the levels"
                )
            if self.noise_std:
                raise ValueError(
                    f"quantize_levels: got {self.quantize_levels} with model.noise_std {self.noise_std}; allowed: "
                    "one of them (a quantized network is deterministic and discrete, a noisy one continuous)"
                )
        return self

    @model_validator(mode="after")
    def _per_layer(self):
        if not isinstance(self.activation, str) and len(self.activation) != len(self.hidden):
            raise ValueError(
                f"activation: lists {len(self.activation)} activations but model.hidden has "
                f"{len(self.hidden)} layers; allowed: one name, or one per hidden layer"
            )
        check_init_std(self)
        return self


class MLP(ModelKind):
    """Dense layers on the flattened input; any data set."""

    name = "mlp"
    config = ModelConfig
    width_key = "model.hidden"

    def n_hidden(self, cfg) -> int:
        return len(cfg.hidden)

    def n_layers(self, cfg) -> int:
        return len(cfg.hidden) + 1

    def input_shape(self, cfg, data_shape):
        return (int(np.prod(data_shape)),)

    def shapes(self, cfg, data_shape):
        return [(width,) for width in cfg.hidden]

    def count_params(self, cfg, data_shape, n_classes):
        widths = [int(np.prod(data_shape)), *cfg.hidden, n_classes]
        return sum((a + 1) * b for a, b in itertools.pairwise(widths))

    def noise_widths(self, cfg):
        return tuple(cfg.hidden)

    def build(self, cfg, data_shape, n_classes, seed):
        """Dense layers: hidden widths ``cfg.hidden`` then ``n_classes`` logits, one derived seed per layer."""
        import keras

        seeds = np.random.SeedSequence(seed).generate_state(len(cfg.hidden) + 1)
        widths = [*cfg.hidden, n_classes]
        acts = [*layer_activations(cfg, len(cfg.hidden)), "linear"]
        layers, fan_in = [], int(np.prod(data_shape))
        for i, (width, act) in enumerate(zip(widths, acts, strict=True)):
            kernel, bias = initializers(cfg, fan_in, int(seeds[i]))
            name = f"layer_{i + 1}"
            layer = keras.layers.Dense(
                width, activation=act, kernel_initializer=kernel, bias_initializer=bias, name=name
            )
            layer.build((None, fan_in))
            layers.append(layer)
            fan_in = width
        return layers
