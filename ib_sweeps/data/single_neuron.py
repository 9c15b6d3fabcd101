"""Goldfeld et al.'s single neuron (ICML 2019, "Estimating information flow in deep neural networks").

X is uniform on the four symbols {-3, -1, 1, 3}, labelled 1 only for 3. The
examples are ``COPIES`` copies of the four, interleaved (row i is symbol i mod 4),
so that a training batch averages each symbol over many noise draws and the
``reference`` split takes the same number of copies of each symbol. The
information is measured on the four distinct symbols (``Source.distinct_inputs``):
H(X) = 2 bits, H(Y) = H(1/4, 3/4) = 0.811 bits.

Inputs reach the network as (x + 3) / 6, in {0, 1/3, 2/3, 1} (the Dataset
contract's [0, 1]); the neuron tanh(w' x' + b') is then tanh(wx + b) with
w = w' / 6 and b = b' + w' / 2, so what is measured is the same.
"""

from __future__ import annotations

import numpy as np

SYMBOLS = np.array([-3.0, -1.0, 1.0, 3.0])
COPIES = 80  # 320 examples: at train_fraction 0.8, reference split, 64 copies of each symbol train, 16 test
SHIFT, SCALE = 3.0, 6.0  # (x + SHIFT) / SCALE is in [0, 1]


def labels(x: np.ndarray) -> np.ndarray:
    """y = 1 for x = 3, else 0 (int32)."""
    return (x == 3.0).astype(np.int32)


def read(path=None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): x (4 * COPIES, 1) float64, x + 3 in {0, 2, 4, 6} (divide by ``SCALE``); y (4 * COPIES,) int32."""
    x = np.tile(SYMBOLS, COPIES)
    return (x + SHIFT)[:, None], labels(x)
