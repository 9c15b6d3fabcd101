"""Sweep files: shipped sweeps are valid; bad files fail before Ray starts with clear messages."""

import textwrap
from pathlib import Path

import pytest

from ib_sweeps import config, sweep
from ib_sweeps.cli import main

# Every sweep file the project ships (the repository's own sweeps/, not ./sweeps or $IB_SWEEPS_DIR).
SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))

GOOD = """
name: t
description: a test sweep
base:
  model: {hidden: [4, 3]}
  train: {epochs: 10}
  schedule: {kind: every}
grid:
  model.activation: [tanh, relu]
seeds: 2
profiles:
  quick: {train.epochs: 5, seeds: 1}
"""


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_shipped_sweeps_are_found():
    assert len(SHIPPED) >= 17 and {"mnist", "smoke", "cnn"} <= set(SHIPPED)
    assert set(SHIPPED) <= set(sweep.names())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sweeps_are_valid_and_have_claims(name):
    s = sweep.load(name)
    assert s.spec.name == name and s.spec.description.strip() and s.spec.claims
    quick = sweep.load(name, profile="quick")
    if s.spec.search is None:
        assert len(quick.trials()) <= len(s.trials())
    else:
        assert quick.spec.search.n_trials <= s.spec.search.n_trials
    assert quick.trial_for({}).config.train.epochs <= 400  # minutes on 2 cores, not hours


def test_grid_times_seeds_expands_in_order(tmp_path):
    s = sweep.load(write(tmp_path, GOOD))
    names = [t.name for t in s.trials()]
    assert names == [f"activation={a},seed={s}" for a in ("tanh", "relu") for s in (0, 1)]
    assert [t.config.model.activation for t in s.trials()] == ["tanh", "tanh", "relu", "relu"]
    assert [t.config.seed for t in s.trials()] == [0, 1, 0, 1]
    # replicates share the config hash; conditions do not
    hashes = [t.key[0] for t in s.trials()]
    assert hashes[0] == hashes[1] != hashes[2] == hashes[3]


def test_profile_and_overrides_apply_to_sweep_and_base(tmp_path):
    path = write(tmp_path, GOOD)
    s = sweep.load(path, profile="quick", overrides=["train.learning_rate=0.01", "grid.model.activation=[relu]"])
    (trial,) = s.trials()
    assert trial.config.train.epochs == 5 and trial.config.train.learning_rate == 0.01
    assert trial.config.model.activation == "relu"
    assert s.invocation != sweep.load(path).invocation  # a different command is a different invocation
    assert sweep.load(path).invocation == sweep.load(path).invocation


def test_nested_axes_reach_list_items(tmp_path):
    text = GOOD.replace("grid:\n  model.activation: [tanh, relu]", "grid:\n  estimators.0.n_bins: [10, 20]")
    s = sweep.load(write(tmp_path, text))
    assert [t.config.estimators[0].n_bins for t in s.trials()] == [10, 10, 20, 20]


BAD = [
    # (mutation of GOOD, expected message fragment)
    (("seeds: 2", "seeds: 2\ncolour: red"), "unknown key 'colour'"),
    (("model.activation: [tanh, relu]", "model.activaton: [tanh]"), "unknown key 'activaton'"),
    (("model.activation: [tanh, relu]", "model.activation: []"), "grid.model.activation"),
    (("grid:\n  model.activation: [tanh, relu]", "grid: {}"), "grid: is empty"),
    (("model.activation: [tanh, relu]", "model.activation: [tanh, bogus]"), "grid.model.activation[1] = 'bogus'"),
    (("model.activation: [tanh, relu]", "train.batch_size: [32, -1]"), "positive integer or 'full'"),
    (("seeds: 2", "seeds: 0"), "seeds"),
    (("seeds: 2", "seeds: [1, 1]"), "seeds: repeat"),
    (("seeds: 2", "seeds: 2\nresources: {cpus: 0}"), "resources.cpus"),
    (("seeds: 2", "seeds: 2\nresources: {cpus: 1, gpus: -0.5}"), "resources.gpus"),
    (("seeds: 2", "seeds: 2\nresources: {cpu: 1}"), "unknown key 'cpu'; allowed keys: cpus, gpus"),
    (("quick: {train.epochs: 5, seeds: 1}", "fast: {}"), "needs a 'quick' profile"),
    (("description: a test sweep\n", ""), "description: Field required"),
    (("name: t", "name: 'bad name!'"), "name"),
    (("model.activation: [tanh, relu]", "seed: [1, 2]"), "'seed' is not an axis"),
    (("model.activation: [tanh, relu]", "model.activation: [tanh, tanh]"), "repeats a value"),
    (("train: {epochs: 10}", "train: {epochs: ten}"), "base: train.epochs"),
    (
        ("schedule: {kind: every}", "schedule: {kind: list, epochs: [0, 8]}\n  estimators: [{method: binning}]"),
        "grid.train.epochs\\[0\\] = 5: schedule: epochs \\[8\\] are beyond train.epochs = 5",
    ),
    # valid alone, invalid together: every grid point is checked too
    (
        ("model.activation: [tanh, relu]", "model.activation: [tanh, [tanh, relu]]\n  model.hidden: [[4, 3], [4]]"),
        'grid point activation=\\["tanh","relu"\\],hidden=\\[4\\],seed=0: model.activation: lists 2',
    ),
]


