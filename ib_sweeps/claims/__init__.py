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
  (Spearman rho, expanded bootstrap interval over seeds, at least ``min_rho``).
* ``trend: AXIS``: ``statistic`` rises (falls) along a numeric axis (Spearman rho, p < ``alpha``).
* ``fits``: the layers have a fitting phase (I(X;T) peaks after the first
  measured epoch) in at least ``min_fraction`` of the trials (Wilson interval).
* ``near``: the mean of ``statistic`` over the trials is ``value`` ± ``tolerance``
  (its t interval lies within; refuted when wholly outside).

Checked against the sweep (axes, estimators) by :func:`problems` before any
trial runs; judged on a compression table by :func:`judge` (the analysis reads
the table from MLflow: :mod:`ib_sweeps.analysis.verdicts`). A kind is one file
here (its schema, title and rule; see :mod:`ib_sweeps.claims.base`) and one
line in :data:`CLAIMS`.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, TypeAdapter

from ib_sweeps.claims.base import STATISTICS, BaseClaim, Verdict, judge
from ib_sweeps.claims.compresses import Compresses
from ib_sweeps.claims.depends_on import DependsOn
from ib_sweeps.claims.does_not_compress import DoesNotCompress
from ib_sweeps.claims.estimator_agreement import EstimatorAgreement
from ib_sweeps.claims.fits import Fits
from ib_sweeps.claims.near import Near
from ib_sweeps.claims.stable_across import StableAcross
from ib_sweeps.claims.transition_coincides import TransitionCoincides
from ib_sweeps.claims.trend import Trend

CLAIMS: dict[str, type[BaseClaim]] = {
    "compresses": Compresses,
    "does_not_compress": DoesNotCompress,
    "depends_on": DependsOn,
    "stable_across": StableAcross,
    "transition_coincides": TransitionCoincides,
    "estimator_agreement": EstimatorAgreement,
    "trend": Trend,
    "fits": Fits,
    "near": Near,
}


def union(registry: dict[str, type[BaseClaim]]):
    """The pydantic type of one claim of ``registry``, told apart by its ``kind``."""
    return Annotated[Union[tuple(registry.values())], Field(discriminator="kind")]  # type: ignore[misc]  # noqa: UP007


Claim = union(CLAIMS)  # what a sweep file's ``claims:`` items validate against


def parse(claims: list) -> list[BaseClaim]:
    """Claims (dicts as in a sweep file, or validated claims) validated against the current :data:`CLAIMS`."""
    items = [c if isinstance(c, dict) else c.model_dump(by_alias=True) for c in claims]
    return TypeAdapter(list[union(CLAIMS)]).validate_python(items)  # type: ignore[misc]


def title(claim: BaseClaim, default_estimator: str | None = None) -> str:
    """A readable one-line statement of the claim (its ``name`` if given)."""
    return claim.title(default_estimator)


def problems(claims, axes: dict[str, list | None], estimators: set[str]) -> list[tuple[str, str]]:
    """(key, message) for every claim naming an axis, axis value or estimator the sweep does not have.

    ``axes``: axis -> its values (``None`` for a searched range); ``estimators``:
    metric keys of the estimators the sweep's trials measure.
    """
    out = []
    names = ", ".join(axes) or "(none)"
    for i, claim in enumerate(claims):
        at = f"claims[{i}]"
        axis = claim.compared_axis()
        if axis is not None and axis not in axes:
            out.append((f"{at}.axis", f"{axis!r} is not an axis of this sweep; allowed: {names}"))
        for key, value in claim.where.items():
            values = axes.get(key)
            if key not in axes:
                out.append((f"{at}.where.{key}", f"not an axis of this sweep; allowed: {names}"))
            elif values is not None and value not in values:
                out.append((f"{at}.where.{key}", f"got {value!r}; allowed: one of the axis's values {values}"))
        for est in claim.estimators():
            if est is not None and est not in estimators:
                message = f"{est!r} is not measured by this sweep; allowed: {sorted(estimators)}"
                out.append((f"{at}.{claim.estimator_key}", message))
    return out


__all__ = ["CLAIMS", "STATISTICS", "BaseClaim", "Claim", "Verdict", "judge", "parse", "problems", "title", "union"]
