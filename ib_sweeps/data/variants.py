"""Options that turn a data set into a variant: fewer training examples, permuted labels, a measurement cap.

Each takes index arrays into a data set's examples and its own
``numpy.random.Generator`` (spawned from the trial's data seed), so changing
one option never changes what another draws.
"""

from __future__ import annotations

import numpy as np


def subsample(train: np.ndarray, size: int | float | None, rng: np.random.Generator) -> np.ndarray:
    """``size`` of the ``train`` indices, drawn without replacement, sorted.

    ``size``: a count (int), a fraction 0 < f <= 1 of ``len(train)`` (float;
    ``round(f * n)``, at least 1), or None for all of them.
    """
    if size is None:
        return train
    n = size if isinstance(size, int) else max(1, round(size * len(train)))
    if n > len(train):
        raise ValueError(
            f"data.training_size: got {size}, but the training split has {len(train)} examples; "
            f"allowed: a count 2 .. {len(train)} or a fraction 0 < f <= 1.0"
        )
    return train if n == len(train) else np.sort(rng.choice(train, size=n, replace=False))


def permute_labels(y: np.ndarray, fraction: float | None, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``y`` with the labels of ``round(fraction * n)`` examples, drawn by ``rng``, permuted among them.

    Random labels as in Zhang et al. (ICLR 2017, "Understanding deep learning
    requires rethinking generalization"): the network can only memorise them.
    A permutation keeps every class count, so H(Y) is unchanged and
    information planes stay comparable. ``fraction`` 1.0 permutes every label.
    """
    y = y.copy()
    if not fraction:
        return y
    chosen = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    y[chosen] = y[rng.permutation(chosen)]
    return y


def cap(indices: np.ndarray, size: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``size`` of ``indices``, drawn without replacement and sorted; all of them if fewer or None."""
    if size is None or size >= len(indices):
        return indices
    return np.sort(rng.choice(indices, size=size, replace=False))


def first_of_each(indices: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The first of ``indices`` (into the rows of ``x``) of each distinct row, in their order.

    For a set that repeats a few inputs: X is uniform over the measured rows,
    so each input must be measured once.
    """
    rows = x[indices].reshape(len(indices), -1)
    _, first = np.unique(rows, axis=0, return_index=True)
    return indices[np.sort(first)]
