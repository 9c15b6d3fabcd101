"""Batching: each epoch's minibatch order, and the minibatches cut from it."""

from __future__ import annotations

from dataclasses import dataclass


def minibatch_order(order_seed: int, epoch, n: int):
    """The permutation (n,) int32 of the training examples in ``epoch`` (1, 2, ...), a tensor.

    Stateless: the same seed and epoch give the same order, in any call; but XLA
    draws other numbers than eager TensorFlow, so to see a compiled core's order
    call this in a ``tf.function(jit_compile=True)``. Batch b is rows
    ``b * batch_size ..`` of it, the last batch partial.
    """
    import tensorflow as tf

    key = tf.stack([tf.constant(order_seed, tf.int32), tf.cast(epoch, tf.int32)])
    return tf.argsort(tf.random.stateless_uniform([n], seed=key))


@dataclass(frozen=True)
class Minibatches:
    """The training set x (n, features), y (n,) cut into ``size`` rows a step, in a fresh order each epoch.

    ``n_full`` full batches, then one of ``rest`` rows if ``rest`` > 0.
    """

    x: object
    y: object
    order_seed: int
    size: int

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_full(self) -> int:
        return self.n // self.size

    @property
    def rest(self) -> int:
        return self.n % self.size

    @property
    def count(self) -> int:
        """Minibatches (steps) per epoch."""
        return self.n_full + (1 if self.rest else 0)

    def fold(self, epoch, step, carry):
        """``carry = step(b, xb, yb, carry)`` over epoch ``epoch``'s minibatches b = 0, 1, ...; the last carry.

        xb (size, features), yb (size,); the last batch may be smaller. ``b`` is
        a tensor in the loop over full batches, an int for the partial one.
        """
        import tensorflow as tf

        from ib_sweeps.train.loops import repeat

        order = minibatch_order(self.order_seed, epoch, self.n)
        xs, ys = tf.gather(self.x, order), tf.gather(self.y, order)
        bs, n_full = self.size, self.n_full

        def full(b, carry):
            start = b * bs
            return step(b, tf.slice(xs, [start, 0], [bs, -1]), tf.slice(ys, [start], [bs]), carry)

        carry = repeat(n_full, full, carry)
        if self.rest:
            carry = step(n_full, xs[n_full * bs :], ys[n_full * bs :], carry)
        return carry


def minibatches(data, batch_size, order_seed: int) -> Minibatches:
    """The minibatches of ``data``'s training set: ``batch_size`` rows (``"full"``: all of them)."""
    import tensorflow as tf

    n = len(data.x_train)
    bs = n if batch_size == "full" else min(batch_size, n)
    return Minibatches(tf.constant(data.x_train), tf.constant(data.y_train), order_seed, bs)
