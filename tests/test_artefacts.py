"""Artefact warnings (clipped fixed-range binning, compressing linear layers, an estimator that says every
condition compresses) on synthetic sweeps whose answer is known, and in the report's three files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ib_sweeps import analysis
from ib_sweeps.analysis import synthetic as syn
from ib_sweeps.analysis.artefacts import artefact_warnings

EPOCHS = np.union1d(np.round(np.logspace(0, np.log10(2000), 40)).astype(int), [300])  # the peak is measured
LAYERS = ("layer_1", "layer_2", "layer_3")  # two hidden layers and the output
ACT = "model.activation"
# "binning": bins of 0.07 over the data's range (Saxe et al.); "fixed": 30 edges over [-1, 1] (IDNNs)
PARAMS = {
    "estimators.binning.method": "binning", "estimators.binning.range": [-1.0, 1.0],
    "estimators.binning.bin_size": 0.07, "estimators.binning.n_bins": None,
    "estimators.fixed.method": "binning", "estimators.fixed.range": [-1.0, 1.0],
    "estimators.fixed.bin_size": None, "estimators.fixed.n_bins": 30,
}  # fmt: skip
# compression (bits) of both hidden layers, per estimator and activation
COMPRESSION = {
    "binning": {"tanh": 3.0, "relu": 2.0, "linear": 1.94},
    "fixed": {"tanh": 3.0, "relu": 0.0, "linear": 1.94},
}


def _trial(axes, compression: dict, rng, params=PARAMS):
    ixt, iyt = {}, {}
    for est, c in compression.items():
        for layer in LAYERS:
            drop = c if layer != "layer_3" else 0.0
            ixt[est, layer] = syn.rise_fall(EPOCHS, 300, 8.0, 8.0 - drop, 1.0) + rng.normal(0, 0.01, len(EPOCHS))
            iyt[est, layer] = syn.rise_fall(EPOCHS, 300, 0.9, 0.95, 0.1)
    return syn.Trial(axes, EPOCHS, ixt, iyt, params=params)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('artefacts') / 'mlflow.db'}"
    rng = np.random.default_rng(0)
    trials = [
        _trial({ACT: a, "seed": s}, {e: COMPRESSION[e][a] for e in COMPRESSION}, rng)
        for a in ("tanh", "relu", "linear")
        for s in range(3)
    ]
    spec = {"grid": {ACT: ["tanh", "relu", "linear"]}, "claims": [{"kind": "compresses", "estimator": "binning"}]}
    syn.write_sweep(uri, "acts", trials, spec)
    # per-layer activations as one logged param (a JSON list), not an axis; one condition
    mixed = {**PARAMS, ACT: ["relu", "tanh"]}
    syn.write_sweep(uri, "mixed", [_trial({"seed": s}, {"fixed": 2.0}, rng, mixed) for s in range(3)])
    # no params logged at all (an older store): nothing to say about ranges or activations
    syn.write_sweep(uri, "bare", [_trial({ACT: "relu", "seed": s}, {"fixed": 0.0}, rng, {}) for s in range(3)])
    return uri


def _warnings(store, sweep):
    runs = analysis.load_runs(sweep, store)
    return artefact_warnings(runs, analysis.compression_table(analysis.load_trace(sweep, store)))


def _by_code(warnings):
    out: dict = {}
    for w in warnings:
        out.setdefault(w["code"], []).append(w)
    return out


def test_fixed_range_binning_of_unbounded_layers_is_flagged(store):
    clipped = _by_code(_warnings(store, "acts"))["clipped_range"]
    # only "fixed" (bin_size binning uses the data's range), only relu and linear (tanh lies within [-1, 1])
    assert {(w["numbers"]["estimator"], w["numbers"]["condition"]) for w in clipped} == {
        ("fixed", "activation=relu"),
        ("fixed", "activation=linear"),
    }
    linear = next(w for w in clipped if w["numbers"]["condition"] == "activation=linear")
    assert linear["numbers"]["range"] == [-1.0, 1.0] and linear["numbers"]["activations"] == ["linear"]
    assert set(linear["numbers"]["layers"]) == {"layer_1", "layer_2"}  # hidden layers only, not the softmax
    assert linear["numbers"]["layers"]["layer_2"]["compress"] == "3/3"
    assert linear["numbers"]["layers"]["layer_2"]["mean_compression"] == pytest.approx(1.94, abs=0.05)
    assert "fixed range [-1, 1]" in linear["message"] and "layer_1, layer_2" in linear["message"]


def test_per_layer_activations_flag_only_the_unbounded_layer(store):
    (w,) = _by_code(_warnings(store, "mixed"))["clipped_range"]
    assert w["numbers"]["activations"] == ["relu"] and list(w["numbers"]["layers"]) == ["layer_1"]


def test_compression_of_linear_layers_is_flagged(store):
    linear = _by_code(_warnings(store, "acts"))["linear_compression"]
    assert {w["numbers"]["estimator"] for w in linear} == {"binning", "fixed"}
    w = linear[0]
    assert w["numbers"]["condition"] == "activation=linear" and "Saxe et al." in w["message"]
    assert w["numbers"]["layers"]["layer_2"]["compress"] == "3/3" and re.search(r"mean 1\.9\d bits", w["message"])


def test_an_estimator_that_says_every_condition_compresses_is_flagged(store):
    (w,) = _by_code(_warnings(store, "acts"))["all_compress"]  # binning; fixed has relu at 0 bits
    assert w["numbers"]["estimator"] == "binning" and len(w["numbers"]["conditions"]) == 3
    assert w["numbers"]["conditions"]["activation=relu"]["compress"] == "3/3"
    assert "all 3 conditions" in w["message"]


def test_no_warning_without_params_or_a_second_condition(store):
    assert _warnings(store, "bare") == []  # relu, but no estimator params or activation: nothing to go on
    assert "all_compress" not in _by_code(_warnings(store, "mixed"))  # one condition only


def test_the_report_carries_the_warnings(store, tmp_path):
    rep = analysis.write_report("acts", tmp_path / "rep", store, log=False, announce=False)
    payload = json.loads(rep.json.read_text())
    codes = [w["code"] for w in payload["warnings"]]
    assert codes.count("clipped_range") == 2 and codes.count("linear_compression") == 2 and "all_compress" in codes
    # in the sweep file's order of conditions: relu before linear
    assert [w["numbers"]["condition"] for w in payload["warnings"][:2]] == ["activation=relu", "activation=linear"]
    assert payload["warnings"][1]["numbers"]["layers"]["layer_2"]["compress"] == "3/3"
    md, page = rep.markdown.read_text(), rep.html.read_text()
    assert "## Warnings: possible estimator artefacts" in md and "- **linear_compression**: " in md
    assert md.index("## Warnings") < md.index("## Compression of the last hidden layer")
    assert "<code>clipped_range</code>" in page and "Saxe et al." in page
