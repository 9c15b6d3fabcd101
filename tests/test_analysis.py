"""Analysis: per-trial statistics on hand-made traces; loaders and every claim verdict on synthetic sweeps.

Synthetic sweeps are written straight into a temporary SQLite MLflow store
(no training); each answer is known by construction.
"""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ib_sweeps import analysis
from ib_sweeps.analysis import histories, stats
from ib_sweeps.analysis import synthetic as syn
from ib_sweeps.analysis.intervals import bootstrap_mean, welch, wilson

EPOCHS = np.r_[0, np.unique(np.geomspace(1, 3000, 60).astype(int))]
LAYERS = ("layer_1", "layer_2", "layer_3")  # layer_2 is the last hidden layer, layer_3 the output


# -- per-trial statistics on hand-made traces -------------------------------------------------------


def test_onset_ignores_a_dip_that_recovers():
    e = np.arange(10)
    # peak 5 at epoch 2; line = 5 - 0.5; a dip at epochs 4-5 recovers at 6, the final stretch starts at 7
    assert stats.compression_onset(e, [1, 2, 5, 5, 4, 3, 5, 3, 2, 2.0], 0.5, 0) == 7
    assert stats.compression_onset(e, [1, 2, 5, 5, 4, 3, 4.9, 4.95, 4.9, 4.9], 0.5, 0) is None  # ends above the line
    assert stats.compression_onset(e, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0], 0.1, 0) is None  # still fitting
    # relative threshold: 10 % of a peak of 10 is 1 bit, so a 0.5-bit drop is not compression
    assert stats.compression_onset(e, [10, 10, 10, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5], 0.1, 0.1) is None
    assert stats.compression_onset(e, [10, 10, 10, 8.5, 8.5, 8.5, 8.5, 8.5, 8.5, 8.5], 0.1, 0.1) == 3


def test_breakpoint_recovers_a_hinge_to_the_grid_spacing():
    x = np.linspace(0, 4, 81)  # spacing 0.05
    y = np.where(x < 1.5, 2 - 2 * x, -1 - 0.1 * (x - 1.5))
    at, before, after = stats.breakpoint(x, y)
    assert at == pytest.approx(1.5, abs=0.05)
    assert before == pytest.approx(-2, abs=1e-6) and after == pytest.approx(-0.1, abs=1e-6)
    assert stats.breakpoint(x[:5], y[:5]) is None  # too few points for two segments


def _hand_trace(ixt, iyt, loss=None, snr=None, epochs=(0, 10, 100, 1000, 2000, 3000)):
    n = len(epochs)
    return pd.DataFrame({
        "run_id": "r", "condition": "all", "seed": 0, "estimator": "binning", "layer": "layer_1",
        "layer_index": 1, "n_layers": 2, "epoch": list(epochs), "ixt": ixt, "iyt": iyt,
        "loss/train": loss if loss is not None else [np.nan] * n,
        "grad/snr": snr if snr is not None else [np.nan] * n,
    })  # fmt: skip


def test_compression_table_numbers_of_a_hand_made_trace():
    trace = _hand_trace(ixt=[2.0, 6.0, 8.0, 7.0, 5.0, 5.0], iyt=[0.1, 0.5, 0.9, 0.95, 0.97, 0.96])
    row = analysis.compression_table(trace, threshold_bits=0.5, threshold_rel=0.0).iloc[0]
    assert row["ixt_peak"] == 8.0 and row["peak_epoch"] == 100 and row["fitting_epochs"] == 100
    assert row["ixt_final"] == 5.0 and row["compression"] == 3.0 and row["compression_rel"] == pytest.approx(3 / 8)
    assert row["compresses"] and row["onset_epoch"] == 1000  # 7 <= 8 - 0.5 from epoch 1000 on
    assert row["iyt_final"] == 0.96 and row["iyt_peak"] == 0.97
    assert row["is_last_hidden"] and not row["is_output"]
    assert math.isnan(row["loss_kink_epoch"]) and math.isnan(row["snr_drop_epoch"])  # nothing logged
    flat = analysis.compression_table(_hand_trace([2.0, 6.0, 8.0, 8.0, 7.8, 7.9], [0.5] * 6), 0.5, 0.0).iloc[0]
    assert not flat["compresses"] and flat["compression"] == pytest.approx(0.1)


