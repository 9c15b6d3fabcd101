"""The estimator plug-in contract and the input checks every estimator shares.

An estimator is a frozen pydantic model: its fields are its parameters
(validated on construction), ``method`` is its registry name, and
:meth:`Estimator.information_plane` maps one layer's activity to
(I(X;T), I(Y;T)) in bits.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from ib_sweeps.types import FROZEN, Str


class Estimator(BaseModel):
    """Base class of all estimators. Subclasses set ``method: Literal[name]``."""

    model_config = FROZEN
    # Name under which a trial logs this estimator's metrics; defaults to ``method``.
    label: Str | None = None

    @property
    def key(self) -> str:
        """Metric-key segment: ``label`` if given, else ``method``."""
        return self.label or self.method

    def information_plane(self, activity: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(I(X;T), I(Y;T)) in bits for one layer.

        ``activity``: (n_inputs, n_units) float, one row per distinct input with
        X uniform over the rows; ``labels``: int (n_inputs,).
        """
        raise NotImplementedError

    def information_planes(self, activities, labels) -> np.ndarray:
        """(n_layers, 2) array of (I(X;T), I(Y;T)) in bits, one row per layer's activity."""
        return np.array([self.information_plane(a, labels) for a in activities], dtype=np.float64).reshape(-1, 2)


def check_activity(activity, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate and return ``activity`` as a 2-D array and ``labels`` as a 1-D int array.

    Raises ``ValueError`` for non-2-D, empty or non-finite activity and for
    labels that are not 1-D or do not match the number of rows.
    """
    a = np.asarray(activity)
    if a.ndim != 2:
        raise ValueError(f"activity must be 2-D (n_inputs, n_units); got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"activity must be non-empty; got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"activity must be numeric; got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError("activity contains NaN or inf")
    if labels is None:
        return a, None
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (n_inputs,); got shape {y.shape}")
    if len(y) != len(a):
        raise ValueError(f"labels has {len(y)} entries but activity has {len(a)} rows")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {y.dtype}")
    return a, y
