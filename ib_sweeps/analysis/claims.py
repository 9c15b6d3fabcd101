"""Claims a sweep file declares under ``claims:``: one validated model per kind, one registry.

A claim names trials (``where``: axis values they must have), layers
(``last_hidden``, ``output``, ``hidden`` = every hidden layer, or ``layer_k``),
an estimator (default: the sweep's first) and what it asserts about them.
Seeds are the unit of replication: one trial per seed and condition.

* ``compresses`` / ``does_not_compress``: the layers compress (do not) in at
  least ``min_fraction`` of the trials; supported when the Wilson interval of
  the fraction lies at or above it, refuted when it lies below.
* ``depends_on: AXIS``: ``statistic`` differs across the axis's values
  (Kruskal-Wallis or a permutation test at ``alpha``).
* ``stable_across: AXIS``: no two values differ by more than ``tolerance_bits``
  (equivalence: Welch confidence intervals of every pairwise difference).
* ``transition_coincides``: compression onset, training-loss kink and
  gradient-SNR drop lie within ``within_epochs`` of each other.
* ``estimator_agreement``: two estimators rank the conditions the same way
  (Spearman rho, bootstrap interval over seeds, at least ``min_rho``).

Checked against the sweep (axes, estimators) by :func:`problems` before any
trial runs. Evaluation lives in :mod:`ib_sweeps.analysis.verdicts`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, StringConstraints, model_validator

from ib_sweeps.types import FROZEN, Float, PositiveFloat, PositiveInt, Str

LayerRef = Annotated[str, StringConstraints(strict=True, pattern=r"^(last_hidden|output|hidden|layer_[1-9][0-9]*)$")]
Fraction = Annotated[Float, Field(gt=0, le=1)]
Level = Annotated[Float, Field(gt=0, lt=1)]
# Per-trial statistics a claim may compare (columns of ``compression_table``; bits unless stated).
STATISTICS = ("compression", "compression_rel", "ixt_peak", "ixt_final", "iyt_final", "iyt_peak", "fitting_epochs")
Statistic = Literal[STATISTICS]


class _Claim(BaseModel):
    model_config = FROZEN
    name: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = None
    where: dict[str, Any] = {}
    layers: Annotated[list[LayerRef], Field(min_length=1)] = ["last_hidden"]
    estimator: Str | None = None  # None: the sweep's first estimator

    def estimators(self) -> list[str | None]:
        return [self.estimator]

    def axes(self) -> list[str]:
        """Sweep axes this claim names (checked against the sweep)."""
        return list(self.where) + ([self.axis] if getattr(self, "axis", None) else [])


class _Onset(_Claim):
    """Claims that decide whether a layer compresses: a drop from the peak beyond the threshold, kept to the end."""

    threshold_bits: Annotated[Float, Field(ge=0)] = 0.1
    threshold_rel: Annotated[Float, Field(ge=0, lt=1)] = 0.05
    min_fraction: Fraction = 0.5
    confidence: Level = 0.95


class Compresses(_Onset):
    kind: Literal["compresses"]


class DoesNotCompress(_Onset):
    kind: Literal["does_not_compress"]


class DependsOn(_Claim):
    kind: Literal["depends_on"]
    axis: Str
    statistic: Statistic = "compression"
    test: Literal["kruskal", "permutation"] = "kruskal"
    alpha: Level = 0.05
    tolerance_bits: PositiveFloat | None = None  # refuted when every pairwise difference is shown below it
    n_resamples: PositiveInt = 9999
    seed: Annotated[int, Field(ge=0)] = 0


class StableAcross(_Claim):
    kind: Literal["stable_across"]
    axis: Str
    statistic: Statistic = "compression"
    tolerance_bits: PositiveFloat
    confidence: Level = 0.90  # two one-sided tests at 5 % each


class TransitionCoincides(_Onset):
    kind: Literal["transition_coincides"]
    within_epochs: PositiveInt


class EstimatorAgreement(_Claim):
    kind: Literal["estimator_agreement"]
    estimators_: Annotated[list[Str], Field(min_length=2, max_length=2, alias="estimators")]
    axis: Str | None = None  # None: every condition (distinct config without the seed)
    statistic: Statistic = "compression"
    min_rho: Annotated[Float, Field(ge=-1, le=1)] = 0.5
    confidence: Level = 0.95
    n_resamples: PositiveInt = 2000
    seed: Annotated[int, Field(ge=0)] = 0
    model_config = FROZEN | {"populate_by_name": True}

    @model_validator(mode="after")
    def _two(self):
        if self.estimator is not None:
            raise ValueError("estimator: estimator_agreement names two 'estimators', not one 'estimator'")
        if self.estimators_[0] == self.estimators_[1]:
            raise ValueError(f"estimators: must be two different estimators; got {self.estimators_}")
        return self

    def estimators(self) -> list[str | None]:
        return list(self.estimators_)


CLAIMS = {
    "compresses": Compresses,
    "does_not_compress": DoesNotCompress,
    "depends_on": DependsOn,
    "stable_across": StableAcross,
    "transition_coincides": TransitionCoincides,
    "estimator_agreement": EstimatorAgreement,
}
Claim = Annotated[Union[tuple(CLAIMS.values())], Field(discriminator="kind")]  # noqa: UP007


def title(claim, default_estimator: str | None = None) -> str:
    """A readable one-line statement of the claim (its ``name`` if given)."""
    if claim.name:
        return claim.name
    layers = ", ".join(claim.layers)
    where = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in claim.where.items())
    where = f" where {where}" if where else ""
    est = claim.estimator or default_estimator or "first estimator"
    one = len(claim.layers) == 1
    stat, axis = getattr(claim, "statistic", ""), getattr(claim, "axis", None) or "condition"
    texts = {
        "compresses": lambda: f"{layers} {'compresses' if one else 'compress'}{where} ({est})",
        "does_not_compress": lambda: f"{layers} {'does' if one else 'do'} not compress{where} ({est})",
        "depends_on": lambda: f"{stat} of {layers} depends on {axis}{where} ({est})",
        "stable_across": lambda: (
            f"{stat} of {layers} is stable across {axis} (within {claim.tolerance_bits:g} bits){where} ({est})"
        ),
        "transition_coincides": lambda: (
            f"compression onset, loss kink and SNR drop of {layers} coincide "
            f"within {claim.within_epochs} epochs{where} ({est})"
        ),
        "estimator_agreement": lambda: (
            f"{' and '.join(claim.estimators())} rank {axis} alike by {stat} of {layers}{where}"
        ),
    }
    text = texts[claim.kind]()
    return text


def problems(claims, axes: dict[str, list | None], estimators: set[str]) -> list[tuple[str, str]]:
    """(key, message) for every claim naming an axis, axis value or estimator the sweep does not have.

    ``axes``: axis -> its values (``None`` for a searched range); ``estimators``:
    metric keys of the estimators the sweep's trials measure.
    """
    out = []
    names = ", ".join(axes) or "(none)"
    for i, claim in enumerate(claims):
        at = f"claims[{i}]"
        axis = getattr(claim, "axis", None)
        if axis is not None and axis not in axes:
            out.append((f"{at}.axis", f"{axis!r} is not an axis of this sweep; allowed: {names}"))
        for key, value in claim.where.items():
            if key not in axes:
                out.append((f"{at}.where.{key}", f"not an axis of this sweep; allowed: {names}"))
            elif axes[key] is not None and value not in axes[key]:
                out.append((f"{at}.where.{key}", f"got {value!r}; allowed: one of the axis's values {axes[key]}"))
        for est in claim.estimators():
            if est is not None and est not in estimators:
                key = "estimators" if claim.kind == "estimator_agreement" else "estimator"
                out.append((f"{at}.{key}", f"{est!r} is not measured by this sweep; allowed: {sorted(estimators)}"))
    return out
