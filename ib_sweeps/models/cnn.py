"""A small CNN (``model.kind: cnn``) with a softmax output.

The Keras MNIST example without dropout, as in the 2019 report "Information
bottleneck theory: extensions to convolutional neural networks and the
stochastic gradient hypothesis" (Listing 1): Conv2D 32 3x3 -> Conv2D 64 3x3 ->
MaxPool 2x2 -> Flatten -> Dense 128 -> Dense 10, ReLU, "valid" padding.
Measured layers: each convolution, the pooling layer, each dense layer and the
output (the report's layers 0-5 less Flatten, whose activity is the pooling
layer's, reshaped). Convolutional activity is (n, height, width, channels);
estimators reduce it by their ``reducer``. The training core reshapes the flat
inputs to the image shape and flattens the input of the first Dense layer.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from ib_sweeps.models.base import Activation, ModelKind, Width, check_init_std, initializers, layer_activations
from ib_sweeps.types import FROZEN, MAX_LAYERS, Int, PositiveFloat, PositiveInt


class CNNConfig(BaseModel):
    """A small CNN (``kind: cnn``): convolutions, one max-pooling layer, dense layers, softmax output.

    ``conv``: filters of each Conv2D (``kernel`` x ``kernel``, stride 1, "valid");
    ``pool``: the max-pooling window and stride (null: no pooling layer);
    ``dense``: widths of the Dense layers after flattening (may be empty).
    Defaults: the Keras MNIST example without dropout, as in the 2019 CNN
    information-bottleneck report (32, 64 filters 3x3, pool 2, Dense 128, ReLU,
    Glorot uniform). Needs a data set of images (``Dataset.input_shape`` (h, w, c)).
    """

    model_config = FROZEN
    kind: Literal["cnn"]
    conv: Annotated[tuple[Width, ...], Field(min_length=1, max_length=MAX_LAYERS)] = (32, 64)
    kernel: PositiveInt = 3
    pool: Annotated[Int, Field(ge=2)] | None = 2
    dense: Annotated[tuple[Width, ...], Field(max_length=MAX_LAYERS)] = (128,)
    activation: Activation = "relu"
    init: Literal["truncated_normal", "keras_default"] = "keras_default"
    init_std: PositiveFloat | None = None

    # The CNN is deterministic and continuous: no noise, no quantization (not keys of its config).
    @property
    def noise_std(self) -> None:
        return None

    @property
    def quantize_levels(self) -> None:
        return None

    @model_validator(mode="after")
    def _per_layer(self):
        n = len(self.conv) + len(self.dense)
        if not isinstance(self.activation, str) and len(self.activation) != n:
            raise ValueError(
                f"activation: lists {len(self.activation)} activations but the CNN has {n} layers with one "
                f"({len(self.conv)} conv + {len(self.dense)} dense); allowed: one name, or one per conv and dense layer"
            )
        check_init_std(self)
        return self


class CNN(ModelKind):
    """Convolutions, max pooling and dense layers on images (h, w, c); trained as a plain graph, evaluated in chunks.

    No XLA: its CPU convolutions are ~20x slower than TensorFlow's oneDNN ones
    (``benchmarks/bench_cnn.py``).
    """

    name = "cnn"
    config = CNNConfig
    jit = False
    chunked_eval = True
    width_key = "model.conv"

    def n_hidden(self, cfg) -> int:
        return len(cfg.conv) + len(cfg.dense)

    def n_layers(self, cfg) -> int:
        return len(cfg.conv) + (cfg.pool is not None) + len(cfg.dense) + 1

    def input_shape(self, cfg, data_shape):
        return tuple(data_shape)

    def shapes(self, cfg, data_shape):
        """Convolutions are "valid" (each shrinks height and width by kernel - 1), pooling floors (h // pool).

        A size below 1 means the image is too small.
        """
        h, w, _ = data_shape
        shapes = []
        for filters in cfg.conv:
            h, w = h - cfg.kernel + 1, w - cfg.kernel + 1
            shapes.append((h, w, filters))
        if cfg.pool is not None:
            h, w = h // cfg.pool, w // cfg.pool
            shapes.append((h, w, cfg.conv[-1]))
        return shapes + [(width,) for width in cfg.dense]

    def count_params(self, cfg, data_shape, n_classes):
        total, channels = 0, data_shape[-1]
        for filters in cfg.conv:
            total += (cfg.kernel * cfg.kernel * channels + 1) * filters
            channels = filters
        last_map = self.shapes(cfg, data_shape)[len(cfg.conv) + (cfg.pool is not None) - 1]  # what Flatten gets
        widths = [int(np.prod(last_map)), *cfg.dense, n_classes]
        return total + sum((a + 1) * b for a, b in itertools.pairwise(widths))

    def check_data(self, cfg, name):
        """A CNN needs images, large enough to survive its convolutions and pooling."""
        from ib_sweeps import data

        shape = data.DATASETS[name].input_shape
        if shape is None or len(shape) != 3:
            images = ", ".join(n for n, s in data.DATASETS.items() if s.input_shape and len(s.input_shape) == 3)
            raise ValueError(
                f"model: kind 'cnn' needs images (height, width, channels), but data set {name!r} has inputs of "
                f"shape {shape}; allowed: kind mlp, or a data set of images ({images})"
            )
        sizes = self.shapes(cfg, shape)
        if min(min(s) for s in sizes) < 1:
            raise ValueError(
                f"model: conv {list(cfg.conv)} with kernel {cfg.kernel} and pool {cfg.pool} shrink the "
                f"{shape[0]}x{shape[1]} images of {name} to nothing (activity shapes {sizes}); allowed: fewer or "
                "smaller convolutions, a smaller pool, or pool: null"
            )

    def build(self, cfg, data_shape, n_classes, seed):
        """Conv2D per ``cfg.conv``, MaxPooling2D, Dense per ``cfg.dense``, logits.

        One derived seed per layer with weights. The first Dense layer is built
        for the flattened activity before it.
        """
        import keras

        acts = layer_activations(cfg, self.n_hidden(cfg))
        seeds = iter(np.random.SeedSequence(seed).generate_state(self.n_hidden(cfg) + 1))
        image_shape = tuple(data_shape)
        layers, shape, channels = [], (None, *image_shape), image_shape[-1]

        def add(layer):
            layer.build(shape)
            layers.append(layer)
            return (None, *layer.compute_output_shape(shape)[1:])

        for filters, act in zip(cfg.conv, acts, strict=False):
            kernel, bias = initializers(cfg, cfg.kernel * cfg.kernel * channels, int(next(seeds)))
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
            kernel, bias = initializers(cfg, shape[1], int(next(seeds)))
            dense = keras.layers.Dense(
                width, activation=act, kernel_initializer=kernel, bias_initializer=bias, name=f"layer_{len(layers) + 1}"
            )
            shape = add(dense)
        return layers
