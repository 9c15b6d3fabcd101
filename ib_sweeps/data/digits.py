"""The 8x8 handwritten digits that ship with scikit-learn (UCI optical digits, test part: 1797 images).

No download: the file is part of the scikit-learn package. Pixels are counts
0..16 (each of 4x4 blocks of a 32x32 bitmap), 10 classes of about 180 each.
"""

from __future__ import annotations

import functools

import numpy as np

IMAGE_SHAPE = (8, 8)
N_CLASSES = 10
MAX_PIXEL = 16.0


@functools.cache
def read() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64 in 0..16, labels (1797,) int32)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images, d.target.astype(np.int32)
    x.setflags(write=False), y.setflags(write=False)  # cached: shared by every trial in this process
    return x, y
