"""A trial array's minibatch orders: :func:`~ib_sweeps.train.minibatch_order` of every replica, sorted fast.

:func:`minibatch_order` is the argsort of ``n`` stateless uniform draws, ties
to the lower index. XLA's CPU sort calls a compiled comparator per comparison,
~1 ms for 3277 draws, about half of what a replica-epoch of the default net
costs (measured: perf, the 12-bit net, N = 30). Here every replica's draws are
made into unique int64 keys (the float's bits, which order non-negative floats
as the floats, then the index) and sorted at once by a bitonic network of
elementwise min/max on reshaped arrays, ~0.2 ms per replica: the same
permutation, bit for bit (tests/test_array_core.py), not by the same route.
"""

from __future__ import annotations


def bitonic_sort(x):
    """x (rows, P) int64, P a power of 2, sorted ascending along its last axis (Batcher's network).

    Each size-k stage first compares t with k-1-t in every block of k (a
    "flip"), then halves: t with t+j, j = k/4 .. 1, so every compare-exchange
    sorts ascending and no per-block direction is needed.
    """
    import tensorflow as tf

    p = int(x.shape[-1])
    k = 2
    while k <= p:
        y = tf.reshape(x, [-1, p // k, k])
        a, b = y[..., : k // 2], tf.reverse(y[..., k // 2 :], [2])
        x = tf.reshape(tf.concat([tf.minimum(a, b), tf.reverse(tf.maximum(a, b), [2])], 2), [-1, p])
        j = k // 4
        while j >= 1:
            y = tf.reshape(x, [-1, p // (2 * j), 2, j])
            a, b = y[:, :, 0], y[:, :, 1]
            x = tf.reshape(tf.stack([tf.minimum(a, b), tf.maximum(a, b)], 2), [-1, p])
            j //= 2
        k *= 2
    return x


def array_orders(order_seeds, epoch, n: int):
    """Each replica's permutation (N, n) int32 of its n training examples in ``epoch``.

    Row r equals ``minibatch_order(order_seeds[r], epoch, n)`` drawn in a
    compiled graph (the same draws; XLA's draws differ from eager TensorFlow's).
    """
    import tensorflow as tf

    # The draws of minibatch_order, replica by replica.
    epoch = tf.cast(epoch, tf.int32)
    keys = [tf.stack([tf.constant(s, tf.int32), epoch]) for s in order_seeds]
    u = tf.stack([tf.random.stateless_uniform([n], seed=key) for key in keys])
    # Unique keys: (draw, index) in lexicographic order, so ties go to the lower index as in argsort.
    bits = tf.cast(tf.bitcast(u, tf.int32), tf.int64)  # draws are in [0, 1): their bits order as they do
    keys = bits * n + tf.range(n, dtype=tf.int64)
    p = 1 << max(n - 1, 1).bit_length()
    pad = tf.fill([len(order_seeds), p - n], tf.constant(2**63 - 1, tf.int64))  # sorts last
    return tf.cast(bitonic_sort(tf.concat([keys, pad], 1))[:, :n] % n, tf.int32)
