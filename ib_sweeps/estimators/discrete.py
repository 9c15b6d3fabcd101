"""Exact plug-in entropies of discrete codes, in bits.

Rows of integer codes are turned into one int64 key per row by a mixed-radix
encoding (exact; falls back to byte-wise ``np.unique`` when the radix product
would overflow), so no ``np.unique(axis=0)`` over float rows is ever needed.
"""

from __future__ import annotations

import numpy as np

_MAX_KEY = 2**62


def row_ids(codes: np.ndarray) -> np.ndarray:
    """Dense ids 0..m-1 of the distinct rows of an int array (n, d); shape (n,)."""
    codes = codes - codes.min(axis=0)
    radix = codes.max(axis=0).astype(np.float64) + 1.0
    if np.prod(radix) < _MAX_KEY:
        mult = np.cumprod(np.concatenate(([1.0], radix[:-1]))).astype(np.int64)
        key = codes.astype(np.int64) @ mult
    else:  # exact fallback: compare rows as raw bytes
        small = np.ascontiguousarray(codes.astype(np.min_scalar_type(int(codes.max()))))
        key = small.view(np.dtype((np.void, small.dtype.itemsize * small.shape[1]))).ravel()
    return np.unique(key, return_inverse=True)[1].ravel()


def entropy_of_counts(counts: np.ndarray) -> float:
    """Entropy in bits of the empirical distribution given by non-negative counts."""
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


def entropy_of_ids(ids: np.ndarray) -> float:
    """Plug-in entropy in bits of a sample of dense ids (n,), each row weight 1/n."""
    return entropy_of_counts(np.bincount(ids))


def mutual_information_of_ids(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in I(A;B) = H(A) + H(B) - H(A,B) in bits of two dense id samples (n,)."""
    joint = a.astype(np.int64) * (int(b.max()) + 1) + b
    h = entropy_of_ids(a) + entropy_of_ids(b) - entropy_of_counts(np.bincount(joint))
    return float(max(0.0, h))
