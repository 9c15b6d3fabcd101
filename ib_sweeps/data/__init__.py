"""Data sets: one registry from name to :class:`Source`.

:func:`load` takes the validated ``DataConfig`` and a ``numpy.random.Generator``
(derived from the trial seed) and returns a :class:`Dataset`. Every data set
goes through the same steps, in this order:

1. its examples (x, y), from the package, scikit-learn or a local file;
2. the train/test split: by ``train_fraction`` and ``split`` (the first draw
   from the generator), or the data set's published split;
3. ``training_size``: a subsample of the training split;
4. ``random_labels``: the labels of a fraction of the training examples permuted;
5. the measured inputs: ``measure_on`` (``all`` = every example of the data
   set, ``train`` = the examples trained on, ``test``), only the first of
   each distinct input where the set repeats a few (``distinct_inputs``),
   capped at ``measure_size``.

Steps 3-5 draw from their own generators, spawned from the one given, so
one option never changes what another draws, and the 12-bit task without
them is exactly what it always was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ib_sweeps.data import digits, mnist, single_neuron, tishby12, variants


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays plus the inputs the information is measured on.

    ``x_*``: float32 (n, n_features), in [0, 1]; ``y_*``: int32 (n,).
    ``x_measure`` holds one row per distinct input; X is taken to be uniform
    over those rows, so H(X) = log2(len(x_measure)) bits. ``input_shape``: the
    shape of one input before flattening (``(28, 28, 1)`` for MNIST, channels
    last), for models that want images; ``(n_features,)`` by default.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_measure: np.ndarray
    y_measure: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...] = field(default=())

    def __post_init__(self):
        if not self.input_shape:
            object.__setattr__(self, "input_shape", (self.x_train.shape[1],))


@dataclass(frozen=True)
class Examples:
    """A data set's examples before any option is applied.

    ``x``: (n, ...) in its own units, divided by ``scale`` into [0, 1];
    ``y``: (n,) ints 0 .. n_classes - 1; ``n_train``: the published split
    (the first ``n_train`` rows train, the rest test), or None to split by
    ``train_fraction``.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]
    scale: float = 1.0
    n_train: int | None = None


@dataclass(frozen=True)
class Source:
    """A registered data set: how to read its examples and which options apply to it.

    ``read(path)`` gets ``data.path`` (None unless ``files`` is set).
    ``n_examples``: the count, when known without reading (checks
    ``training_size`` at validation). ``measure_size``: the default cap on the
    measured inputs. ``files``: where a file-backed data set may live.
    ``input_shape``: the shape of one input, known without reading (lets
    validation check that a CNN gets images). ``n_classes``: the label count, as
    its examples give it, known without reading (sizes the output layer, e.g. the
    CNN's evaluation activity, before loading). ``distinct_inputs``: a toy set
    that repeats a few inputs (to train on many noisy copies) says how many;
    its measured inputs are then the distinct rows, so H(X) = log2 of that.
    """

    read: Callable[[str | None], Examples]
    input_shape: tuple[int, ...] | None = None
    fixed_split: bool = False
    n_examples: int | None = None
    measure_size: int | None = None
    files: mnist.FileSet | None = None
    distinct_inputs: int | None = None
    n_classes: int = field(kw_only=True)

    def defaults(self) -> dict:
        """The config values this data set fills in when a config leaves them out."""
        if self.fixed_split:
            return {"measure_size": self.measure_size}
        return {"train_fraction": 0.8, "split": "shuffled", "measure_size": self.measure_size}


def _tishby12(path) -> Examples:
    return Examples(tishby12.patterns(), tishby12.labels().astype(np.int32), 2, (tishby12.N_BITS,))


def _digits(path) -> Examples:
    x, y = digits.read()
    return Examples(x, y, digits.N_CLASSES, (*digits.IMAGE_SHAPE, 1), scale=digits.MAX_PIXEL)


def _single_neuron(path) -> Examples:
    x, y = single_neuron.read()
    return Examples(x, y, 2, (1,), scale=single_neuron.SCALE)


def _from_files(files: mnist.FileSet) -> Callable[[str | None], Examples]:
    def read(path) -> Examples:
        x, y, n_train = mnist.read(files, path)
        return Examples(x, y, mnist.N_CLASSES, (*mnist.IMAGE_SHAPE, 1), scale=255.0, n_train=n_train)

    return read


# MNIST-size sets: information is measured on at most 10 000 inputs (the size of their test split) by default.
DATASETS: dict[str, Source] = {
    "tishby12": Source(_tishby12, (tishby12.N_BITS,), n_examples=4096, n_classes=2),
    "digits": Source(_digits, (*digits.IMAGE_SHAPE, 1), n_examples=1797, n_classes=digits.N_CLASSES),
    "single_neuron": Source(_single_neuron, (1,), n_examples=4 * single_neuron.COPIES, distinct_inputs=4, n_classes=2),
    "mnist": Source(
        _from_files(mnist.MNIST),
        (*mnist.IMAGE_SHAPE, 1),
        fixed_split=True,
        measure_size=10_000,
        files=mnist.MNIST,
        n_classes=mnist.N_CLASSES,
    ),
    "fashion_mnist": Source(
        _from_files(mnist.FASHION_MNIST),
        (*mnist.IMAGE_SHAPE, 1),
        fixed_split=True,
        measure_size=10_000,
        files=mnist.FASHION_MNIST,
        n_classes=mnist.N_CLASSES,
    ),
}


def split_indices(n: int, train_fraction: float, split: str, rng: np.random.Generator):
    """Indices (train, test) of ``n`` examples.

    ``reference``: the first ``round(train_fraction * n)`` rows train, in order
    (the default path of the Shwartz-Ziv & Tishby code); ``shuffled``: a
    permutation drawn from ``rng`` (as in Saxe et al.: 3277/819 for 0.8).
    """
    n_train = round(train_fraction * n)
    order = np.arange(n) if split == "reference" else rng.permutation(n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def missing(cfg) -> str | None:
    """Why the data set of ``cfg`` (a ``DataConfig``) cannot be read on this machine, or None.

    Cheap (looks for files, reads none), so a sweep can check before any work.
    """
    files = DATASETS[cfg.name].files
    return None if files is None else mnist.missing(files, cfg.path)


def load(cfg, rng: np.random.Generator) -> Dataset:
    """Load the data set named by ``cfg.name`` (validated against ``DATASETS``) with its options applied."""
    source = DATASETS[cfg.name]
    ex = source.read(cfg.path)
    n = len(ex.y)
    if ex.n_train is None:
        train, test = split_indices(n, cfg.train_fraction, cfg.split, rng)
    else:
        train, test = np.arange(ex.n_train), np.arange(ex.n_train, n)
    size_rng, label_rng, measure_rng = rng.spawn(3)
    train = variants.subsample(train, cfg.training_size, size_rng)
    y = ex.y.astype(np.int32)  # a copy: random labels edit it
    y[train] = variants.permute_labels(y[train], cfg.random_labels, label_rng)
    measured = {"all": np.arange(n), "train": train, "test": test}[cfg.measure_on]
    if source.distinct_inputs is not None:
        measured = variants.first_of_each(measured, ex.x)
    measured = variants.cap(measured, cfg.measure_size, measure_rng)

    def x(idx):
        rows = ex.x[idx].reshape(len(idx), -1).astype(np.float32)
        return rows if ex.scale == 1.0 else rows / np.float32(ex.scale)

    return Dataset(
        cfg.name, x(train), y[train], x(test), y[test], x(measured), y[measured], ex.n_classes, ex.input_shape
    )
