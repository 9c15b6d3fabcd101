"""Data sets: one registry from name to loader.

A loader takes the validated ``DataConfig`` and a ``numpy.random.Generator``
(derived from the trial seed) and returns a :class:`Dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ib_sweeps.data import tishby12


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays plus the inputs the information is measured on.

    ``x_*``: float32 (n, n_features); ``y_*``: int32 (n,). ``x_measure`` holds
    one row per distinct input; X is taken to be uniform over those rows, so
    H(X) = log2(len(x_measure)) bits.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_measure: np.ndarray
    y_measure: np.ndarray
    n_classes: int


def split_indices(n: int, train_fraction: float, split: str, rng: np.random.Generator):
    """Indices (train, test) of ``n`` examples.

    ``reference``: the first ``round(train_fraction * n)`` rows train, in order
    (the default path of the Shwartz-Ziv & Tishby code); ``shuffled``: a
    permutation drawn from ``rng`` (as in Saxe et al.: 3277/819 for 0.8).
    """
    n_train = round(train_fraction * n)
    order = np.arange(n) if split == "reference" else rng.permutation(n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _measured(x, y, train, test, measure_on):
    idx = {"all": np.arange(len(x)), "train": train, "test": test}[measure_on]
    return x[idx], y[idx]


def load_tishby12(cfg, rng: np.random.Generator) -> Dataset:
    """The 12-bit task (4096 inputs, 2 classes); see :mod:`ib_sweeps.data.tishby12`."""
    x = tishby12.patterns().astype(np.float32)
    y = tishby12.labels().astype(np.int32)
    train, test = split_indices(len(x), cfg.train_fraction, cfg.split, rng)
    xm, ym = _measured(x, y, train, test, cfg.measure_on)
    return Dataset("tishby12", x[train], y[train], x[test], y[test], xm, ym, n_classes=2)


DATASETS: dict[str, Callable[..., Dataset]] = {"tishby12": load_tishby12}


def load(cfg, rng: np.random.Generator) -> Dataset:
    """Load the data set named by ``cfg.name`` (validated against ``DATASETS``)."""
    return DATASETS[cfg.name](cfg, rng)