@pytest.mark.parametrize(("mutation", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_sweep_files_fail_with_clear_message(tmp_path, mutation, message):
    old, new = mutation
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if "kind: list" in new:
        text = text.replace("model.activation: [tanh, relu]", "model.activation: [tanh]\n  train.epochs: [5, 10]")
    path = write(tmp_path, text)
    pattern = message if "\\[" in message else message.replace("[", r"\[").replace("(", r"\(")
    with pytest.raises(ValueError, match=pattern) as info:
        sweep.load(path)
    assert path in str(info.value)  # the message names the file


def test_grid_and_search_are_exclusive(tmp_path):
    text = GOOD + "search:\n  params: {train.learning_rate: {kind: loguniform, low: 1.0e-4, high: 1.0e-2}}\n"
    text += "  objective: {metric: compression/binning/last_hidden, mode: max}\n  n_trials: 3\n"
    with pytest.raises(config.ConfigError, match="exactly one of 'grid'"):
        sweep.load(write(tmp_path, text))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("seed=3", "set per trial by 'seeds'"),
        ("model.activation=relu", "is a grid axis"),
        ("resources.cpus=0", "resources.cpus"),
        ("train.epochs=-1", "base: train.epochs"),
        ("nokey", "must look like key=value"),
    ],
)
def test_bad_overrides(tmp_path, item, message):
    with pytest.raises(ValueError, match=message):
        sweep.load(write(tmp_path, GOOD), overrides=[item])


def test_unknown_profile_and_sweep_name(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'; allowed: quick"):
        sweep.load(write(tmp_path, GOOD), profile="huge")
    with pytest.raises(ValueError, match=r"sweep not found: 'nope'; available: .*activations"):
        sweep.load("nope")


def test_cli_bad_sweep_exits_2_before_ray(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("[tanh, relu]", "[tanh, bogus]"))
    assert main(["sweep", path]) == 2
    err = capsys.readouterr().err
    assert "grid.model.activation[1] = 'bogus'" in err and "allowed: one of tanh, relu" in err
    import subprocess
    import sys

    # Failed before Ray was even imported: checked in a fresh process (other tests here import Ray).
    code = "import sys\nfrom ib_sweeps.cli import main\n"
    code += f"assert main(['sweep', {path!r}]) == 2\nprint('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_cli_dry_run_lists_trials(tmp_path, capsys):
    assert main(["sweep", write(tmp_path, GOOD), "--profile", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "activation=tanh,seed=0" in out and "t: 2 trials" in out


SEARCH = GOOD.replace(
    "grid:\n  model.activation: [tanh, relu]\n",
    "search:\n  params:\n    train.learning_rate: {kind: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
    "    model.activation: {kind: choice, values: [tanh, relu]}\n"
    "  objective: {metric: compression/binning/last_hidden, mode: max}\n  n_trials: 3\n",
)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("compression/binning/last_hidden", "spread/binning/last_hidden", "unknown metric 'spread/binning"),
        ("compression/binning/last_hidden", "compression/ksg/last_hidden", "estimator 'ksg' is not in base"),
        ("low: 1.0e-4, high: 1.0e-2", "low: 1.0e-2, high: 1.0e-4", "must be greater than low"),
        ("kind: loguniform, low: 1.0e-4", "kind: loguniform, low: 0.0", "loguniform needs low > 0"),
        ("values: [tanh, relu]", "values: [tanh, bogus]", r"search.params.model.activation\[1\] = 'bogus'"),
        ("mode: max", "mode: up", "mode"),
    ],
)
def test_bad_search(tmp_path, old, new, message):
    assert sweep.load(write(tmp_path, SEARCH)).spec.search.n_trials == 3
    with pytest.raises(ValueError, match=message):
        sweep.load(write(tmp_path, SEARCH.replace(old, new)))
