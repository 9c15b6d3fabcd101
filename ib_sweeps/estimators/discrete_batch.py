"""Exact plug-in planes of one layer of R replicas at once, in bits: :mod:`discrete` batched over replicas.

Replica r's result is bit-identical to :func:`discrete.planes` of
``dense_ids(row_keys(codes[r].T))``, only with fewer, larger numpy calls: the
row keys are exact integers (any summation order gives them), the dense ids
are the first-appearance ids ``pandas.factorize`` gives each replica alone,
and each entropy sums the same float64 terms laid out as the one-replica
contingency table (so the same pairwise summation).
"""

from __future__ import annotations

import threading

import numpy as np

from ib_sweeps.estimators import discrete

_EXACT = 2**53  # float64 holds every integer below it


def state_ids(codes: np.ndarray) -> np.ndarray:
    """Dense ids (R, n) of the rows of R replicas' integer codes (R, d, n); row r as one replica alone.

    Equal to ``dense_ids(row_keys(codes[r].T))`` for every r (replicas whose radix
    product reaches 2**53 take that path itself).
    """
    r, d, n = codes.shape
    lo = codes.min(axis=2)
    radix = codes.max(axis=2).astype(np.float64) - lo.astype(np.float64) + 1
    with np.errstate(over="ignore"):
        exact = np.prod(radix, axis=1) < _EXACT  # partial products are exact below it: the test row_keys makes
    ids = np.empty((r, n), dtype=np.int64)
    for i in np.flatnonzero(~exact):
        ids[i] = discrete.dense_ids(discrete.row_keys(codes[i].T))
    rows = np.flatnonzero(exact)
    if len(rows):
        weights = np.ones((len(rows), 1, d))  # Horner place values: the product of the radices to the right
        weights[:, 0, :-1] = np.cumprod(radix[rows, :0:-1], axis=1)[:, ::-1]
        shifted = _scratch("shifted", (len(rows), d, n), np.float64)
        np.subtract(codes if len(rows) == r else codes[rows], lo[rows, :, None], out=shifted, dtype=np.float64)
        ids[rows] = np.matmul(weights, shifted)[:, 0]  # non-negative integer terms and sums below 2**53: exact
    return _dense(ids)


def _dense(keys: np.ndarray) -> np.ndarray:
    """:func:`discrete.dense_ids` of each row of non-negative int64 ``keys`` (R, n), in place."""
    # Row by row: one hash table per replica stays in cache (one table for all replicas was slower).
    for i in np.flatnonzero(keys.max(axis=1) >= 2 * keys.shape[1] + 1024):
        keys[i] = discrete.dense_ids(keys[i])
    return keys


def planes(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(R, L, 2) plug-in (I(X;T), I(Y;T)) in bits; ``[r]`` is ``discrete.planes(list(ids[r]), labels[r])``.

    ``ids``: dense state ids (R, L, n) of L layers of R replicas; ``labels``: int (R, n).
    """
    r, n_layers, n = ids.shape
    y = np.stack([discrete.dense_ids(np.asarray(lab)) for lab in labels])
    h_y = [discrete.entropy(row) for row in y]
    cols = y.max(axis=1) + 1  # (R,)
    col_list = cols.tolist()
    # joint_counts densifies too sparse tables, which leaves dense ids as they are (all below 2n + 1024).
    rows = ids.max(axis=2) + 1  # (R, L)
    size = rows * cols[:, None]
    t_start = np.cumsum(rows.ravel()) - rows.ravel()
    j_start = np.cumsum(size.ravel()) - size.ravel()
    keys = _scratch("keys", ids.shape, np.int64)
    marg = np.bincount(np.add(ids, t_start.reshape(r, n_layers, 1), out=keys).ravel(), minlength=int(rows.sum()))
    np.multiply(ids, cols[:, None, None], out=keys)
    keys += y[:, None, :]
    keys += j_start.reshape(r, n_layers, 1)
    joint = np.bincount(keys.ravel(), minlength=int(size.sum()))
    marg_terms = discrete.xlogx(marg, _scratch("marg_terms", marg.shape, np.float64))
    joint_terms = discrete.xlogx(joint, _scratch("joint_terms", joint.shape, np.float64))
    out = np.empty((r * n_layers, 2))
    total, blocks = np.int64(n), zip(t_start.tolist(), rows.ravel().tolist(), j_start.tolist(), strict=True)
    for b, (t0, n_t, j0) in enumerate(blocks):
        i = b // n_layers
        h_t = discrete.entropy_of_terms(total, marg_terms[t0 : t0 + n_t].sum())
        table = joint_terms[j0 : j0 + n_t * col_list[i]].reshape(n_t, col_list[i])  # the table's own layout
        out[b] = h_t, max(0.0, h_t + h_y[i] - discrete.entropy_of_terms(total, table.sum()))
    return out.reshape(r, n_layers, 2)


_local = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread buffer of ``shape`` and ``dtype``, reused across calls: fresh large arrays page-fault."""
    size, key = int(np.prod(shape)), f"{name}_{np.dtype(dtype).name}"
    buffers = _local.__dict__.setdefault("buffers", {})
    if key not in buffers or buffers[key].size < size:
        buffers[key] = np.empty(size, dtype)
    return buffers[key][:size].reshape(shape)
