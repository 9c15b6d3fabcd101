"""The estimator plug-in contract and the input checks every estimator shares.

An estimator is a frozen pydantic model: its fields are its parameters
(validated on construction), ``method`` is its registry name, and
:meth:`Estimator.information_plane` maps one layer's activity to
(I(X;T), I(Y;T)) in bits.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from ib_sweeps.estimators import discrete
from ib_sweeps.types import FROZEN, Float, Label, Seed

MAX_NEIGHBOURS = 10_000  # k of the kNN estimators: the search holds n x (k + 1) distances


class Estimator(BaseModel):
    """Base class of all estimators. Subclasses set ``method: Literal[name]`` and implement ``_plane``.

    ``reducer`` applies to activity with more than two axes (convolutional layers,
    channels last): ``concat`` flattens all channels into one vector per input
    and estimates once; ``mean`` estimates each channel (its spatial positions
    as the vector) and averages the estimates (the two estimates of the 2019
    CNN information-bottleneck report). 2-D activity is used as it is.
    """

    model_config = FROZEN
    # Name under which a trial logs this estimator's metrics (ixt/<label>/<layer>); defaults to ``method``.
    label: Label | None = None
    reducer: Literal["concat", "mean"] = "concat"
    # On a noisy network, measure from repeated noisy passes of each input (``samples_per_input`` of them,
    # :meth:`network_planes`) instead of one noisy draw of the activity.
    uses_noisy_samples: ClassVar[bool] = False

    @property
    def key(self) -> str:
        """Metric-key segment: ``label`` if given, else ``method``."""
        return self.label or self.method

    @property
    def samples_per_input(self) -> int:
        """Noisy passes of each measured input this estimator asks of a noisy network (0: none)."""
        return 0

    @classmethod
    def from_network(cls, raw: dict, model) -> dict:
        """This estimator's raw config ``raw`` completed from the raw ``model`` section (default: as it is)."""
        return raw

    def check_network(self, model, where: str) -> None:
        """Raise ValueError if this estimator cannot measure a network of ``model`` (a validated model config).

        ``where``: the config key of this estimator (``estimators[0]``), to start the message with.
        Default: any network will do.
        """

    def network_planes(self, samples, labels) -> np.ndarray:
        """(n_layers, 2) (I(X;T), I(Y;T)) in bits from a noisy network's samples (``uses_noisy_samples``)."""
        raise NotImplementedError(f"{self.method} measures one activity per input; it takes no noisy samples")

    def entropy(self, samples) -> float:
        """Entropy in bits of ``samples`` (n, d), where the estimator defines one."""
        raise NotImplementedError(
            f"estimator {self.method!r} does not estimate the entropy of samples; it supports: {self._supports()}"
        )

    def mutual_information(self, a, b) -> float:
        """I(A;B) in bits of paired samples ``a`` (n, d_a) and ``b`` (n, d_b), where the estimator defines one."""
        raise NotImplementedError(
            f"estimator {self.method!r} does not estimate the mutual information of paired samples; "
            f"it supports: {self._supports()}"
        )

    def _supports(self) -> str:
        base = Estimator.__dict__
        names = ["information_plane", "pooled_information_plane"]
        names += [n for n in ("entropy", "mutual_information") if getattr(type(self), n) is not base[n]]
        return ", ".join(names)

    def information_plane(self, activity, labels) -> tuple[float, float]:
        """(I(X;T), I(Y;T)) in bits for one layer.

        ``activity``: (n_inputs, n_units) float, one row per distinct input with
        X uniform over the rows (or (n_inputs, ..., channels), see ``reducer``);
        ``labels``: int (n_inputs,).
        """
        return tuple(float(v) for v in self.information_planes([activity], labels)[0])

    def information_planes(self, activities, labels) -> np.ndarray:
        """(n_layers, 2) array of (I(X;T), I(Y;T)) in bits, one row per layer's activity."""
        flat, owner = [], []
        for i, activity in enumerate(activities):
            parts = self._reduce(activity)
            flat += parts
            owner += [i] * len(parts)
        checked = [check_activity(a, labels) for a in flat]
        values = self._planes([a for a, _ in checked], checked[0][1]) if checked else np.zeros((0, 2))
        if len(flat) == len(activities):  # nothing was split per channel
            return np.asarray(values, dtype=np.float64).reshape(-1, 2)
        owner = np.asarray(owner, dtype=np.int64)
        counts = np.bincount(owner, minlength=len(activities))
        out = np.zeros((len(activities), 2))
        np.add.at(out, owner, values)
        return out / np.maximum(counts, 1)[:, None]

    def pooled_information_plane(self, activities, labels) -> tuple[float, float]:
        """(I(X;T), I(Y;T)) in bits of one layer's activity pooled over a window of W epochs.

        The "as-if-random" estimate: the weights are treated as drawn uniformly
        from the window, so T is a random function of X. ``activities``: W arrays
        (n_inputs, n_units) (or more axes, see ``reducer``), one per epoch, all of
        one shape; ``labels``: int (n_inputs,). The W activities become one sample
        of n_inputs x W rows, one per (input, epoch), with X the input's identity
        (uniform) and Y its label. Both quantities are this estimator's I(G;T) for
        a discrete grouping G of the rows (the form of its I(Y;T)): G = input for
        I(X;T), G = label for I(Y;T). So I(X;T) falls below H(X) = log2(n_inputs),
        even for a deterministic network, as far as the representation of an
        input moves within the window.

        Each estimate is clipped to [0, H(G)] (a kNN estimate can overshoot).
        W = 1 is the ordinary :meth:`information_plane`, exactly. Activity with
        more than two axes is reduced per epoch by ``reducer`` (``mean``: each
        channel pooled on its own, the estimates averaged). Cost: estimates on
        n_inputs x W rows (pairwise estimators: ~2 W^2 times an ordinary one).
        """
        acts = [np.asarray(a) for a in activities]
        if not acts:
            raise ValueError("activities must hold at least one epoch's activity (window W >= 1); got none")
        for i, a in enumerate(acts):
            if a.ndim < 2:
                raise ValueError(
                    f"activities must be W arrays (n_inputs, n_units), one per epoch; item {i} has shape {a.shape}"
                )
            if a.shape != acts[0].shape:
                raise ValueError(
                    f"every epoch's activity must have one shape; epoch 0 has {acts[0].shape}, epoch {i} has {a.shape}"
                )
        if len(acts) == 1:
            return self.information_plane(acts[0], labels)
        parts = [self._reduce(a) for a in acts]  # per epoch: the 2-D arrays to estimate on
        _, y = check_activity(parts[0][0], labels)
        h_x, h_y = np.log2(len(y)), discrete.entropy(discrete.dense_ids(y))
        values = []
        for k in range(len(parts[0])):
            samples = np.stack([p[k] for p in parts], axis=1)  # (n_inputs, W, n_units)
            check_activity(samples.reshape(-1, samples.shape[2]))
            ixt, iyt = self._pooled_plane(samples, y)
            values.append((min(max(ixt, 0.0), h_x), min(max(iyt, 0.0), h_y)))
        ixt, iyt = np.mean(values, axis=0)
        return float(ixt), float(iyt)

    def _pooled_plane(self, samples: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(I(X;T), I(Y;T)) in bits of validated ``samples`` (n_inputs, W, n_units), labels int (n_inputs,).

        Default: the rows (input-major) grouped by input, then by label, each
        through :meth:`_group_information`. Override to estimate from the W
        samples of T given each input more directly, never to change the quantity.
        """
        n, w, _ = samples.shape
        pooled = samples.reshape(n * w, -1)
        return (
            self._group_information(pooled, np.repeat(np.arange(n), w)),
            self._group_information(pooled, np.repeat(labels, w)),
        )

    def _group_information(self, activity: np.ndarray, groups: np.ndarray) -> float:
        """I(G;T) in bits of validated 2-D ``activity`` (n, d) and a grouping ``groups`` int (n,) of its rows.

        Default: this estimator's I(Y;T) with the groups as labels. Override only
        to compute the same quantity more cheaply (e.g. for many groups).
        """
        return float(self._planes([activity], groups)[0, 1])

    def _reduce(self, activity) -> list[np.ndarray]:
        a = np.asarray(activity)
        if a.ndim <= 2:
            return [a]
        if self.reducer == "concat":
            return [a.reshape(len(a), -1)]
        by_channel = np.moveaxis(a, -1, 0).reshape(a.shape[-1], len(a), -1)
        return list(by_channel)

    def _planes(self, activities: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
        """(n, 2) (I(X;T), I(Y;T)) in bits of validated 2-D activities; override to batch."""
        return np.array([self._plane(a, labels) for a in activities], dtype=np.float64).reshape(-1, 2)

    def _plane(self, activity: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        raise NotImplementedError

    def _unit_codes(self, activities: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Integer codes (total units, n) of every unit of 2-D ``activities`` (n, d_l), and the layers' row bounds.

        Implemented by estimators whose layer state is the row of its units' codes and
        whose planes are :func:`discrete.planes` of those states (the binnings): the
        planes of many replicas are then computed in one pass
        (:mod:`ib_sweeps.estimators.replicas`). Each layer's codes must depend on that
        layer's activity alone. Default: no such form.
        """
        raise NotImplementedError(f"{self.method} has no per-unit codes")


class JitteredEstimator(Estimator):
    """Base of the kNN-type estimators: ties (e.g. saturated units) are broken by a tiny seeded Gaussian jitter."""

    jitter: Annotated[Float, Field(ge=0)] = 1e-10
    seed: Seed = 0

    def _jittered(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` plus ``jitter`` x max(1, mean |x|) x N(0, 1) noise from ``rng``, in float64."""
        x = np.asarray(x, dtype=np.float64)
        scale = self.jitter * max(1.0, float(np.mean(np.abs(x))))
        return x + scale * rng.standard_normal(x.shape)


def check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Validate paired samples ``a`` (n, d_a) and ``b`` (n, d_b) as :func:`check_activity` does."""
    a, _ = check_activity(a)
    b, _ = check_activity(b)
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} rows but b has {len(b)}")
    return a, b


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
