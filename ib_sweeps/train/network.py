"""Model and optimizer set-up: the Keras layers, their variables in one flat order, the optimizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ib_sweeps import models


def split_seed(seed: int) -> tuple[int, int]:
    """(weight-initialisation seed, minibatch-order seed) of a core built with ``seed``."""
    init_seed, shuffle_seed = np.random.SeedSequence(seed).generate_state(2)
    return int(init_seed), int(shuffle_seed) & 0x7FFFFFFF


def make_optimizer(cfg):
    import keras

    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=cfg.learning_rate, momentum=cfg.momentum)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    return keras.optimizers.Adadelta(learning_rate=cfg.learning_rate)


@dataclass(frozen=True)
class Network:
    """The layers in order, their trainable variables (layer by layer) and the optimizer built for them.

    ``input_shape``: one example as the first layer takes it, (features,) for an
    MLP, (height, width, channels) for a CNN; the data sets stay flat (n, features).
    """

    layers: list
    variables: list
    optimizer: object
    input_shape: tuple

    @property
    def shapes(self) -> list[tuple]:
        """Shape of each variable, in the order of :func:`flat_weights`."""
        return [tuple(v.shape) for v in self.variables]

    @property
    def sizes(self) -> list[int]:
        """Number of values of each variable; they sum to n_params."""
        return [int(np.prod(shape)) for shape in self.shapes]


def build_network(model_cfg, train_cfg, data, init_seed: int) -> Network:
    """The model of ``model_cfg`` for ``data``, initialised from ``init_seed``, and its built optimizer."""
    layers = models.build(model_cfg, data.input_shape, data.n_classes, init_seed)
    shape = models.input_shape(model_cfg, data.input_shape)
    variables = [v for layer in layers for v in layer.trainable_variables]
    opt = make_optimizer(train_cfg)
    opt.build(variables)
    return Network(layers, variables, opt, shape)


def flat_weights(net: Network):
    """The live variables as one tensor (n_params,), variable by variable, each flattened."""
    import tensorflow as tf

    return tf.concat([tf.reshape(v, [-1]) for v in net.variables], axis=0)
