"""Evaluation: full train and test loss and accuracy after each epoch, into the history buffer."""

from __future__ import annotations

from dataclasses import dataclass

from ib_sweeps import models
from ib_sweeps.train.forward import Forward
from ib_sweeps.train.noise import EVAL_TEST_NOISE, EVAL_TRAIN_NOISE


def eval_rows(model_cfg, data, max_bytes: int) -> int | None:
    """Rows per evaluation chunk whose activity (float32, every layer and the logits) fits in ``max_bytes``.

    None: one pass (MLPs). ``data``: anything with ``input_shape`` and ``n_classes``, a loaded
    :class:`~ib_sweeps.data.Dataset` or, before loading, its registry :class:`~ib_sweeps.data.Source`.
    """
    if not models.of(model_cfg).chunked_eval:
        return None
    per_input = 4 * models.activity_floats(model_cfg, data.input_shape, data.n_classes)
    return max(1, max_bytes // per_input)


@dataclass(frozen=True)
class Evaluation:
    """Loss and accuracy of the live network on the training set (x_train, y_train) and the test set.

    ``history``: tf.Variable float32 (epochs + 1, 4), one row per epoch in
    ``HISTORY_KEYS`` order. ``rows``: chunk size (:func:`eval_rows`), None for one pass.
    """

    fwd: Forward
    x_train: object
    y_train: object
    x_test: object
    y_test: object
    history: object
    rows: int | None = None

    def evaluate(self, x, y, key=None):
        """(mean loss, accuracy) scalars on x (n, features), labels y (n,)."""
        import tensorflow as tf

        if self.rows is not None and x.shape[0] > self.rows:
            return self.evaluate_in_chunks(x, y)
        loss, logits = self.fwd.xent(x, y, key)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def evaluate_in_chunks(self, x, y):
        """Mean loss and accuracy over ``rows`` rows at a time (the rows' sums, divided once)."""
        import tensorflow as tf

        rows = self.rows

        def sums(xc, yc):
            logits = self.fwd(xc)[-1]
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yc, logits=logits))
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), yc), tf.float32))
            return tf.stack([loss, hits])

        from ib_sweeps.train.loops import repeat

        n_rows = x.shape[0]
        k, rest = divmod(n_rows, rows)

        def chunk(b, total):
            start = b * rows
            return total + sums(tf.slice(x, [start, 0], [rows, -1]), tf.slice(y, [start], [rows]))

        total = repeat(k, chunk, tf.zeros([2]))
        if rest:
            total += sums(x[k * rows :], y[k * rows :])
        return total[0] / n_rows, total[1] / n_rows

    def record(self):
        """Write the live epoch's history row: train loss, train accuracy, test loss, test accuracy."""
        import tensorflow as tf

        noise = self.fwd.noise
        tr = self.evaluate(self.x_train, self.y_train, noise.key(EVAL_TRAIN_NOISE))
        te = self.evaluate(self.x_test, self.y_test, noise.key(EVAL_TEST_NOISE))
        self.history.scatter_nd_update([[noise.epoch]], [tf.stack([tr[0], tr[1], te[0], te[1]])])
