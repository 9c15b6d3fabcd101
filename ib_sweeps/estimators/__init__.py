"""Mutual-information estimators: one registry from method name to class.

Everything is in bits. ``activity`` is (n_inputs, n_units), one row per
distinct input with X uniform over the rows; ``labels`` is int (n_inputs,).

>>> from ib_sweeps import estimators
>>> estimators.available()
['adaptive_binning', 'binning', 'kde_lower', 'kde_upper', 'ksg', 'lnn', 'noisy_sp', 'plugin']
>>> ixt, iyt = estimators.information_plane(activity, labels, method="binning", n_bins=30)
>>> ixt, iyt = estimators.pooled_information_plane([act_998, act_999, act_1000], labels)  # as-if-random
"""

from __future__ import annotations

from pydantic import ValidationError

from ib_sweeps.estimators.adaptive import AdaptiveBinning
from ib_sweeps.estimators.base import Estimator, check_activity
from ib_sweeps.estimators.binning import Binning
from ib_sweeps.estimators.kde import KDELower, KDEUpper
from ib_sweeps.estimators.ksg import KSG
from ib_sweeps.estimators.lnn import LNN
from ib_sweeps.estimators.noisy_sp import NoisySP
from ib_sweeps.estimators.plugin import PlugIn

REGISTRY: dict[str, type[Estimator]] = {
    "binning": Binning,
    "adaptive_binning": AdaptiveBinning,
    "kde_upper": KDEUpper,
    "kde_lower": KDELower,
    "ksg": KSG,
    "lnn": LNN,
    "noisy_sp": NoisySP,
    "plugin": PlugIn,
}

__all__ = [
    "REGISTRY",
    "Estimator",
    "available",
    "check_activity",
    "entropy",
    "get",
    "information_plane",
    "mutual_information",
    "pooled_information_plane",
]


def available() -> list[str]:
    """Names of all registered estimators."""
    return sorted(REGISTRY)


def get(method: str, **params) -> Estimator:
    """An estimator instance; ``ValueError`` naming valid methods or parameters."""
    if method not in REGISTRY:
        raise ValueError(f"unknown estimator {method!r}; available: {', '.join(available())}")
    cls = REGISTRY[method]
    try:
        return cls(**params)
    except ValidationError as err:
        allowed = ", ".join(f for f in cls.model_fields if f != "method")
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or method}: {e['msg']}" for e in err.errors())
        raise ValueError(f"bad parameters for estimator {method!r}: {problems} (parameters: {allowed})") from None


def information_plane(activity, labels, *, method: str = "binning", **params) -> tuple[float, float]:
    """(I(X;T), I(Y;T)) in bits of one layer's activity (n_inputs, n_units)."""
    return get(method, **params).information_plane(activity, labels)


def pooled_information_plane(activities, labels, *, method: str = "binning", **params) -> tuple[float, float]:
    """(I(X;T), I(Y;T)) in bits of one layer's activity pooled over W consecutive epochs ("as-if-random").

    ``activities``: W arrays (n_inputs, n_units), one per epoch; rows are
    (input, epoch) pairs, X the input; see :meth:`Estimator.pooled_information_plane`.
    """
    return get(method, **params).pooled_information_plane(activities, labels)


def entropy(samples, *, method: str = "binning", **params) -> float:
    """Entropy in bits of samples (n, d) under the chosen estimator."""
    return get(method, **params).entropy(samples)


def mutual_information(a, b, *, method: str = "binning", **params) -> float:
    """I(A;B) in bits of paired samples a (n, d_a) and b (n, d_b)."""
    return get(method, **params).mutual_information(a, b)
