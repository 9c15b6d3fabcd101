"""The training core: whole stretches of epochs in one compiled graph call.

``TrainingCore.advance(epoch)`` trains up to ``epoch`` inside one XLA-compiled
``tf.function`` (a loop over epochs, each a loop over shuffled minibatches) and
returns every layer's activity on the measured inputs from one forward pass at
that epoch. Per-epoch train/test loss and accuracy are written into a buffer
inside the graph, and, with ``train.gradient_stats``, each layer's minibatch
gradient mean and std norms (:mod:`ib_sweeps.gradients`). Epoch 0 is the
untrained network.

The same core trains the CNN (``model.kind: cnn``), as a plain graph (no XLA:
its CPU convolutions are ~20x slower than TensorFlow's): the flat inputs are
reshaped to the image shape in the graph and a Dense layer takes its input
flattened. Its pooling layer has no weights, so no gradient statistics (NaN).
Where the activity of a whole evaluation set would not fit in
:data:`EVAL_BYTES` (CNNs on MNIST), loss and accuracy are summed over chunks
of it; MLPs are evaluated in one pass, as always.

Noisy and quantized MLPs (:func:`hidden_output`): with ``model.noise_std``
every hidden layer's output gets N(0, sigma^2) noise in every pass, training,
evaluation and measurement alike (Goldfeld et al. 2019). The noise is
stateless, keyed by the trial seed, a stream (training, evaluation, measured
activity, noisy_sp samples), the epoch and the batch, so results do not depend
on how the epochs are chunked and weight snapshots reproduce the live
measurement; :meth:`TrainingCore.noisy_samples` re-runs every measured input
n_cond times for noisy_sp. With ``model.quantize_levels`` each hidden output is
rounded to k levels with a straight-through gradient. Neither set: the graph
is exactly the plain one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ib_sweeps import models, records

# Columns of the per-epoch history: loss/train, accuracy/train, loss/test, accuracy/test.
HISTORY_KEYS = records.HISTORY
# Most bytes of activity one evaluation pass may hold (CNN layers: ~270 kB per MNIST image).
EVAL_BYTES = 256 * 2**20


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss; ``rows`` holds the finite history before it."""

    def __init__(self, epoch: int, first_epoch: int, rows: np.ndarray):
        super().__init__(f"training diverged: non-finite loss at epoch {epoch}")
        self.epoch, self.first_epoch, self.rows = epoch, first_epoch, rows

    def __reduce__(self):  # copyable and picklable (Ray ships errors between processes)
        return type(self), (self.epoch, self.first_epoch, self.rows)


def split_seed(seed: int) -> tuple[int, int]:
    """(weight-initialisation seed, minibatch-order seed) of a core built with ``seed``."""
    init_seed, shuffle_seed = np.random.SeedSequence(seed).generate_state(2)
    return int(init_seed), int(shuffle_seed) & 0x7FFFFFFF


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


# Streams of a noisy network's noise: minibatch steps, evaluation on the train and test sets, the
# measured activity, and the repeated passes of noisy_sp's samples.
TRAIN_NOISE, EVAL_TRAIN_NOISE, EVAL_TEST_NOISE, MEASURE_NOISE, SAMPLE_NOISE = range(5)


def noise_seed(seed: int) -> int:
    """Noise seed of a core built with ``seed``: the word after the two :func:`split_seed` draws."""
    return int(np.random.SeedSequence(seed).generate_state(3)[2]) & 0x7FFFFFFF


def noise_key(seed: int, stream: int, epoch, *path):
    """Stateless (2,) int32 key of one noise draw: ``seed`` and ``stream`` folded with ``epoch``, then ``path``."""
    import tensorflow as tf

    key = tf.stack([tf.constant(seed, tf.int32), tf.constant(stream, tf.int32)])
    for part in (epoch, *path):
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(part, tf.int32), alg="philox")
    return key