def test_final_accuracy_and_generalisation_gap_of_a_hand_made_trace():
    # Two layers x two estimators of one trial; the accuracies are per trial (fractions), read at its last
    # measured epoch (3000), whatever the layer or estimator: 0.98 - 0.91 = 0.07.
    one = _hand_trace(ixt=[2.0, 6.0, 8.0, 7.0, 5.0, 5.0], iyt=[0.5] * 6).assign(
        **{"accuracy/train": [0.5, 0.6, 0.8, 0.9, 0.97, 0.98], "accuracy/test": [0.5, 0.6, 0.75, 0.85, 0.9, 0.91]}
    )
    trace = pd.concat(
        [
            one.assign(layer=layer, layer_index=i, estimator=est)
            for i, layer in enumerate(("layer_1", "layer_2"), 1)
            for est in ("binning", "kde_upper")
        ]
    )
    table = analysis.compression_table(trace.sample(frac=1, random_state=0))  # row order must not matter
    assert len(table) == 4
    assert (table["accuracy_train_final"] == 0.98).all() and (table["accuracy_test_final"] == 0.91).all()
    assert table["generalisation_gap"].to_numpy() == pytest.approx([0.07] * 4, abs=1e-12)
    # The trial's last measured epoch decides, not the last finite value: NaN there gives NaN.
    late = one.assign(**{"accuracy/test": [0.5, 0.6, 0.75, 0.85, 0.9, np.nan]})
    row = analysis.compression_table(late).iloc[0]
    assert row["accuracy_train_final"] == 0.98 and math.isnan(row["accuracy_test_final"])
    assert math.isnan(row["generalisation_gap"])
    bare = analysis.compression_table(_hand_trace([1.0] * 6, [0.5] * 6)).iloc[0]  # no accuracy columns
    assert math.isnan(bare["accuracy_test_final"]) and math.isnan(bare["generalisation_gap"])


def test_loss_kink_and_snr_drop_of_power_laws():
    e = EPOCHS
    loss = syn.kinked(e, 200, -0.6, -0.05)
    snr = syn.kinked(e, 500, 0.0, -1.0, at_one=3)  # 3 until epoch 500, then 3 * 500 / epoch: below 1 after 1500
    trace = _hand_trace(syn.rise_fall(e, 300, 8, 5), np.ones(len(e)), loss, snr, epochs=e)
    row = analysis.compression_table(trace).iloc[0]
    # the grid is log-spaced with ~14 % steps here, so the found epochs sit within one grid step
    assert row["loss_kink_epoch"] == pytest.approx(200, rel=0.15)
    assert row["snr_drop_epoch"] == pytest.approx(1500, rel=0.15)
    rising = _hand_trace(syn.rise_fall(e, 300, 8, 5), np.ones(len(e)), loss, syn.kinked(e, 500, 0, 1), epochs=e)
    assert math.isnan(analysis.compression_table(rising).iloc[0]["snr_drop_epoch"])  # no fall: no drop
    # a plateau before the loss falls does not draw the kink to the plateau's end
    plateau = np.where(
        e < 20, 1.0, syn.kinked(np.maximum(e, 20), 200, -0.6, -0.05) / syn.kinked([20], 200, -0.6, -0.05)
    )
    row = analysis.compression_table(_hand_trace(np.ones(len(e)), np.ones(len(e)), plateau, None, epochs=e)).iloc[0]
    assert row["loss_kink_epoch"] == pytest.approx(200, rel=0.15)


