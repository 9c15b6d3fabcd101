"""Trial arrays: N MLP or CNN replicas trained as one compiled program (used by :mod:`ib_sweeps.trial_array`).

Every weight carries a leading replica axis (kernel (N, fan_in, width), bias
(N, width)); a minibatch is (N, batch, features), one slice per replica, and
each layer is one batched matmul. Replica r draws exactly what a core built
alone by :func:`~ib_sweeps.train.build_core` with ``seeds[r]`` draws: its
initial weights come from the same Keras builder with the same
:func:`~ib_sweeps.train.split_seed` initialisation seed, and its minibatch
order is :func:`~ib_sweeps.train.minibatch_order`'s with the same order seed,
from the same draws in the XLA graph, sorted faster
(:mod:`~ib_sweeps.train.array_orders`; tests/test_array_core.py: bit-identical).
Batched kernels round differently from single ones, so the numbers agree
with the core alone to float rounding, not bit for bit (issue 14: losses and
weights within 1e-5 relative after 10-20 epochs).

Replicas share the model shape (hidden widths), the optimizer kind, batch
size and epochs; per replica may differ: the seed, the data set (equal shapes:
a trial draws its split from its own seed), the activation(s), the
initialisation (``init``, ``init_std``), the learning rate and SGD's momentum.
The optimizers are Keras's Adam, SGD and Adadelta written out elementwise (same
formulas, same order of operations), so a learning rate can be a per-replica
vector; the replicas step in lockstep, so one iteration counter serves all.

CNN replicas (``model.kind: cnn``, :mod:`~ib_sweeps.train.array_cnn`): conv
kernels (N, k, k, c_in, filters), each convolution one batched matmul
(im2col), the layers' outputs per replica as the model alone gives them
(conv and pooling (N, rows, height, width, channels)); their minibatch
orders are drawn up front in a plain graph, as the CNN core alone (no XLA)
draws them (:class:`TabledData`). The core alone evaluates a CNN in chunks;
the array in one pass, so CNNs too large for that run alone
(:func:`~ib_sweeps.train.array_cnn.too_big`).

Gradient statistics (``train.gradient_stats``) are kept per replica
(:meth:`ArrayCore.gradient_stats`), and so are noisy and quantized
replicas' hidden outputs (:mod:`~ib_sweeps.train.array_net`: replica r's
noise is the core alone's, bit for bit). noisy_sp's n_cond noisy passes of
each measured input (:meth:`ArrayCore.noisy_samples`) are the core alone's
for the same weights: the hidden layers' bit for bit (computed rows-major,
where a batched matmul rounds as the single one), the softmax output to
float rounding. Weight snapshots
(backtracking schedules) are kept per replica, and
:meth:`ArrayCore.activity_from` and :meth:`ArrayCore.noisy_samples` measure from them.
Replicas are independent in the graph (the summed loss gives each replica its
own gradient; batched ops keep slices apart), so a replica whose loss turns
non-finite is reported as :class:`~ib_sweeps.train.TrainingDiverged` in its
slot while the others train on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ib_sweeps.train import array_cnn
from ib_sweeps.train.array_net import ArrayNet, build_array_net, draw_noise, forward, noiseless_outputs, xent
from ib_sweeps.train.array_optimizer import ArrayOptimizer
from ib_sweeps.train.array_orders import array_orders
from ib_sweeps.train.core import TrainingDiverged
from ib_sweeps.train.loops import repeat, when
from ib_sweeps.train.network import split_seed
from ib_sweeps.train.noise import EVAL_TEST_NOISE, EVAL_TRAIN_NOISE, MEASURE_NOISE, SAMPLE_NOISE, TRAIN_NOISE

__all__ = ["ArrayCore", "build_array_core", "check_array"]

# Fields that may differ between replicas; every other field of the configs must be equal.
PER_REPLICA_MODEL = ("activation", "init", "init_std")
PER_REPLICA_TRAIN = ("learning_rate", "momentum")
OPTIMIZERS = ("adam", "sgd", "adadelta")
MODELS = ("mlp", "cnn")


def _as_list(value, n: int) -> list:
    return list(value) if isinstance(value, list | tuple) else [value] * n


def check_array(model_cfgs, train_cfgs) -> None:
    """ValueError naming the field unless the configs can train as one array (see the module docstring)."""
    model, train = model_cfgs[0], train_cfgs[0]
    if model.kind not in MODELS:
        raise ValueError(f"trial arrays: model.kind {model.kind!r} not supported; allowed: {', '.join(MODELS)}")
    if train.optimizer not in OPTIMIZERS:
        raise ValueError(f"trial arrays: optimizer {train.optimizer!r} not supported; allowed: {', '.join(OPTIMIZERS)}")
    for cfgs, free in ((model_cfgs, PER_REPLICA_MODEL), (train_cfgs, PER_REPLICA_TRAIN)):
        shared = [{k: v for k, v in c.model_dump().items() if k not in free} for c in cfgs]
        for r, fields in enumerate(shared):
            diff = sorted(k for k in fields.keys() | shared[0].keys() if fields.get(k) != shared[0].get(k))
            if diff:
                raise ValueError(f"replica {r} differs from replica 0 in {diff}; may differ only in {list(free)}")


def stack_data(datasets):
    """The data sets' (x_train, y_train, x_test, y_test, x_measure): each stacked on a replica axis, or as they are
    where all replicas share one data set (one object); ValueError on differing shapes."""
    names = ("x_train", "y_train", "x_test", "y_test", "x_measure")
    if all(d is datasets[0] for d in datasets):
        return [getattr(datasets[0], name) for name in names]
    out = []
    for name in names:
        parts = [getattr(d, name) for d in datasets]
        if len({p.shape for p in parts}) > 1:
            raise ValueError(f"trial arrays: the replicas' {name} differ in shape {sorted({p.shape for p in parts})}")
        out.append(np.stack(parts))
    return out


@dataclass(frozen=True)
class ArrayData:
    """The replicas' sets: x (N, rows, features), y (N, rows), or one shared set (no N axis); batches of ``size``."""

    x_train: object
    y_train: object
    x_test: object
    y_test: object
    x_measure: object
    order_seeds: list[int]
    size: int

    def orders(self, epoch):
        """Each replica's minibatch order (N, n_train) in ``epoch``: :func:`minibatch_order` with its seed."""
        return array_orders(self.order_seeds, epoch, int(self.x_train.shape[-2]))

    @property
    def count(self) -> int:
        """Minibatches (steps) per epoch."""
        return -(-int(self.x_train.shape[-2]) // self.size)

    def fold(self, epoch, step, carry):
        """``carry = step(b, xb (N, size, f), yb (N, size), carry)`` over the epoch's minibatches b = 0, 1, ...,
        each replica in its own order; the last carry."""
        import tensorflow as tf

        order = self.orders(epoch)
        per_replica = int(len(self.x_train.shape) == 3)  # else one set: gathering gives (N, n, f) directly
        xs = tf.gather(self.x_train, order, batch_dims=per_replica)
        ys = tf.gather(self.y_train, order, batch_dims=per_replica)
        n, bs = int(self.x_train.shape[-2]), self.size
        n_full = n // bs

        def full(b, carry):
            start = b * bs
            return step(b, tf.slice(xs, [0, start, 0], [-1, bs, -1]), tf.slice(ys, [0, start], [-1, bs]), carry)

        carry = repeat(n_full, full, carry)
        if n % bs:
            carry = step(n_full, xs[:, n_full * bs :], ys[:, n_full * bs :], carry)
        return carry


@dataclass(frozen=True)
class TabledData(ArrayData):
    """:class:`ArrayData` whose orders are read from ``table`` (epochs, N, n_train) int32, epoch e at row e - 1.

    CNN replicas: the orders the CNN core alone draws in its plain graph
    (:func:`~ib_sweeps.train.array_cnn.plain_orders`), which XLA's draws are not.
    """

    table: object = None

    def orders(self, epoch):
        import tensorflow as tf

        return tf.gather(self.table, tf.cast(epoch, tf.int32) - 1)


@dataclass(frozen=True)
class ArrayGradStats:
    """Each replica's kernel-gradient statistics, as :mod:`ib_sweeps.train.gradient_stats` computes them alone.

    ``norms``: tf.Variable float32 (epochs + 1, N, n_layers, 2), (mean norm, std
    norm) per epoch, replica and layer, NaN until recorded. The gradient of the
    summed loss w.r.t. a stacked kernel (N, fan_in, width) holds each replica's
    own gradient in its slice, so the sums run per slice; float64, as alone.
    ``weighted``: the layers with kernels (CNNs: all but pooling, whose rows
    stay NaN, as alone); None: every layer.
    """

    norms: object
    n_batches: int
    weighted: tuple | None = None

    @staticmethod
    def zeros(kernels):
        """The loop-carried (sum, sum of squares) of an epoch's kernel gradients, each layer (N, fan_in, width)."""
        import tensorflow as tf

        return tuple((tf.zeros(k.shape, tf.float64),) * 2 for k in kernels)

    def add(self, sums, kernel_grads):
        import tensorflow as tf

        out = []
        for (s, sq), g in zip(sums, kernel_grads, strict=True):
            g = tf.cast(g, tf.float64)
            out.append((s + g, sq + g * g))
        return tuple(out)

    def record(self, sums, epoch):
        """Write epoch ``epoch``'s (N, n_layers, 2) of ``norms``."""
        import tensorflow as tf

        rows = []
        for s, sq in sums:
            if len(s.shape) > 3:  # a conv kernel (N, k, k, c_in, filters): its norms as a matrix's
                s, sq = (tf.reshape(t, [t.shape[0], -1, t.shape[-1]]) for t in (s, sq))
            mean = s / self.n_batches
            var = tf.maximum(sq / self.n_batches - mean * mean, 0.0)
            rows.append(tf.stack([tf.norm(mean, axis=[1, 2]), tf.sqrt(tf.reduce_sum(var, axis=[1, 2]))], axis=1))
        if self.weighted is not None:  # NaN rows for layers without weights
            by_layer, nan = dict(zip(self.weighted, rows, strict=True)), tf.fill(rows[0].shape, np.nan)
            rows = [by_layer.get(j, tf.cast(nan, tf.float64)) for j in range(int(self.norms.shape[2]))]
        self.norms.scatter_nd_update([[epoch]], [tf.cast(tf.stack(rows, axis=1), tf.float32)])


@dataclass
class ArrayCore:
    """Compiled training state of N replicas. Build with :func:`build_array_core`."""

    run: object  # tf.function: n_epochs -> (per layer activity (N, n_measure, width), snapshots)
    orders_at: object  # tf.function: epoch -> minibatch orders (N, n_train), compiled as training is
    history: object  # tf.Variable (epochs + 1, N, 4)
    net: ArrayNet
    layer_names: list[str]
    grad_norms: object = None  # tf.Variable (epochs + 1, N, n_layers, 2) with gradient_stats, else None
    epoch: int = 0
    activity_at: object = None  # tf.function: (flat weights (N, n_params), epoch) -> per layer activity
    snapshot_capacity: int = 0  # most epochs one advance() keeps the weights of
    snapshots: np.ndarray | None = None  # (k, N, n_params): weights after each epoch of the last advance()
    # Noisy replicas (model.noise_std): tf.function (flat (N, n_params), epoch, n_cond) -> per layer
    # (N, n_measure, n_cond, width); None otherwise.
    samples_at: object = None

    def __post_init__(self):
        self.failed: dict[int, TrainingDiverged] = {}

    @property
    def n(self) -> int:
        return self.net.n

    @property
    def noisy(self) -> bool:
        """Whether every hidden layer adds Gaussian noise (model.noise_std > 0, shared by the replicas)."""
        return self.samples_at is not None

    def weights(self) -> np.ndarray:
        """Each replica's flat weights (N, n_params) float32, in the single core's ``weights()`` order."""
        return np.concatenate([v.numpy().reshape(self.n, -1) for v in self.net.variables], axis=1)

    def gradient_stats(self, first: int, stop: int) -> np.ndarray:
        """Gradient statistics of epochs ``first .. stop-1``: float64 (k, N, n_layers, 3).

        [:, r] is what :meth:`TrainingCore.gradient_stats` gives for replica r
        alone: columns :data:`ib_sweeps.gradients.KEYS` (mean norm, std norm,
        SNR); NaN for epoch 0 and epochs not trained yet (a diverged replica's
        rows after it diverged are whatever its non-finite gradients gave).
        Needs ``train.gradient_stats``.
        """
        from ib_sweeps import gradients

        if self.grad_norms is None:
            raise ValueError("gradient statistics are off (train.gradient_stats: false)")
        return gradients.with_snr(self.grad_norms[first:stop].numpy())

    def orders(self, epoch: int) -> np.ndarray:
        """The minibatch orders (N, n_train) int32 the replicas train epoch ``epoch`` in."""
        import tensorflow as tf

        return self.orders_at(tf.constant(epoch, tf.int32)).numpy()

    def activity_from(self, flat_weights: np.ndarray, epoch: int) -> list[np.ndarray]:
        """Every replica's activity per layer (N, n_measure, width) for flat weights (N, n_params) from epoch
        ``epoch`` (a row of :attr:`snapshots`): what :meth:`advance` gave live at that epoch, the noisy
        replicas' measurement noise included. Stateless: the live network is not touched."""
        import tensorflow as tf

        flat = tf.constant(flat_weights, tf.float32)
        return [a.numpy() for a in self.activity_at(flat, tf.constant(epoch, tf.int32))]

    def noisy_samples(self, epoch: int, n_cond: int, flat_weights: np.ndarray | None = None) -> list[np.ndarray]:
        """Noisy replicas' noiseless layer outputs S_l over ``n_cond`` noisy passes of each measured input.

        One float32 array (N, n_measure, n_cond, width) per layer (the softmax for
        the output); ``[r]`` is :meth:`TrainingCore.noisy_samples` of replica r
        alone: its noise keys (its seed, the samples' stream, ``epoch``), one draw
        for all passes, S_l taken before layer l's own noise, and rows-major
        matmuls that round as the core alone's
        (:func:`~ib_sweeps.train.array_net.noiseless_outputs`). For the same
        weights the hidden layers are bit-identical, the softmax output equal
        to float rounding (up to 2 ulp; tests/test_array_core.py, CPU with XLA).
        Weights: ``flat_weights`` (N, n_params) from ``epoch`` (a row of
        :attr:`snapshots`), else the live ones (at ``epoch``). Stateless.
        """
        import tensorflow as tf

        if not self.noisy:
            raise ValueError("noisy samples need a noisy network (model.noise_std > 0)")
        if flat_weights is None and epoch != self.epoch:
            raise ValueError(f"the live network is at epoch {self.epoch}, not {epoch}; pass that epoch's weights")
        flat = self.weights() if flat_weights is None else flat_weights
        out = self.samples_at(tf.constant(flat, tf.float32), tf.constant(epoch, tf.int32), int(n_cond))
        return [a.numpy() for a in out]

    def advance(self, to_epoch: int) -> list:
        """Train all replicas through epochs ``epoch+1 .. to_epoch``; one result per replica.

        With a ``snapshot_capacity``, :attr:`snapshots` then holds each replica's
        weights after every epoch of the call (``to_epoch`` included), for a
        backtracking schedule to measure later (:meth:`activity_from`).

        A replica's result is what :meth:`TrainingCore.advance` returns for it
        alone: (history rows float64 (k, 4), activity per layer float32
        (n_measure, width)); or, once its loss turned non-finite, the
        :class:`TrainingDiverged` the core alone would raise (not raised; the
        others go on; the same object in every later call).
        """
        import tensorflow as tf

        if to_epoch < self.epoch:
            raise ValueError(f"cannot go back from epoch {self.epoch} to {to_epoch}")
        first = self.epoch + 1 if to_epoch > 0 else 0
        k = to_epoch - self.epoch
        if self.snapshot_capacity and k > self.snapshot_capacity + 1:
            raise ValueError(f"an array keeping snapshots advances at most {self.snapshot_capacity + 1} epochs a call")
        live, snaps = self.run(tf.constant(k, tf.int32))
        acts = [a.numpy() for a in live]
        self.snapshots = snaps[:k].numpy() if self.snapshot_capacity else None
        rows = self.history[first : to_epoch + 1].numpy().astype(np.float64)  # (k, N, 4)
        out = []
        for r in range(self.n):
            bad = ~np.isfinite(rows[:, r]).all(axis=1)
            if r not in self.failed and bad.any():
                k = int(np.argmax(bad))
                self.failed[r] = TrainingDiverged(first + k, first, rows[:k, r])
            out.append(self.failed[r] if r in self.failed else (rows[:, r], [a[r] for a in acts]))
        self.epoch = to_epoch
        return out


def build_array_core(model_cfgs, train_cfgs, datasets, seeds, snapshot_capacity: int = 0) -> ArrayCore:
    """The compiled array of ``len(seeds)`` replicas; replica r is ``build_core(model_cfgs[r], ..., seeds[r])``.

    ``model_cfgs``, ``train_cfgs``, ``datasets``: one each (shared) or a list of
    one per replica (differing only as the module docstring allows). Always
    compiled with XLA. ``snapshot_capacity``: how many epochs of
    weights one :meth:`ArrayCore.advance` keeps (0: none), as ``build_core``'s.
    """
    import tensorflow as tf

    n = len(seeds)
    model_cfgs, train_cfgs, datasets = (_as_list(v, n) for v in (model_cfgs, train_cfgs, datasets))
    check_array(model_cfgs, train_cfgs)
    init_seeds, order_seeds = zip(*(split_seed(s) for s in seeds), strict=True)
    d0, train = datasets[0], train_cfgs[0]
    net = build_array_net(model_cfgs, d0, init_seeds, seeds)
    opt = ArrayOptimizer(train_cfgs, net.variables)
    x_train, y_train, x_test, y_test, x_measure = (tf.constant(a) for a in stack_data(datasets))
    n_train = int(x_train.shape[-2])
    size = n_train if train.batch_size == "full" else min(train.batch_size, n_train)
    batches = ArrayData(x_train, y_train, x_test, y_test, x_measure, list(order_seeds), size)
    if net.conv is not None:  # the orders the CNN core alone draws without XLA
        table = tf.Variable(array_cnn.plain_orders(order_seeds, train.epochs, n_train), trainable=False)
        batches = TabledData(*(getattr(batches, f.name) for f in dataclasses.fields(ArrayData)), table=table)
    epoch = tf.Variable(0, dtype=tf.int32, trainable=False)
    history = tf.Variable(tf.zeros([train.epochs + 1, n, 4]), trainable=False)
    grads = None
    if train.gradient_stats:
        norms = tf.Variable(tf.fill([train.epochs + 1, n, len(net.layer_names), 2], np.nan), trainable=False)
        weighted = None if net.conv is None else tuple(array_cnn.weighted_layers(net))
        grads = ArrayGradStats(norms, batches.count, weighted)

    def noise(stream, rows, *path):  # this pass's noise at the live epoch, as the core alone keys it
        return draw_noise(net, stream, epoch, *path, rows=int(rows))

    def step(b, xb, yb, sums):
        with tf.GradientTape() as tape:
            losses = xent(net, xb, yb, noise(TRAIN_NOISE, xb.shape[1], b))[0]
            loss = tf.reduce_sum(losses)  # replica r's own loss is all its weights feel
        g = tape.gradient(loss, net.variables)
        opt.apply(g)
        return sums if grads is None else grads.add(sums, g[::2])  # kernels: every other variable

    def evaluate(x, y, stream):
        loss, logits = xent(net, x, y, noise(stream, x.shape[-2]))
        return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 2, output_type=tf.int32), y), tf.float32), 1)

    def record():
        tr, te = evaluate(x_train, y_train, EVAL_TRAIN_NOISE), evaluate(x_test, y_test, EVAL_TEST_NOISE)
        history.scatter_nd_update([[epoch]], [tf.stack([tr[0], tr[1], te[0], te[1]], axis=1)])

    def one_epoch():
        epoch.assign_add(1)
        sums = batches.fold(epoch, step, () if grads is None else grads.zeros(net.kernels))
        record()
        if grads is not None:
            grads.record(sums, epoch)

    def measured(on_net, at_epoch):  # every layer's activity on x_measure, softmax for the output
        outs = forward(on_net, x_measure, draw_noise(on_net, MEASURE_NOISE, at_epoch, rows=int(x_measure.shape[-2])))
        return [*outs[:-1], tf.nn.softmax(outs[-1])]

    n_params = sum(int(np.prod(v.shape[1:])) for v in net.variables)

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def run(n_epochs):
        when(tf.equal(epoch, 0), record)
        # Loop-carried, as the single core's (epochs.compile_run): one row per epoch of the call.
        snaps = tf.zeros([snapshot_capacity + 1 if snapshot_capacity else 0, n, n_params])

        def epoch_then_snapshot(i, snaps):
            one_epoch()
            if not snapshot_capacity:  # static
                return snaps
            flat = tf.concat([tf.reshape(v, [n, -1]) for v in net.variables], axis=1)
            return tf.tensor_scatter_nd_update(snaps, [[i]], [flat])

        snaps = repeat(n_epochs, epoch_then_snapshot, snaps)
        return measured(net, epoch), snaps

    def with_weights(flat):  # the net with flat weights (N, n_params) in place of the live variables
        sizes = [int(np.prod(v.shape[1:])) for v in net.variables]
        parts = [tf.reshape(p, v.shape) for p, v in zip(tf.split(flat, sizes, axis=1), net.variables, strict=True)]
        return dataclasses.replace(net, kernels=parts[0::2], biases=parts[1::2])

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def activity_at(flat, at_epoch):
        return measured(with_weights(flat), at_epoch)

    n_measure = int(x_measure.shape[-2])

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def samples_at(flat, at_epoch, n_cond):  # n_cond: a Python int, one trace per value
        # Row i * n_cond + k: pass k of input i, as the core alone (forward.measurement) repeats and draws them.
        x = tf.repeat(x_measure, n_cond, axis=-2)
        on_net = with_weights(flat)
        noise = draw_noise(on_net, SAMPLE_NOISE, at_epoch, rows=n_measure * n_cond, feature_major=False)
        outs = noiseless_outputs(on_net, x, noise)
        return [tf.reshape(a, [n, n_measure, n_cond, a.shape[-1]]) for a in [*outs[:-1], tf.nn.softmax(outs[-1])]]

    orders_at = tf.function(batches.orders, jit_compile=True, autograph=False)
    names = net.layer_names  # the single core's Keras layer names
    return ArrayCore(
        run, orders_at, history, net, names, None if grads is None else grads.norms,
        activity_at=activity_at, snapshot_capacity=snapshot_capacity, samples_at=samples_at if net.noisy else None,
    )  # fmt: skip
