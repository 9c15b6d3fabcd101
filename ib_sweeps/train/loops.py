"""Graph control flow written out: the training programs are traced without AutoGraph.

AutoGraph rewrote every Python function a ``tf.function`` called (93 conversions
of 17 functions for the 12-bit core), ~1.7 s of the ~2.8 s its first trace took
in a process (cProfile, load ~2). Only the epoch loop, the minibatch loop and
"record epoch 0" branch on tensors; they are these two calls, which build the
ops AutoGraph built for them. Checked against the AutoGraph programs of commit
``6da507a``: the same weights, histories, activity and gradient statistics, bit
for bit, after 20 epochs of the 12-bit core alone and in arrays (tanh, ReLU,
noisy, quantized) and 2 epochs of the digits CNN alone and in an array. First
trace of the core alone 1.35 -> 0.48 s, of an array of 6 with six activations
2.7 -> 1.0 s (load ~2); tests/test_train.py checks both calls against AutoGraph's.
"""

from __future__ import annotations


def repeat(n, body, carry=()):
    """``carry = body(i, carry)`` for i = 0, 1, .. while i < ``n`` (an int32 tensor or int), as one
    ``tf.while_loop``; the last carry. ``carry``: a nested structure of tensors (``()``: none; then ``body`` may
    return None and works by its side effects, such as assigning variables)."""
    import tensorflow as tf

    def step(i, c):
        out = body(i, c)
        if out is None and isinstance(c, tuple) and not c:  # no carry: the body works by its side effects
            out = ()
        return i + 1, out

    return tf.while_loop(lambda i, c: i < n, step, (tf.constant(0), carry))[1]


def when(pred, fn) -> None:
    """``fn()`` for its side effects where the scalar bool tensor ``pred`` holds, as one ``tf.cond``."""
    import tensorflow as tf

    def branch():
        fn()  # what it returns is not needed: its ops run in the branch

    tf.cond(pred, branch, lambda: None)
