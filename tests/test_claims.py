"""The claim registry (ib_sweeps/claims/): a kind is one file and one registry line.

A toy kind registered here goes through the same validation (schema, axes and
estimators of the sweep) and the same driver as the shipped kinds; every
registered kind is judged inconclusive, with a reason and a title, when no
trial matches it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ib_sweeps import claims
from ib_sweeps.claims.base import INCONCLUSIVE, REFUTED, SUPPORTED, BaseClaim, fmt
from ib_sweeps.types import PositiveFloat


class AtLeast(BaseClaim):
    """Toy kind: the median compression of the layers is at least ``bits``."""

    kind: Literal["at_least"]
    bits: PositiveFloat

    def statement(self, estimator: str) -> str:
        return f"{self.layers_text()} compresses by at least {self.bits:g} bits{self.where_text()} ({estimator})"

    def judge_layer(self, table, ref, default):
        sub = self.rows(table, ref, self.estimator or default)
        if sub.empty:
            return {"verdict": INCONCLUSIVE, "median": float("nan")}, []
        median = float(sub["compression"].median())
        return {"verdict": SUPPORTED if median >= self.bits else REFUTED, "median": median}, sub["run_id"]

    def reason(self, details):
        return "; ".join(f"{d['layer']}: median {fmt(d['median'])} bits" for d in details)


def _table(compression: dict[str, list[float]]) -> pd.DataFrame:
    """A compression table: 2 layers (last hidden, output) x the seeds of each activation, two estimators."""
    rows = []
    for act, values in compression.items():
        for seed, c in enumerate(values):
            for est in ("binning", "kde_upper"):
                for layer, out in (("layer_1", False), ("layer_2", True)):
                    rows.append({
                        "run_id": f"{act}-{seed}", "estimator": est, "layer": layer, "is_output": out,
                        "is_last_hidden": not out, "model.activation": act, "condition": act, "seed": seed,
                        "compression": c if not out else 0.0, "compresses": c > 0.3 and not out,
                        "onset_epoch": 100.0, "loss_kink_epoch": 120.0, "snr_drop_epoch": float("nan"),
                    })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(claims.CLAIMS, "at_least", AtLeast)  # the one registry line


def test_a_new_kind_validates_and_is_judged(toy):
    raw = [
        {"kind": "at_least", "bits": 0.5, "where": {"model.activation": "tanh"}},
        {"kind": "at_least", "bits": 0.5, "where": {"model.activation": "relu"}, "name": "relu compresses"},
        {"kind": "compresses", "where": {"model.activation": "tanh"}},
    ]
    parsed = claims.parse(raw)
    assert [type(c) for c in parsed] == [AtLeast, AtLeast, claims.CLAIMS["compresses"]]
    axes = {"model.activation": ["tanh", "relu"]}
    assert claims.problems(parsed, axes, {"binning"}) == []

    table = _table({"tanh": [1.0, 0.8, 0.9], "relu": [0.0, 0.1, 0.0]})
    seen = []
    verdicts = claims.judge(parsed, lambda th: seen.append(th) or table, "binning")
    assert [v.verdict for v in verdicts] == [SUPPORTED, REFUTED, "inconclusive"]  # 3 seeds cannot decide
    first = verdicts[0]
    assert first.index == 0 and first.kind == "at_least"
    assert first.title == "last_hidden compresses by at least 0.5 bits where activation=tanh (binning)"
    assert first.reason == "last_hidden: median 0.90 bits"
    assert first.trials == ["tanh-0", "tanh-1", "tanh-2"]
    assert first.numbers == {"layer": "last_hidden", "verdict": SUPPORTED, "median": 0.9}
    assert first.claim == {"kind": "at_least", "bits": 0.5, "where": {"model.activation": "tanh"}}
    assert verdicts[1].title == "relu compresses"
    assert seen[0] == (0.1, 0.05)  # a kind without thresholds of its own is judged on the default table


def test_a_new_kind_is_refused_like_any_other(toy):
    with pytest.raises(ValidationError, match="bits"):
        claims.parse([{"kind": "at_least"}])
    with pytest.raises(ValidationError, match="extra"):
        claims.parse([{"kind": "at_least", "bits": 1, "tolerance": 2}])
    with pytest.raises(ValidationError, match="'at_least'"):  # the error lists it among the valid kinds
        claims.parse([{"kind": "at_most", "bits": 1}])
    parsed = claims.parse([{"kind": "at_least", "bits": 1, "where": {"model.width": 3}, "estimator": "ksg"}])
    assert claims.problems(parsed, {"model.activation": ["tanh"]}, {"binning"}) == [
        ("claims[0].where.model.width", "not an axis of this sweep; allowed: model.activation"),
        ("claims[0].estimator", "'ksg' is not measured by this sweep; allowed: ['binning']"),
    ]


def test_a_kind_is_unknown_until_registered():
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        claims.parse([{"kind": "at_least", "bits": 1}])


# The fewest fields each registered kind needs; a new kind adds itself here (the test below checks that).
MINIMAL = {
    "compresses": {},
    "does_not_compress": {},
    "depends_on": {"axis": "model.activation"},
    "stable_across": {"axis": "model.activation", "tolerance_bits": 0.1},
    "transition_coincides": {"within_epochs": 100},
    "estimator_agreement": {"estimators": ["binning", "kde_upper"]},
    "trend": {"axis": "model.activation"},
    "fits": {},
    "near": {"statistic": "ixt_final", "value": 1.0, "tolerance": 0.1},
}


@pytest.mark.parametrize("kind", list(claims.CLAIMS))
def test_every_kind_is_inconclusive_without_matching_trials(kind):
    assert set(MINIMAL) == set(claims.CLAIMS), "add the new kind's fewest fields to MINIMAL"
    claim = claims.parse([{"kind": kind, "where": {"model.activation": "tanh"}} | MINIMAL[kind]])[0]
    table = _table({"relu": [0.0, 0.1], "sigmoid": [0.5, 0.6]})  # no tanh trial
    (verdict,) = claims.judge([claim], lambda th: table, "binning")
    assert verdict.verdict == INCONCLUSIVE and verdict.trials == []
    assert verdict.reason and verdict.title and verdict.kind == kind
    assert verdict.to_dict()["claim"]["kind"] == kind


@pytest.mark.parametrize(
    ("raw", "counted"),
    [
        ({"kind": "compresses"}, "3/6 trials compress"),
        ({"kind": "does_not_compress"}, "3/6 trials do not compress"),
        ({"kind": "fits"}, "6/6 trials fit"),
        ({"kind": "transition_coincides", "within_epochs": 100}, "6/6 trials within 100 epochs"),
    ],
)
def test_fraction_claims_count_trials_not_seeds(raw, counted):
    """Without ``where`` a fraction claim pools conditions (a search sweep: one configuration per trial), so
    its k/n counts trials: here 6 of 3 seeds x 2 activations."""
    table = _table({"tanh": [1.0, 0.8, 0.9], "relu": [0.0, 0.1, 0.0]}).assign(fitting_epochs=50.0)
    (verdict,) = claims.judge(claims.parse([raw]), lambda th: table, "binning")
    assert verdict.reason.startswith(f"last_hidden: {counted} ")


def test_the_old_import_path_still_works():
    from ib_sweeps.analysis import claims as old

    assert old.CLAIMS is claims.CLAIMS and old.Claim is claims.Claim and "compresses" in old.__doc__


def _ordered(values: dict[int, list[float]], column: str) -> pd.DataFrame:
    """Last-hidden rows of one estimator: ``column`` per seed at each training size."""
    rows = [
        {"run_id": f"{size}-{seed}", "estimator": "binning", "layer": "layer_1", "is_output": False,
         "is_last_hidden": True, "data.training_size": size, "seed": seed, column: v}
        for size, vs in values.items() for seed, v in enumerate(vs)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _verdict(raw: dict, table: pd.DataFrame):
    (verdict,) = claims.judge(claims.parse([raw]), lambda th: table, "binning")
    return verdict


def test_trend_against_a_hand_computed_rho():
    # Sizes ranked 2, 5, 8 (three seeds each), values ranked 1..9 in size order: rho = 54 / sqrt(54 * 60) = sqrt(0.9).
    rising = _ordered({205: [0.1, 0.2, 0.3], 819: [0.4, 0.5, 0.6], 2048: [0.7, 0.8, 0.9]}, "compression")
    raw = {"kind": "trend", "axis": "data.training_size"}
    v = _verdict(raw, rising)
    assert v.verdict == SUPPORTED and v.numbers["rho"] == pytest.approx(0.9**0.5, abs=1e-12)
    assert v.numbers["p_value"] < 1e-3 and "rho 0.95" in v.reason
    assert v.title == "compression of last_hidden is increasing in data.training_size (binning)"
    assert _verdict(raw | {"direction": "decreasing"}, rising).verdict == REFUTED
    # Interleaved: ranks (1, 4, 7 | 2, 5, 8 | 3, 6, 9) give rho = 18 / sqrt(54 * 60) = sqrt(0.1) ~ 0.32, p ~ 0.41.
    flat = _ordered({205: [0.1, 0.4, 0.7], 819: [0.2, 0.5, 0.8], 2048: [0.3, 0.6, 0.9]}, "compression")
    v = _verdict(raw, flat)
    assert v.verdict == INCONCLUSIVE and v.numbers["rho"] == pytest.approx(0.1**0.5, abs=1e-12)
    assert _verdict(raw | {"statistic": "iyt_final"}, rising).verdict == INCONCLUSIVE  # no such column values


def test_trend_needs_a_numeric_axis():
    table = _table({"tanh": [1.0, 0.8, 0.9], "relu": [0.0, 0.1, 0.0]})
    v = _verdict({"kind": "trend", "axis": "model.activation"}, table)
    assert v.verdict == INCONCLUSIVE and "not numeric" in v.reason


@pytest.mark.parametrize(
    ("epochs", "verdict", "k"),
    [
        ([40, 80, 120, 60, 90], SUPPORTED, 5),  # 5/5: Wilson [0.57, 1] >= 0.5
        ([0, 0, 0, 0, 0], REFUTED, 0),  # 0/5: Wilson [0, 0.43] < 0.5
        ([40, 0, 120, 0, 90], INCONCLUSIVE, 3),  # 3/5: [0.23, 0.88] straddles 0.5
    ],
)
def test_fits_counts_trials_whose_peak_comes_later(epochs, verdict, k):
    table = _ordered({205: epochs}, "fitting_epochs")
    v = _verdict({"kind": "fits"}, table)
    assert v.verdict == verdict and v.numbers["k"] == k and v.numbers["n"] == 5
    assert v.title == "last_hidden fits (I(X;T) rises first) (binning)"
    assert _verdict({"kind": "fits", "min_epochs": 100}, _ordered({205: [40, 80, 120, 60, 90]}, "fitting_epochs")
                    ).numbers["k"] == 1  # fmt: skip


@pytest.mark.parametrize(
    ("finals", "verdict"),
    [
        ([0.80, 0.82, 0.81, 0.83, 0.79], SUPPORTED),  # mean 0.81, t 95 % [0.790, 0.830] within [0.761, 0.861]
        ([1.50, 1.52, 1.49, 1.51, 1.53], REFUTED),  # [1.490, 1.530] wholly above 0.861
        ([0.70, 0.95, 0.80, 0.90, 0.75], INCONCLUSIVE),  # [0.691, 0.949]: seeds too spread to decide
    ],
)
def test_near_judges_the_t_interval_of_the_mean(finals, verdict):
    raw = {"kind": "near", "statistic": "ixt_final", "value": 0.811, "tolerance": 0.05}
    v = _verdict(raw, _ordered({205: finals}, "ixt_final"))
    assert v.verdict == verdict and v.numbers["n"] == 5
    assert v.numbers["mean"] == pytest.approx(np.mean(finals), abs=1e-12)
    assert v.numbers["ci_low"] < v.numbers["mean"] < v.numbers["ci_high"]
    assert v.title == "ixt_final of last_hidden is near 0.811 (within 0.05 bits) (binning)"
    assert "95% t interval" in v.reason and "[0.761, 0.861]" in v.reason
    assert _verdict(raw, _ordered({205: finals[:1]}, "ixt_final")).verdict == INCONCLUSIVE  # one seed: no interval
    constant = _verdict(raw | {"statistic": "ixt_peak", "value": 2.0}, _ordered({205: [2.0] * 3}, "ixt_peak"))
    assert constant.verdict == SUPPORTED  # clipped at H(X) in every seed: the interval is the point


def test_near_needs_its_numbers():
    with pytest.raises(ValidationError, match="tolerance"):
        claims.parse([{"kind": "near", "statistic": "ixt_final", "value": 0.8}])
    with pytest.raises(ValidationError, match="greater than 0"):
        claims.parse([{"kind": "near", "statistic": "ixt_final", "value": 0.8, "tolerance": 0}])
    with pytest.raises(ValidationError, match="statistic"):
        claims.parse([{"kind": "near", "statistic": "loss", "value": 0.8, "tolerance": 0.1}])


def test_conditions_are_reported_in_one_order_whatever_order_the_store_returns_them():
    """A claim's ``values`` order its pairs; without them numbers ascend, then names: the store's row order
    (which differs between runs of one sweep) changes no reason text."""
    table = _table({"tanh": [1.0, 1.1, 0.9], "relu": [0.2, 0.3, 0.25], "elu": [0.5, 0.6, 0.55]})
    reversed_rows = table.iloc[::-1].reset_index(drop=True)  # relu before tanh, elu first
    raw_pair = {"kind": "stable_across", "axis": "model.activation", "values": ["tanh", "relu"], "tolerance_bits": 0.1}
    raw_all = {"kind": "depends_on", "axis": "model.activation"}
    for raw, first in ((raw_pair, "last_hidden: tanh vs relu"), (raw_all, "last_hidden: elu ")):
        reasons = {
            claims.judge(claims.parse([raw]), lambda th, t=t: t, "binning")[0].reason for t in (table, reversed_rows)
        }
        assert len(reasons) == 1, reasons
        assert first in reasons.pop()
