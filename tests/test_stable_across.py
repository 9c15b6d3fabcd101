"""stable_across's ``values`` (which axis values are compared) and statistics in units other than bits.

Compression tables are made by hand; the sweep files are the shipped ones (and
temporary ones for what must be refused).
"""

from __future__ import annotations

import pandas as pd
import pytest

from ib_sweeps import claims, sweep
from ib_sweeps.claims.base import REFUTED, SUPPORTED
from ib_sweeps.cli import main
from ib_sweeps.config import ConfigError

ACT = "model.activation"
# Test accuracy (a fraction) per seed: tanh and relu alike (means 0.908 and 0.910), linear 0.2 lower.
ACCURACY = {
    "tanh": [0.90, 0.91, 0.92, 0.91, 0.90],
    "relu": [0.91, 0.90, 0.91, 0.92, 0.91],
    "linear": [0.70, 0.71, 0.69, 0.70, 0.70],
}
CLAIM = {"kind": "stable_across", "axis": ACT, "statistic": "accuracy_test_final", "tolerance_bits": 0.02}


def _table(values: dict[str, list[float]]) -> pd.DataFrame:
    """Last-hidden rows of one estimator: ``accuracy_test_final`` per seed and activation."""
    return pd.DataFrame([
        {"run_id": f"{act}-{seed}", "estimator": "binning", "layer": "layer_1", "is_output": False,
         "is_last_hidden": True, ACT: act, "seed": seed, "accuracy_test_final": v}
        for act, vs in values.items() for seed, v in enumerate(vs)
    ])  # fmt: skip


def _verdict(raw: dict):
    (verdict,) = claims.judge(claims.parse([raw]), lambda th: _table(ACCURACY), "binning")
    return verdict


def test_values_restrict_the_compared_axis_values():
    assert _verdict(CLAIM).verdict == REFUTED  # linear is 0.2 below the others
    v = _verdict(CLAIM | {"values": ["tanh", "relu"]})
    assert v.verdict == SUPPORTED
    assert [q["value"] for q in v.numbers["per_value"]] == ["tanh", "relu"]
    assert v.trials == sorted(f"{a}-{s}" for a in ("tanh", "relu") for s in range(5))
    (pair,) = v.numbers["pairs"]
    assert pair["diff"] == pytest.approx(0.908 - 0.910, abs=1e-12)
    # A fraction: no "bits" in the title or the reason, and three digits for differences of hundredths.
    assert v.title == f"accuracy_test_final of last_hidden is stable across {ACT} (tanh, relu) (within 0.02) (binning)"
    assert v.reason.startswith("last_hidden: every pairwise 90% CI within ±0.02 (largest difference 0.002)")
    assert _verdict(CLAIM | {"values": ["linear", "tanh"]}).verdict == REFUTED
    (bits,) = claims.parse([CLAIM | {"statistic": "compression", "tolerance_bits": 0.5}])
    assert bits.title("binning").endswith("(within 0.5 bits) (binning)")  # information keeps its unit


def test_values_need_two_distinct_values():
    for bad, why in ((["tanh"], "at least 2 items"), (["tanh", "tanh"], "at least 2 distinct axis values")):
        with pytest.raises(ValueError, match=why):
            claims.parse([CLAIM | {"values": bad}])


def _sweep_file(tmp_path, claim: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"""
name: s
description: d
base: {{estimators: [{{method: binning}}]}}
grid: {{model.activation: [tanh, relu]}}
profiles: {{quick: {{}}}}
claims:
  - {claim}
""")
    return str(path)


def test_values_the_sweep_lacks_are_refused_when_it_loads(tmp_path):
    claim = "{kind: stable_across, axis: model.activation, values: [tanh, sigmoid, relu, elu], tolerance_bits: 0.1}"
    with pytest.raises(ConfigError) as err:
        sweep.load(_sweep_file(tmp_path, claim))
    msg = str(err.value)
    allowed = "allowed: one of the axis model.activation's values ['tanh', 'relu']"
    assert f"claims[0].values[1]: got 'sigmoid'; {allowed}" in msg
    assert f"claims[0].values[3]: got 'elu'; {allowed}" in msg
    assert "values[0]" not in msg and "values[2]" not in msg
    with pytest.raises(
        ConfigError,
        match=r"claims\[0\]\.values: needs at least 2 distinct axis values to compare; got \[.relu., .relu.\]",
    ):
        sweep.load(_sweep_file(tmp_path, "{kind: stable_across, axis: model.activation, values: [relu, relu], "
                               "tolerance_bits: 0.1}"))  # fmt: skip
    ok = sweep.load(_sweep_file(tmp_path, "{kind: stable_across, axis: model.activation, values: [relu, tanh], "
                                "tolerance_bits: 0.1}"))  # fmt: skip
    assert ok.spec.claims[0].values == ["relu", "tanh"]


def test_the_papers_claims_are_in_their_sweeps(capsys):
    acts = sweep.load("activations")
    (saxe,) = [c for c in acts.spec.claims if c.kind == "stable_across"]
    assert saxe.values == ["tanh", "relu"] and saxe.statistic == "accuracy_test_final"
    assert saxe.title().endswith("(Saxe et al. 2018)")
    quantized = sweep.load("quantized")
    assert quantized.spec.grid[ACT] == ["tanh", "relu6"]
    *before, lorenzen = quantized.spec.claims
    assert all(c.where.get(ACT) == "tanh" for c in before)  # the earlier claims keep their tanh-only meaning
    assert lorenzen.kind == "depends_on" and lorenzen.axis == ACT and lorenzen.layers == ["hidden"]
    assert lorenzen.title().endswith("(Lorenzen et al. 2022)")
    for name in ("activations", "quantized"):
        assert main(["sweep", name, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "quantized: 160 trials" in out and "trial arrays of" in out  # 2 activations x 4 levels x 20 seeds
    assert main(["sweep", "quantized", "--profile", "quick", "--dry-run"]) == 0
    assert "quantized: 4 trials" in capsys.readouterr().out
