"""Exact plug-in entropies of discrete codes, in bits.

Rows of integer codes become one int64 key per row by a mixed-radix (Horner)
encoding, which is exact; if the radix product would overflow, rows are
compared as raw bytes instead. Keys are mapped to dense ids by hashing
(``pandas.factorize``, O(n)), and entropies come from ``bincount``. No sort and
no ``np.unique(axis=0)`` over float rows.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import xlogy

_MAX_KEY = 2**62
_XLOGX_MAX = 2**24  # largest count xlogx looks up (tables of 128 MiB at most)


def row_keys(codes: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """Keys (n,) equal exactly when rows of integer ``codes`` (n, d) are equal.

    Mixed-radix keys are one float64 mat-vec (exact while the radix product is
    below 2**53), else int64 Horner (below 2**62), else row bytes.
    Fastest when each column is contiguous (pass ``c.T`` of a C-order (d, n) array);
    ``scratch``, a float64 (d, n) buffer, saves an allocation.
    """
    lo = codes.min(axis=0)
    radix = codes.max(axis=0).astype(np.float64) - lo.astype(np.float64) + 1  # in float: no int overflow
    with np.errstate(over="ignore"):  # an inf bound just selects the byte-wise path
        bound = np.prod(radix)
    if bound < 2**53:
        weights = np.concatenate((np.cumprod(radix[::-1])[-2::-1], [1.0]))  # Horner place values
        as_float = np.empty(codes.T.shape) if scratch is None else scratch
        # Shifted first, every term and partial sum is a non-negative integer below the bound: exact in any order.
        np.subtract(codes.T, lo[:, None], out=as_float, dtype=np.float64)
        return weights @ as_float
    if bound < _MAX_KEY:
        key = np.zeros(len(codes), dtype=np.int64)
        for j in range(codes.shape[1]):
            key *= int(radix[j])
            key += codes[:, j]
            key -= int(lo[j])
        return key
    if radix.max() < 2**32:  # rows as bytes of the shifted codes, else of the codes themselves
        small = np.ascontiguousarray(codes - lo, dtype=np.min_scalar_type(int(radix.max())))
    else:
        small = np.ascontiguousarray(codes)
    rows = small.view(np.dtype((np.void, small.dtype.itemsize * small.shape[1]))).ravel()
    return np.unique(rows, return_inverse=True)[1].ravel().astype(np.int64)


def dense_ids(keys: np.ndarray) -> np.ndarray:
    """Small non-negative int64 ids (n,), equal exactly where ``keys`` are equal.

    ``keys``: integer-valued (ints, or floats holding integers, as from
    :func:`row_keys`). Small non-negative keys are kept as they are
    (bincount-ready); others are hashed to 0..m-1 (``pandas.factorize``, O(n)).
    """
    keys = keys.astype(np.int64, copy=False)  # int hashing is faster than float hashing
    if len(keys) and keys.min() >= 0 and keys.max() < 2 * len(keys) + 1024:
        return keys
    import pandas as pd

    return pd.factorize(keys)[0].astype(np.int64, copy=False)


def entropy_of_counts(c: np.ndarray) -> float:
    """Entropy in bits of the empirical distribution given by non-negative counts (zeros allowed)."""
    return entropy_of_terms(c.sum(), xlogx(c).sum())


def xlogx(c: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``scipy.special.xlogy(c, c)`` of counts ``c``, the same float64 bits; int64 counts by table look-up (faster).

    ``out``: a float64 array of ``c``'s shape to write into.
    """
    if c.dtype != np.int64 or not c.flags.c_contiguous or c.size == 0 or c.min() < 0 or c.max() > _XLOGX_MAX:
        return xlogy(c, c, out=out)
    return _xlogx_table(int(c.max()).bit_length()).take(c, out=out)


@functools.cache
def _xlogx_table(bits: int) -> np.ndarray:
    """``xlogy(k, k)`` for k = 0 .. 2**bits - 1 (float64)."""
    k = np.arange(1 << bits, dtype=np.float64)
    return xlogy(k, k)


def entropy_of_terms(n, terms: float) -> float:
    """Entropy in bits of counts summing to ``n`` whose ``xlogy(c, c)`` sum to ``terms`` (the one formula)."""
    return float(max(0.0, np.log2(n) - terms / (n * np.log(2))))


def entropy(ids: np.ndarray) -> float:
    """Plug-in entropy in bits of a sample of small non-negative ids (n,), each sample weight 1/n."""
    return entropy_of_counts(np.bincount(ids))


def joint_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Contingency table (max(a)+1, max(b)+1) of paired small non-negative ids (n,)."""
    rows, cols = int(a.max()) + 1, int(b.max()) + 1
    if rows * cols > 4 * len(a) + 1024:  # sparse pairs: densify a first to keep the table small
        a = dense_ids(a)
        rows = int(a.max()) + 1
    return np.bincount(a * cols + b, minlength=rows * cols).reshape(rows, cols)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in I(A;B) = H(A) + H(B) - H(A,B) in bits of paired small non-negative ids (n,).

    The pairs are hashed, not tabulated: memory O(n) however many distinct
    values both sides have (e.g. one group per input).
    """
    pairs = dense_ids(a * (int(b.max()) + 1) + b)
    return float(max(0.0, entropy(a) + entropy(b) - entropy(pairs)))


def planes(layer_ids, labels) -> np.ndarray:
    """(n_layers, 2) plug-in (I(X;T), I(Y;T)) in bits from each layer's state ids and the labels (hashed once).

    X uniform over the inputs and T a function of X: I(X;T) = H(T), I(Y;T) = H(T) + H(Y) - H(T, Y).
    """
    y = dense_ids(labels)
    h_y = entropy(y)
    out = np.empty((len(layer_ids), 2))
    for row, t in zip(out, layer_ids, strict=True):
        table = joint_counts(t, y)
        h_t = entropy_of_counts(table.sum(axis=1))
        row[:] = h_t, max(0.0, h_t + h_y - entropy_of_counts(table))
    return out