def hidden_output(model_cfg):
    """``f(i, h, z) -> (s, t)`` for hidden layer i's output h, or None for a plain network.

    s: h quantized to ``model.quantize_levels`` levels (straight-through,
    :func:`ib_sweeps.models.quantize`), else h; t: s + noise_std * z, z standard
    normal draws of h's shape (Goldfeld et al. 2019), or s when z is None. The
    next layer takes t; s is what noisy_sp's samples are. None when neither is
    set, so the graph of a plain network is exactly what it was.
    """
    levels = model_cfg.quantize_levels
    std = model_cfg.noise_std or 0.0
    if levels is None and not std:
        return None
    acts = models.layer_activations(model_cfg)

    def transform(i, h, z):
        s = h if levels is None else models.quantize(h, acts[i], levels)
        if not std:
            return s, s
        if z is None:
            raise ValueError("a noisy network's forward pass needs noise")
        return s, s + std * z

    return transform


def make_optimizer(cfg):
    import keras

    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=cfg.learning_rate, momentum=cfg.momentum)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    return keras.optimizers.Adadelta(learning_rate=cfg.learning_rate)


@dataclass
class TrainingCore:
    """Compiled training state. Build with :func:`build_core`."""

    run: object  # tf.function: n_epochs -> (layer activities, snapshots (capacity, n_params) or None)
    history: object  # tf.Variable (epochs + 1, 4)
    layers: list
    activity_at: object  # tf.function: flat weights (n_params,), epoch -> list of layer activities
    snapshot_capacity: int = 0  # most epochs one advance() keeps the weights of
    grad_norms: object = None  # tf.Variable (epochs + 1, n_layers, 2) with gradient_stats, else None
    # Noisy network (model.noise_std): tf.function (flat weights, epoch, n_cond) -> per layer (n, n_cond, ...).
    samples_at: object = None
    epoch: int = 0
    _snapshots: object = None

    @property
    def noisy(self) -> bool:
        """Whether every hidden layer adds Gaussian noise (model.noise_std > 0)."""
        return self.samples_at is not None

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def gradient_stats(self, first: int, stop: int) -> np.ndarray:
        """Gradient statistics of epochs ``first .. stop-1``: float64 (k, n_layers, 3).

        Columns :data:`ib_sweeps.gradients.KEYS` (mean norm, std norm, SNR);
        NaN for epoch 0, epochs not trained yet and layers without weights
        (pooling). Needs ``train.gradient_stats``.
        """
        from ib_sweeps import gradients

        if self.grad_norms is None:
            raise ValueError("gradient statistics are off (train.gradient_stats: false)")
        return gradients.with_snr(self.grad_norms[first:stop].numpy())

    def advance_with_snapshots(self, to_epoch: int):
        """Like :meth:`advance`, and also the flat weights (k, n_params) after epochs ``epoch+1 .. to_epoch-1``.

        Those are the epochs a backtracking schedule may need to measure later
        (:meth:`activity_from`); at most ``snapshot_capacity`` epochs per call.
        """
        k = max(to_epoch - self.epoch - 1, 0)
        if k > self.snapshot_capacity:
            raise ValueError(f"cannot keep {k} snapshots; capacity is {self.snapshot_capacity}")
        rows, acts = self.advance(to_epoch)
        return rows, acts, self._snapshots[:k].numpy()

    def activity_from(self, flat_weights: np.ndarray, epoch: int | None = None) -> list[np.ndarray]:
        """Every layer's activity on the measured inputs for the given flat weights.

        Stateless: the live network being trained is not touched, so this may run
        in another thread while training goes on. A noisy network needs the
        ``epoch`` the weights are from: its measurement noise is drawn per epoch,
        so this gives exactly what :meth:`advance` gave live at that epoch.
        """
        import tensorflow as tf

        if self.noisy and epoch is None:
            raise ValueError("a noisy network's measurement noise is drawn per epoch: pass the weights' epoch")
        at = tf.constant(epoch or 0, tf.int32)
        return [a.numpy() for a in self.activity_at(tf.constant(flat_weights, tf.float32), at)]

    def weights(self) -> np.ndarray:
        """The live network's flat weights (n_params,) float32, in the order :meth:`activity_from` takes."""
        return np.concatenate([v.numpy().ravel() for layer in self.layers for v in layer.trainable_variables])

    def noisy_samples(self, epoch: int, n_cond: int, flat_weights: np.ndarray | None = None) -> list[np.ndarray]:
        """A noisy network's noiseless layer outputs S_l over ``n_cond`` noisy passes of each measured input.

        One float32 array (n_measure, n_cond, width) per layer (the softmax for
        the output): pass k of input i carries independent noise on every hidden
        layer, drawn from the trial seed, ``epoch`` and k; S_l itself is taken
        before layer l's own noise, as :class:`~ib_sweeps.estimators.noisy_sp.NoisySP`
        wants it. Weights: ``flat_weights``, else the live network's (at ``epoch``).
        """
        import tensorflow as tf

        if not self.noisy:
            raise ValueError("noisy samples need a noisy network (model.noise_std > 0)")
        if flat_weights is None and epoch != self.epoch:
            raise ValueError(f"the live network is at epoch {self.epoch}, not {epoch}; pass that epoch's weights")
        flat = self.weights() if flat_weights is None else flat_weights
        out = self.samples_at(tf.constant(flat, tf.float32), tf.constant(epoch, tf.int32), n_cond)
        return [a.numpy() for a in out]

    def advance(self, to_epoch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Train epochs ``epoch+1 .. to_epoch``; return their history rows and the activity.

        History rows: float64 (to_epoch - epoch, 4) in ``HISTORY_KEYS`` order
        (for ``to_epoch == 0``, the row of epoch 0). Activity: one float32
        array (n_measure, width) per layer, hidden layers then softmax output,
        exactly as the network computed it; (n_measure, height, width,
        channels) for convolutional and pooling layers.
        Raises :class:`TrainingDiverged` on a non-finite loss.
        """
        if to_epoch < self.epoch:
            raise ValueError(f"cannot go back from epoch {self.epoch} to {to_epoch}")
        first = self.epoch + 1 if to_epoch > 0 else 0
        import tensorflow as tf

        if self.snapshot_capacity and to_epoch - self.epoch - 1 > self.snapshot_capacity:
            raise ValueError(f"a core keeping snapshots advances at most {self.snapshot_capacity + 1} epochs a call")
        acts, self._snapshots = self.run(tf.constant(to_epoch - self.epoch, tf.int32))
        rows = self.history[first : to_epoch + 1].numpy().astype(np.float64)
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            k = int(np.argmax(bad))
            raise TrainingDiverged(first + k, first, rows[:k])
        self.epoch = to_epoch
        return rows, [a.numpy() for a in acts]


def layer_input(layer, h):
    """``h`` as ``layer`` takes it: a Dense layer after convolutions gets it flattened (n, h*w*c)."""
    import keras
    import tensorflow as tf

    if len(h.shape) > 2 and isinstance(layer, keras.layers.Dense):
        return tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])
    return h


def build_core(
    model_cfg, train_cfg, data, seed: int, jit: bool | None = None, snapshot_capacity: int = 0
) -> TrainingCore:
    """Build the model, optimizer and compiled epoch loop for ``data``.

    ``seed`` drives the weight initialisation and the minibatch order; the same
    seed and config give identical numbers. ``snapshot_capacity``: how many
    epochs' weights one call may keep for backtracking (memory: capacity x
    parameters x 4 bytes). ``jit``: compile with XLA; default: for an MLP, not
    for a CNN, whose graph runs plain (on CPU, TensorFlow's oneDNN convolutions
    train the digits CNN ~20x faster than XLA's: ``benchmarks/bench_cnn.py``).
    """
    import tensorflow as tf

    init_seed, order_seed = split_seed(seed)
    layers = models.build(model_cfg, data.input_shape, data.n_classes, init_seed)
    shape = models.input_shape(model_cfg, data.input_shape)
    per_input = 4 * models.activity_floats(model_cfg, data.input_shape, data.n_classes)
    kind = models.of(model_cfg)
    eval_rows = max(1, EVAL_BYTES // per_input) if kind.chunked_eval else None
    jit = kind.jit if jit is None else jit
    variables = [v for layer in layers for v in layer.trainable_variables]
    opt = make_optimizer(train_cfg)
    opt.build(variables)

    x_tr, y_tr = tf.constant(data.x_train), tf.constant(data.y_train)
    x_te, y_te = tf.constant(data.x_test), tf.constant(data.y_test)
    x_me = tf.constant(data.x_measure)
    n = len(data.x_train)
    bs = n if train_cfg.batch_size == "full" else min(train_cfg.batch_size, n)
    n_full, rest = divmod(n, bs)
    epoch = tf.Variable(0, dtype=tf.int32, trainable=False)
    history = tf.Variable(tf.zeros([train_cfg.epochs + 1, 4]), trainable=False)
    stats = train_cfg.gradient_stats
    hidden_out, noisy, nseed = hidden_output(model_cfg), bool(model_cfg.noise_std), noise_seed(seed)

    def key_of(stream, *path, at=None):
        """The noise key of ``stream`` at epoch ``at`` (default: the live epoch); None for a noiseless network."""
        return noise_key(nseed, stream, epoch if at is None else at, *path) if noisy else None

    cuts = np.cumsum([0, *kind.noise_widths(model_cfg)])  # each hidden layer's columns of the noise

    def noise(key, x):
        """Standard normal draws (rows of x, all hidden units) for one forward pass; None without a key."""
        # One draw per pass, not per layer, and Philox named: XLA on CPU compiles each draw site slowly
        # and draws "auto_select" about 7x slower (measured).
        return None if key is None else tf.random.stateless_normal([tf.shape(x)[0], cuts[-1]], key, alg="philox")

    def hidden(i, h, z):
        """(noiseless, passed on) output of layer i: quantized and/or noisy for hidden layers, else (h, h)."""
        if hidden_out is None or i >= len(layers) - 1:
            return h, h
        return hidden_out(i, h, None if z is None else z[:, cuts[i] : cuts[i + 1]])

    # Gradient statistics of each layer's kernel: its slice of the flat kernel gradient (pooling has none).
    weighted = [j for j, layer in enumerate(layers) if layer.trainable_variables]
    kernels = [next(i for i, v in enumerate(variables) if v is layers[j].kernel) for j in weighted]
    bounds = np.cumsum([0, *(int(np.prod(variables[i].shape)) for i in kernels)])
    grad_norms = (
        tf.Variable(tf.fill([train_cfg.epochs + 1, len(layers), 2], np.nan), trainable=False) if stats else None
    )
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(shape)) for shape in shapes]

    def flat_weights():
        return tf.concat([tf.reshape(v, [-1]) for v in variables], axis=0)

    def model_input(x):
        return x if len(shape) == 1 else tf.reshape(x, [-1, *shape])

    def forward(x, key=None):
        z = noise(key, x)
        outs, h = [], model_input(x)
        for layer in layers:
            h = layer(layer_input(layer, h))
            if hidden_out is not None:
                _, h = hidden(len(outs), h, z)
            outs.append(h)
        return outs

    def xent(x, y, key=None):
        logits = forward(x, key)[-1]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return loss, logits

    def step(xb, yb, sums, key=None):
        """One minibatch update; with gradient statistics, adds its kernel gradient (float64) to ``sums``."""
        with tf.GradientTape() as tape:
            loss, _ = xent(xb, yb, key)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        if not stats:
            return sums
        g = tf.cast(tf.concat([tf.reshape(grads[i], [-1]) for i in kernels], axis=0), tf.float64)
        return sums[0] + g, sums[1] + g * g

    def record_gradients(sums, n_batches):
        # Sums in float64, so E[g^2] - E[g]^2 keeps its digits even when the mean dominates.
        mean = sums[0] / n_batches
        var = tf.maximum(sums[1] / n_batches - mean * mean, 0.0)
        norms = [
            tf.stack([tf.norm(mean[a:b]), tf.sqrt(tf.reduce_sum(var[a:b]))]) for a, b in itertools.pairwise(bounds)
        ]
        if len(weighted) < len(layers):  # NaN rows for layers without weights
            by_layer = dict(zip(weighted, norms, strict=True))
            norms = [by_layer.get(j, tf.constant([np.nan, np.nan], tf.float64)) for j in range(len(layers))]
        grad_norms.scatter_nd_update([[epoch]], [tf.cast(tf.stack(norms), tf.float32)])

    def evaluate(x, y, key=None):
        if eval_rows is not None and x.shape[0] > eval_rows:
            return evaluate_in_chunks(x, y)
        loss, logits = xent(x, y, key)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def evaluate_in_chunks(x, y):
        """Mean loss and accuracy over ``eval_rows`` rows at a time (the rows' sums, divided once)."""

        def sums(xc, yc):
            logits = forward(xc)[-1]
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yc, logits=logits))
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), yc), tf.float32))
            return tf.stack([loss, hits])

        n_rows = x.shape[0]
        k, rest = divmod(n_rows, eval_rows)
        total = tf.zeros([2])
        for b in tf.range(k):
            start = b * eval_rows
            total += sums(tf.slice(x, [start, 0], [eval_rows, -1]), tf.slice(y, [start], [eval_rows]))
        if rest:
            total += sums(x[k * eval_rows :], y[k * eval_rows :])
        return total[0] / n_rows, total[1] / n_rows

    def record():
        tr, te = evaluate(x_tr, y_tr, key_of(EVAL_TRAIN_NOISE)), evaluate(x_te, y_te, key_of(EVAL_TEST_NOISE))
        history.scatter_nd_update([[epoch]], [tf.stack([tr[0], tr[1], te[0], te[1]])])

    def one_epoch():
        epoch.assign_add(1)
        order = minibatch_order(order_seed, epoch, n)
        xs, ys = tf.gather(x_tr, order), tf.gather(y_tr, order)
        # Loop-carried sum and sum of squares of the kernel gradients; nothing at all without statistics.
        sums = (tf.zeros([bounds[-1]], tf.float64),) * 2 if stats else ()
        for b in tf.range(n_full):
            start = b * bs
            sums = step(tf.slice(xs, [start, 0], [bs, -1]), tf.slice(ys, [start], [bs]), sums, key_of(TRAIN_NOISE, b))
        if rest:
            sums = step(xs[n_full * bs :], ys[n_full * bs :], sums, key_of(TRAIN_NOISE, n_full))
        record()
        if stats:
            record_gradients(sums, n_full + (1 if rest else 0))

    def activities(outs):
        return [*outs[:-1], tf.nn.softmax(outs[-1])]

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def run(n_epochs):
        if epoch == 0:
            record()
        i = tf.constant(0)
        # Loop-carried (not a variable), so XLA updates it in place instead of copying it every epoch.
        # One row per epoch of the call; the last (to_epoch itself, measured live) is spare.
        snaps = tf.zeros([snapshot_capacity + 1 if snapshot_capacity else 0, sum(sizes)])
        if snapshot_capacity:  # static: one of the two loops is compiled
            while i < n_epochs:  # a plain while loop: tf.range(n) would make XLA compile per n
                one_epoch()
                snaps = tf.tensor_scatter_nd_update(snaps, [[i]], [flat_weights()])
                i += 1
        else:
            while i < n_epochs:
                one_epoch()
                i += 1
        return activities(forward(x_me, key_of(MEASURE_NOISE))), snaps

    def stateless_forward(flat, x, key=None, noiseless=False):
        """Layer outputs with flat weights ``flat``; ``noiseless``: hidden outputs before their own noise."""
        z = noise(key, x)
        outs, h, offset = [], model_input(x), 0
        for layer in layers:
            n_vars = len(layer.trainable_variables)
            values = []
            for shape, size in zip(shapes[offset : offset + n_vars], sizes[offset : offset + n_vars], strict=True):
                values.append(tf.reshape(flat[:size], shape))
                flat = flat[size:]
            offset += n_vars
            h, _ = layer.stateless_call(values, [], layer_input(layer, h))
            s, h = hidden(len(outs), h, z)
            outs.append(s if noiseless else h)
        return outs

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def activity_at(flat, at_epoch):
        return activities(stateless_forward(flat, x_me, key_of(MEASURE_NOISE, at=at_epoch)))

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def samples_at(flat, at_epoch, n_cond):
        # Row i * n_cond + k: pass k of input i, independent noise on every row.
        x = tf.repeat(x_me, n_cond, axis=0)
        outs = activities(stateless_forward(flat, x, key_of(SAMPLE_NOISE, at=at_epoch), noiseless=True))
        return [tf.reshape(a, [len(data.x_measure), n_cond, *a.shape[1:]]) for a in outs]

    return TrainingCore(
        run=run,
        history=history,
        layers=layers,
        activity_at=activity_at,
        snapshot_capacity=snapshot_capacity,
        grad_norms=grad_norms,
        samples_at=samples_at if noisy else None,
    )