def test_snr_drop_is_the_crossing_below_one_after_the_peak():
    e = np.arange(12) * 10
    #            rises above 1, a single noisy dip below 1, falls below 1 for good at epoch 80
    snr = [0.5, 0.8, 2.0, 3.0, 0.5, 3.0, 2.5, 1.5, 0.9, 0.5, 0.4, 0.3]
    assert stats.snr_drop(e, snr) == 80  # the running median ignores the dip at 40
    assert math.isnan(stats.snr_drop(e, [0.5] * 12))  # never above 1: no drift phase
    assert math.isnan(stats.snr_drop(e, [5.0] * 12))  # never falls below 1


def test_intervals_against_hand_values():
    lo, hi = wilson(5, 5, 0.95)
    # Wilson: centre (p + z^2/2n)/(1 + z^2/n), z = 1.959964; for 5/5: [n/(n + z^2), 1]
    assert lo == pytest.approx(5 / (5 + 1.959964**2), abs=1e-6) and hi == 1.0
    assert math.isnan(wilson(0, 0)[0])
    diff, lo, hi = welch([0, 0, 0], [0, 0, 0])
    assert (diff, lo, hi) == (0, 0, 0)  # both constant: exact
    diff, lo, hi = welch([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.9)
    # se = sqrt(2 * 1/3), df = 4, t_0.95(4) = 2.131847
    assert diff == 0 and hi == pytest.approx(2.131847 * math.sqrt(2 / 3), abs=1e-5) and lo == pytest.approx(-hi)
    assert math.isnan(welch([1.0], [1.0, 2.0])[1])
    assert bootstrap_mean([3.0]) == (3.0, 3.0, 3.0)
    mean, lo, hi = bootstrap_mean([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and 1.0 <= lo < 2.5 < hi <= 4.0


# -- synthetic sweeps --------------------------------------------------------------------------------


def _trial(axes, compression, seed_noise, rng, kink=300, snr_drop=300, peak_epoch=300, estimators=("binning",),
           offsets=None, status="FINISHED"):  # fmt: skip
    """Layers peak at 8 bits at ``peak_epoch``; the last hidden layer ends ``compression`` bits lower."""
    ixt, iyt = {}, {}
    for i, est in enumerate(estimators):
        shift = 0.0 if offsets is None else offsets[i]
        for layer in LAYERS:
            c = compression + shift if layer == "layer_2" else 0.0
            ixt[est, layer] = syn.rise_fall(EPOCHS, peak_epoch, 8.0, 8.0 - c, 1.0) + rng.normal(
                0, seed_noise, len(EPOCHS)
            )
            iyt[est, layer] = syn.rise_fall(EPOCHS, peak_epoch, 0.9, 0.95, 0.1)
    per_epoch = {
        "loss/train": syn.kinked(EPOCHS, kink, -0.5, -0.05),
        "accuracy/train": np.linspace(0.5, 1, len(EPOCHS)),
    }
    # SNR 1.3 until ``snr_drop``, then falling as 1/epoch: below 1 from 1.3 * snr_drop
    grad = {("snr", layer): syn.kinked(EPOCHS, snr_drop, 0.0, -1.0, 1.3) for layer in LAYERS} if snr_drop else {}
    return syn.Trial(axes, EPOCHS, ixt, iyt, per_epoch, grad, status)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Synthetic sweeps with known answers, in one SQLite store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('analysis') / 'mlflow.db'}"
    rng = np.random.default_rng(0)
    base = {"base": {"estimators": [{"method": "binning"}, {"method": "kde_upper"}]}}
    act = "model.activation"

    # activations: tanh compresses by ~4 bits, relu by ~0; plus one FAILED run that must be ignored
    trials = [_trial({act: a, "seed": s}, 4.0 if a == "tanh" else 0.0, 0.02, rng) for a in ("tanh", "relu")
              for s in range(5)]  # fmt: skip
    trials.append(_trial({act: "tanh", "seed": 9}, 0.0, 0.0, rng, status="FAILED"))
    syn.write_sweep(uri, "acts", trials, base | {"claims": [
        {"kind": "compresses", "where": {act: "tanh"}},
        {"kind": "compresses", "where": {act: "relu"}},
        {"kind": "does_not_compress", "where": {act: "relu"}},
        {"kind": "does_not_compress", "where": {act: "tanh"}},
        {"kind": "depends_on", "axis": act},
        {"kind": "stable_across", "axis": act, "tolerance_bits": 0.5},
        {"kind": "transition_coincides", "where": {act: "tanh"}, "within_epochs": 150},
    ]})  # fmt: skip

    # mixed: 3 of 5 seeds compress -> fraction claims cannot decide; groups equal within noise
    mixed = [_trial({act: "tanh", "seed": s}, 4.0 if s < 3 else 0.0, 0.02, rng) for s in range(5)]
    mixed += [_trial({"model.activation": "relu", "seed": s}, 4.0 if s < 2 else 0.0, 0.02, rng) for s in range(5)]
    syn.write_sweep(uri, "mixed", mixed, base)

    # batch: compression 2 bits at every batch size, seed noise 0.05 -> stable; one seed per value -> undecided
    batch = [_trial({"train.batch_size": b, "seed": s}, 2.0 + rng.normal(0, 0.05), 0.01, rng)
             for b in (32, 256, "full") for s in range(4)]  # fmt: skip
    syn.write_sweep(uri, "batch", batch, base)
    noisy = [_trial({"train.batch_size": b, "seed": s}, 2.0 + rng.normal(0, 1.0) + (0.3 if b == 32 else 0), 0.01, rng)
             for b in (32, 256) for s in range(3)]  # fmt: skip
    syn.write_sweep(uri, "noisy", noisy, base)

    # transitions: onset far later than the loss kink, and no gradients logged at all
    late = [_trial({act: "tanh", "seed": s}, 4.0, 0.01, rng, kink=5, snr_drop=5, peak_epoch=1500) for s in range(4)]
    syn.write_sweep(uri, "late", late, base)
    nograd = [_trial({act: "tanh", "seed": s}, 0.0, 0.0, rng, kink=300, snr_drop=0) for s in range(5)]
    syn.write_sweep(uri, "nograd", nograd, base)

    # estimators: kde_upper agrees with binning on the order of 3 bin counts, or reverses it (3, 2, 1 bits
    # against 1, 2, 3), or is flat
    for name, offsets in (("agree", lambda c: (0.0, 0.5)), ("reverse", lambda c: (0.0, 4 - 2 * c)),
                          ("flat", lambda c: (0.0, 2.0 - c))):  # fmt: skip
        ts = [_trial({"estimators.0.n_bins": nb, "seed": s}, c, 0.01, rng, estimators=("binning", "kde_upper"),
                     offsets=offsets(c)) for nb, c in ((10, 1.0), (30, 2.0), (100, 3.0)) for s in range(4)]  # fmt: skip
        syn.write_sweep(uri, name, ts, base)

    # fitting: tanh's I(X;T) is highest at the first measured epoch and only falls; 3 of 5 relu seeds rise first
    def falling(axes):
        ixt = {("binning", layer): np.linspace(8.0, 6.0, len(EPOCHS)) for layer in LAYERS}
        return syn.Trial(axes, EPOCHS, ixt, {key: np.full(len(EPOCHS), 0.5) for key in ixt})

    nofit = [falling({act: "tanh", "seed": s}) for s in range(5)]
    nofit += [_trial({act: "relu", "seed": s}, 1.0, 0.0, rng) if s < 3 else falling({act: "relu", "seed": s})
              for s in range(5)]  # fmt: skip
    syn.write_sweep(uri, "nofit", nofit, base)
    return uri


def _verdicts(store, sweep, claims):
    return [v.verdict for v in analysis.evaluate_claims(sweep, store, claims=claims)]


@pytest.mark.slow
def test_load_runs_and_trace_shapes(store):
    runs = analysis.load_runs("acts", store)
    assert len(runs) == 11 and set(runs["status"]) == {"FINISHED", "FAILED"}
    assert set(runs["condition"]) == {"activation=tanh", "activation=relu"}
    assert runs["seed"].dtype.kind == "i" and set(runs["model.activation"]) == {"tanh", "relu"}
    assert len(analysis.load_runs("acts", store, status="FAILED")) == 1
    trace = analysis.load_trace("acts", store)
    # FINISHED only: 10 trials x measured epochs x 3 layers x 1 estimator
    assert len(trace) == 10 * len(EPOCHS) * 3
    assert {"ixt", "iyt", "loss/train", "accuracy/train", "grad/snr", "epoch", "layer_index"} <= set(trace.columns)
    one = trace[(trace["seed"] == 0) & (trace["condition"] == "activation=tanh") & (trace["layer"] == "layer_1")]
    one = one[one["estimator"] == "binning"]
    assert one["loss/train"].to_numpy() == pytest.approx(syn.kinked(EPOCHS, 300, -0.5, -0.05))
    assert one["grad/snr"].to_numpy() == pytest.approx(syn.kinked(EPOCHS, 300, 0.0, -1.0, 1.3))
    history = analysis.load_history("acts", store)
    assert len(history) == 10 * len(EPOCHS) and "loss/train" in history


@pytest.mark.slow
def test_locate_by_name_experiment_id_and_parent_run(store):
    from mlflow import MlflowClient

    src = analysis.locate("acts", store)
    assert analysis.locate(src.parent_run_id, store).parent_run_id == src.parent_run_id
    assert analysis.locate(src.experiment_id, store).parent_run_id == src.parent_run_id
    with pytest.raises(LookupError, match=r"no sweep 'nope'.*acts"):
        analysis.locate("nope", store)
    child = MlflowClient(src.uri).search_runs([src.experiment_id], "tags.`ib_sweeps.role` = 'trial'")[0]
    with pytest.raises(LookupError, match="not a sweep's parent run"):
        analysis.locate(child.info.run_id, store)


@pytest.mark.slow
def test_latest_invocation_is_the_default(store, tmp_path):
    rng = np.random.default_rng(1)
    first = syn.write_sweep(store, "twice", [_trial({"seed": 0}, 1.0, 0.0, rng)])
    second = syn.write_sweep(store, "twice", [_trial({"seed": 0}, 2.0, 0.0, rng), _trial({"seed": 1}, 2.0, 0, rng)])
    assert analysis.locate("twice", store).parent_run_id == second
    assert len(analysis.load_runs(first, store)) == 1 and len(analysis.load_runs("twice", store)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("labels_on_rows", [False, True])
def test_bulk_sql_read_equals_per_key_reads_and_is_cached(store, monkeypatch, labels_on_rows):
    from mlflow import MlflowClient

    rng = np.random.default_rng(2)
    nan_trial = _trial({"seed": 0}, 1.0, 0.0, rng)
    nan_trial.iyt["binning", "layer_1"][[3, 7]] = np.nan  # MLflow stores NaN as 0 plus a flag
    syn.write_sweep(store, "nan", [nan_trial])
    if labels_on_rows:  # as when a run logs between the count and the value query
        monkeypatch.setattr("ib_sweeps.store_sql._agree", lambda counts, rows: False)
    for name in ("acts", "nan"):
        src = analysis.locate(name, store)
        client = MlflowClient(src.uri)
        wanted = {r.info.run_id: list(r.data.metrics) for r in src.children}
        histories.clear_cache()
        bulk = histories.read(client, src.uri, wanted, ended=set(wanted))
        each = histories._read_each(client, {k: set(v) for k, v in wanted.items()})
        assert bulk.keys() == each.keys() and len(bulk) >= 8
        for key in bulk:
            assert np.array_equal(bulk[key][0], each[key][0])
            assert np.array_equal(bulk[key][1], each[key][1], equal_nan=True)
        cached = histories.read(None, src.uri, wanted, ended=set(wanted))  # no client: must come from the cache
        assert cached.keys() == bulk.keys()
    (run_id,) = wanted
    assert np.isnan(bulk[run_id, "iyt/binning/layer_1"][1][[3, 7]]).all()


@pytest.mark.slow
def test_verdicts_of_fraction_claims(store):
    by = {v.index: v for v in analysis.evaluate_claims("acts", store)}
    assert [by[i].verdict for i in range(4)] == ["supported", "refuted", "supported", "refuted"]
    v = by[0]
    assert v.numbers["k"] == 5 and v.numbers["n"] == 5  # the FAILED tanh run is not counted
    assert v.numbers["ci_low"] == pytest.approx(5 / (5 + 1.959964**2), abs=1e-4)
    assert len(v.trials) == 5 and "5/5 trials compress" in v.reason
    mixed = [{"kind": "compresses", "where": {"model.activation": "tanh"}},
             {"kind": "does_not_compress", "where": {"model.activation": "tanh"}}]  # fmt: skip
    assert _verdicts(store, "mixed", mixed) == ["inconclusive", "inconclusive"]  # 3/5: Wilson [0.23, 0.88]
    assert _verdicts(store, "acts", [{"kind": "compresses", "where": {"model.activation": "sigmoid"}}]) == [
        "inconclusive"
    ]  # no trial


@pytest.mark.slow
def test_verdicts_of_depends_on(store):
    by = {v.index: v for v in analysis.evaluate_claims("acts", store)}
    assert by[4].verdict == "supported"
    per_value = {d["value"]: d for d in by[4].numbers["per_value"]}
    assert per_value["tanh"]["mean"] == pytest.approx(4.0, abs=0.1) and per_value["relu"]["n"] == 5
    assert by[4].numbers["p_value"] < 0.05 and by[4].numbers["epsilon_squared"] > 0.5
    claim = {"kind": "depends_on", "axis": "train.batch_size"}
    assert _verdicts(store, "batch", [claim | {"tolerance_bits": 0.5}]) == ["refuted"]
    assert _verdicts(store, "batch", [claim]) == ["inconclusive"]  # no tolerance: cannot show absence
    perm = claim | {"test": "permutation", "n_resamples": 999}
    assert _verdicts(store, "acts", [{"kind": "depends_on", "axis": "model.activation", "test": "permutation",
                                      "n_resamples": 999}]) == ["supported"]  # fmt: skip
    assert _verdicts(store, "batch", [perm | {"tolerance_bits": 0.5}]) == ["refuted"]


@pytest.mark.slow
def test_verdicts_of_stable_across(store):
    claim = {"kind": "stable_across", "axis": "train.batch_size", "tolerance_bits": 0.5}
    assert _verdicts(store, "batch", [claim]) == ["supported"]
    assert _verdicts(store, "noisy", [claim]) == ["inconclusive"]  # seed spread 1 bit, 3 seeds
    assert _verdicts(store, "acts", [claim | {"axis": "model.activation"}]) == ["refuted"]
    v = analysis.evaluate_claims("batch", store, claims=[claim])[0]
    assert len(v.numbers["pairs"]) == 3 and all(abs(p["diff"]) < 0.5 for p in v.numbers["pairs"])


@pytest.mark.slow
def test_verdicts_of_transition_coincides(store):
    by = {v.index: v for v in analysis.evaluate_claims("acts", store)}
    v = by[6]
    assert v.verdict == "supported" and v.numbers["k"] == 5
    assert set(v.numbers["gaps"]) == {"onset_epoch-loss_kink_epoch", "onset_epoch-snr_drop_epoch",
                                      "loss_kink_epoch-snr_drop_epoch"}  # fmt: skip
    claim = {"kind": "transition_coincides", "within_epochs": 150}
    assert _verdicts(store, "late", [claim]) == ["refuted"]  # onset ~1700, kink and drop at 5
    nograd = analysis.evaluate_claims("nograd", store, claims=[claim])[0]
    assert nograd.verdict == "refuted" and nograd.numbers["no_onset"] == 5 and nograd.numbers["no_snr"] == 5
    assert _verdicts(store, "mixed", [claim | {"where": {"model.activation": "tanh"}}]) == ["inconclusive"]


@pytest.mark.slow
def test_verdicts_of_estimator_agreement(store):
    claim = {"kind": "estimator_agreement", "estimators": ["binning", "kde_upper"], "axis": "estimators.0.n_bins"}
    assert _verdicts(store, "agree", [claim]) == ["supported"]
    assert _verdicts(store, "reverse", [claim]) == ["refuted"]
    assert _verdicts(store, "flat", [claim]) == ["inconclusive"]  # kde_upper is the same everywhere
    v = analysis.evaluate_claims("agree", store, claims=[claim])[0]
    assert v.numbers["rho"] == pytest.approx(1.0) and len(v.numbers["conditions"]) == 3


ACT = "model.activation"
STABLE = {"kind": "stable_across", "axis": "train.batch_size", "tolerance_bits": 0.5}
TRANSITION = {"kind": "transition_coincides", "where": {ACT: "tanh"}, "within_epochs": 150}
TREND = {"kind": "trend", "axis": "estimators.0.n_bins"}
AGREE = {"kind": "estimator_agreement", "estimators": ["binning", "kde_upper"], "axis": "estimators.0.n_bins"}
NEAR = {"kind": "near", "statistic": "ixt_final", "value": 4.0, "tolerance": 0.2}
CASES = [  # (synthetic sweep, claim, expected verdict): every claim kind reaches every verdict
    ("acts", {"kind": "compresses", "where": {ACT: "tanh"}}, "supported"),  # 5/5
    ("acts", {"kind": "compresses", "where": {ACT: "relu"}}, "refuted"),  # 0/5
    ("mixed", {"kind": "compresses", "where": {ACT: "tanh"}}, "inconclusive"),  # 3/5
    ("acts", {"kind": "does_not_compress", "where": {ACT: "relu"}}, "supported"),
    ("acts", {"kind": "does_not_compress", "where": {ACT: "tanh"}}, "refuted"),
    ("mixed", {"kind": "does_not_compress", "where": {ACT: "tanh"}}, "inconclusive"),
    ("acts", {"kind": "depends_on", "axis": ACT}, "supported"),  # 4 vs 0 bits
    ("batch", {"kind": "depends_on", "axis": "train.batch_size", "tolerance_bits": 0.5}, "refuted"),  # equivalent
    ("batch", {"kind": "depends_on", "axis": "train.batch_size"}, "inconclusive"),  # no tolerance to refute with
    ("batch", STABLE, "supported"),  # 2 bits everywhere, seed spread 0.05
    ("acts", STABLE | {"axis": ACT}, "refuted"),
    ("noisy", STABLE, "inconclusive"),  # seed spread 1 bit, 3 seeds
    ("acts", TRANSITION, "supported"),  # onset, kink and drop within ~100 epochs
    ("late", TRANSITION, "refuted"),  # onset ~1700, kink and drop at 5
    ("mixed", TRANSITION, "inconclusive"),  # 3/5 compress and coincide
    ("agree", AGREE, "supported"),
    ("reverse", AGREE, "refuted"),
    ("flat", AGREE, "inconclusive"),  # kde_upper is the same everywhere
    ("agree", TREND, "supported"),  # binning: 1, 2, 3 bits at 10, 30, 100 bins
    ("reverse", TREND | {"estimator": "kde_upper"}, "refuted"),  # kde_upper: 3, 2, 1 bits
    ("flat", TREND | {"estimator": "kde_upper"}, "inconclusive"),  # kde_upper: 2 bits everywhere, seed noise only
    ("acts", {"kind": "fits", "where": {ACT: "tanh"}}, "supported"),  # 5/5 peak at epoch ~300
    ("nofit", {"kind": "fits", "where": {ACT: "tanh"}}, "refuted"),  # 0/5: peak at the first epoch
    ("nofit", {"kind": "fits", "where": {ACT: "relu"}}, "inconclusive"),  # 3/5
    ("acts", NEAR | {"where": {ACT: "tanh"}}, "supported"),  # ends at 4 bits, seed noise 0.02
    ("acts", NEAR | {"where": {ACT: "relu"}}, "refuted"),  # ends at 8 bits
    ("noisy", NEAR | {"value": 6.0, "tolerance": 0.5}, "inconclusive"),  # ends near 6, seed spread 1 bit, 3 seeds
]


@pytest.mark.slow
@pytest.mark.parametrize(("sweep", "claim", "verdict"), CASES, ids=[f"{c['kind']}-{v}" for _, c, v in CASES])
def test_verdict_cases(store, sweep, claim, verdict):
    assert _verdicts(store, sweep, [claim]) == [verdict]


def test_cases_cover_every_claim_kind_and_verdict():
    """Conformance over the claim registry: each kind has its own rule and a case for each verdict."""
    for kind, cls in analysis.CLAIMS.items():
        assert cls.model_fields["kind"].annotation.__args__ == (kind,)
        assert not cls.__abstractmethods__, f"{kind} lacks {sorted(cls.__abstractmethods__)}"
    verdicts = ("supported", "refuted", "inconclusive")
    assert {(c["kind"], v) for _, c, v in CASES} == {(k, v) for k in analysis.CLAIMS for v in verdicts}


def test_claims_are_checked_when_the_sweep_loads(tmp_path):
    from ib_sweeps import sweep
    from ib_sweeps.config import ConfigError

    text = tmp_path / "s.yaml"
    text.write_text("""
name: s
description: d
base: {estimators: [{method: binning}]}
grid: {model.activation: [tanh, relu]}
profiles: {quick: {}}
claims:
  - {kind: compresses, where: {model.activation: sigmoid}}
  - {kind: depends_on, axis: train.batch_size}
  - {kind: stable_across, axis: model.activation, estimator: ksg, tolerance_bits: 0.5}
  - {kind: estimator_agreement, estimators: [binning, binning]}
  - {kind: stable_across, axis: model.activation}
  - {kind: compress}
""")
    with pytest.raises(ConfigError) as err:
        sweep.load(str(text))
    msg = str(err.value)
    assert "claims[3]: estimators: must be two different estimators; got ['binning', 'binning']" in msg
    assert "claims[4].tolerance_bits: Field required" in msg
    assert "claims[5]: unknown 'kind' 'compress'; allowed: 'compresses', 'does_not_compress'" in msg
    text.write_text(text.read_text().split("  - {kind: estimator_agreement")[0])
    with pytest.raises(ConfigError) as err:
        sweep.load(str(text))
    msg = str(err.value)
    assert "claims[0].where.model.activation: got 'sigmoid'; allowed: one of the axis's values" in msg
    assert "claims[1].axis: 'train.batch_size' is not an axis of this sweep; allowed: model.activation" in msg
    assert "claims[2].estimator: 'ksg' is not measured by this sweep; allowed: ['binning']" in msg


def test_analysis_imports_neither_tensorflow_nor_ray():
    code = ("import sys; from ib_sweeps import analysis; import ib_sweeps.analysis.report, ib_sweeps.analysis.verdicts;"
            "assert 'tensorflow' not in sys.modules and 'ray' not in sys.modules, sorted(sys.modules)")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
