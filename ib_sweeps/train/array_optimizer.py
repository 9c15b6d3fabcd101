"""A trial array's optimizer: Keras's Adam, SGD and Adadelta elementwise on stacked variables, a rate per replica."""

from __future__ import annotations

import numpy as np


class ArrayOptimizer:
    """Keras's Adam, (momentum) SGD or Adadelta, elementwise on stacked variables, a learning rate per replica.

    Keras 3's update formulas (``keras/src/optimizers/{adam,sgd,adadelta}.py``), op for op.
    """

    beta_1, beta_2, epsilon = 0.9, 0.999, 1e-7  # Keras's Adam defaults (make_optimizer sets only the rate)
    rho = 0.95  # Keras's Adadelta default (its epsilon is 1e-7 too)

    def __init__(self, train_cfgs, variables):
        import tensorflow as tf

        self.kind = train_cfgs[0].optimizer
        self.variables = variables
        lr = np.array([c.learning_rate for c in train_cfgs], np.float32)
        momentum = np.array([c.momentum for c in train_cfgs], np.float32)
        self.lr = [tf.constant(lr.reshape(-1, *[1] * (len(v.shape) - 1))) for v in variables]
        self.momentum = [tf.constant(momentum.reshape(-1, *[1] * (len(v.shape) - 1))) for v in variables]
        self.use_momentum = self.kind == "sgd" and bool(momentum.any())
        slots = 2 if self.kind in ("adam", "adadelta") else int(self.use_momentum)
        self.slots = [[tf.Variable(tf.zeros_like(v)) for v in variables] for _ in range(slots)]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads):
        import tensorflow as tf

        step = tf.cast(self.iterations + 1, tf.float32)
        for i, (g, var) in enumerate(zip(grads, self.variables, strict=True)):
            lr = self.lr[i]
            if self.kind == "adam":
                m, v = self.slots[0][i], self.slots[1][i]
                b1_power = tf.pow(tf.cast(self.beta_1, tf.float32), step)
                b2_power = tf.pow(tf.cast(self.beta_2, tf.float32), step)
                alpha = lr * tf.sqrt(1 - b2_power) / (1 - b1_power)
                m.assign_add((g - m) * (1 - self.beta_1))
                v.assign_add((tf.square(g) - v) * (1 - self.beta_2))
                var.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))
            elif self.kind == "adadelta":  # slots: accumulated squared gradients, accumulated squared updates
                acc_g, acc_d = self.slots[0][i], self.slots[1][i]
                acc_g.assign(self.rho * acc_g + (1 - self.rho) * tf.square(g))
                delta = -((tf.sqrt(acc_d + self.epsilon) * g) / tf.sqrt(acc_g + self.epsilon))
                acc_d.assign(self.rho * acc_d + (1 - self.rho) * tf.square(delta))
                var.assign_add(lr * delta)
            elif self.use_momentum:
                m = self.slots[0][i]
                m.assign(m * self.momentum[i] - g * lr)
                var.assign_add(m)
            else:
                var.assign_sub(g * lr)
        self.iterations.assign_add(1)
