"""Minibatch-gradient statistics per layer: the drift and diffusion phases of SGD.

Shwartz-Ziv & Tishby (2017, "Opening the black box of deep neural networks via
information", Sec. 2.4 and Fig. 4) split training into a drift phase, where
the mean of the minibatch gradients dominates their fluctuations (high SNR),
and a diffusion phase, where the fluctuations dominate (low SNR), and tie
compression to the second. For every epoch e and layer l, over the epoch's
minibatch gradients g_1 .. g_B of the layer's kernel (weights, not the bias, as
their code ``idnns/plots/plot_gradients.py`` does):

* ``mean_norm`` = ||mean_b g_b||, the L2 norm over the layer's weights;
* ``std_norm`` = ||std_b g_b||, the elementwise standard deviation over the
  batches (population, ddof 0, as their code), then the L2 norm: sqrt of the
  trace of the gradient covariance;
* ``snr`` = mean_norm / std_norm (their Fig. 4). Undefined (NaN) when
  std_norm is 0, as with full-batch training (one batch per epoch).

Every batch counts once, the last, partial one too. The training core
(:mod:`ib_sweeps.train`) accumulates the sums inside its compiled epoch loop
and stores (mean_norm, std_norm) for every epoch; epoch 0 (the untrained
network) has none. A trial logs them as ``grad/<stat>/<layer>`` (step = epoch)
at its measured epochs, backtracked ones included, and keeps every epoch's in
``trace.npz``. Training itself is unchanged by them (tested).
"""

from __future__ import annotations

import numpy as np

from ib_sweeps import records

KEYS = records.GRAD_STATS  # mean_norm, std_norm, snr


def with_snr(norms: np.ndarray) -> np.ndarray:
    """(..., 2) mean and std norms -> (..., 3) with the SNR appended; NaN where std_norm is 0 (or NaN)."""
    norms = np.asarray(norms, dtype=np.float64)
    mean, std = norms[..., 0], norms[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(std > 0, mean / std, np.nan)
    return np.concatenate([norms, snr[..., None]], axis=-1)


def metrics(layers, row: np.ndarray) -> dict[str, float]:
    """Flat metric dict ``grad/<stat>/<layer>`` of one epoch's (n_layers, 3) statistics.

    Layers without weights (a CNN's pooling layer: all NaN) are left out.
    """
    return {
        records.grad(key, layer): float(row[j, k])
        for j, layer in enumerate(layers)
        if not np.isnan(row[j]).all()
        for k, key in enumerate(KEYS)
    }
