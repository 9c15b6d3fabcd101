"""Config validation: every bad config fails before any work, naming key, value and what is allowed."""

import pytest

from ib_sweeps import config, yamlio
from ib_sweeps.cli import load_config, presets, split_assignments

BAD = [
    ({"epochs": 10}, "unknown key 'epochs'; allowed keys: seed, data, model, train, schedule, estimators"),
    ({"train": {"epochs": 0}}, "train.epochs: Input should be greater than 0; got 0"),
    ({"train": {"epochs": -5}}, "train.epochs: Input should be greater than 0; got -5"),
    ({"train": {"epochs": "100"}}, "train.epochs: Input should be a valid integer; got '100'"),
    ({"train": {"epochs": 10.5}}, "train.epochs: Input should be a valid integer"),
    ({"train": {"batch_size": 0}}, "train.batch_size: got 0; allowed: a positive integer or 'full'"),
    ({"train": {"batch_size": "half"}}, "train.batch_size: got 'half'; allowed: a positive integer or 'full'"),
    ({"train": {"learning_rate": 0}}, "train.learning_rate: Input should be greater than 0; got 0"),
    ({"train": {"learning_rate": -1e-3}}, "train.learning_rate: Input should be greater than 0; got -0.001"),
    ({"train": {"optimizer": "rmsprop"}}, "train.optimizer: unknown optimizer 'rmsprop'; allowed: sgd, adam, adadelta"),
    ({"train": {"momentum": 0.9}}, "train.momentum: only used with optimizer sgd, not 'adam'"),
    ({"train": {"optimizer": "sgd", "momentum": 1.5}}, "train.momentum: Input should be less than 1; got 1.5"),
    ({"model": {"activation": "tanhh"}}, "model.activation: got 'tanhh'; allowed: one of tanh, relu, relu6, sigmoid"),
    ({"model": {"activation": ["tanh", "relu"]}}, "model.activation: lists 2 activations but model.hidden has 5"),
    ({"model": {"hidden": []}}, "model.hidden: Tuple should have at least 1 item"),
    ({"model": {"hidden": [10, 0, 3]}}, "model.hidden[1]: Input should be greater than 0; got 0"),
    ({"model": {"init": "he"}}, "model.init: Input should be 'truncated_normal' or 'keras_default'; got 'he'"),
    ({"model": {"depth": 3}}, "model: unknown key 'depth'; allowed keys: hidden, activation, init, init_std"),
    (
        {"data": {"name": "cifar"}},
        "data.name: unknown data set 'cifar'; allowed: tishby12, digits, single_neuron, mnist",
    ),
    ({"data": {"train_fraction": 1.0}}, "data.train_fraction: Input should be less than 1; got 1.0"),
    ({"data": {"split": "random"}}, "data.split: Input should be 'shuffled' or 'reference'; got 'random'"),
    ({"data": {"measure_on": "val"}}, "data.measure_on: Input should be 'all', 'train' or 'test'; got 'val'"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0; got -1"),
    ({"seed": True}, "seed: Input should be a valid integer; got True"),
    (
        {"schedule": {"kind": "cosine"}},
        "schedule: unknown 'kind' 'cosine'; allowed: 'every', 'skip', 'log', 'piecewise'",
    ),
    ({"schedule": {"kind": "delta_exact", "delta": 0}}, "schedule.delta: Input should be greater than 0; got 0"),
    (
        {"schedule": {"kind": "delta_approx", "multiplier": 1}},
        "schedule.multiplier: Input should be greater than or equal to 2",
    ),
    (
        {"schedule": {"kind": "delta_exact", "distance": "l2"}},
        "schedule.distance: Input should be 'normalized' or 'absolute'",
    ),
    ({"schedule": {"kind": "log", "n": 1}}, "schedule.n: Input should be greater than or equal to 2; got 1"),
    ({"schedule": {"kind": "skip", "n": 5}}, "schedule: unknown key 'n'; allowed keys: every"),
    ({"schedule": {"n": 5}}, "schedule: missing key 'kind'"),
    ({"estimators": []}, "estimators: Tuple should have at least 1 item"),
    ({"estimators": [{"n_bins": 1}]}, "estimators[0].n_bins: Input should be greater than or equal to 2; got 1"),
    ({"estimators": [{"bin_size": 0}]}, "estimators[0].bin_size: Input should be greater than 0; got 0"),
    ({"estimators": [{"n_bins": 30, "bin_size": 0.07}]}, "estimators[0].bin_size: set either n_bins"),
    ({"estimators": [{"range": [1, -1]}]}, "estimators[0].range: must be [lo, hi] with lo < hi"),
    (
        {"estimators": [{"method": "kde"}]},
        "estimators[0]: unknown 'method' 'kde'; allowed: 'binning', 'adaptive_binning'",
    ),
    (
        {"estimators": [{"method": "kde_upper", "n_bins": 3}]},
        "estimators[0]: unknown key 'n_bins'; allowed keys: label",
    ),
    (
        {"estimators": [{"method": "kde_lower", "noise_variance": 0}]},
        "estimators[0].noise_variance: Input should be greater than 0",
    ),
    ({"estimators": [{}, {"n_bins": 10}]}, "estimators: metric keys ['binning'] repeat"),
    ([1, 2], "a config must be a mapping"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_config_names_key_value_and_allowed(raw, message):
    with pytest.raises(config.ConfigError) as err:
        config.validate(raw)
    assert message in str(err.value)


def test_all_problems_reported_at_once():
    with pytest.raises(config.ConfigError) as err:
        config.validate({"train": {"epochs": 0, "optimizer": "x"}, "zzz": 1})
    assert len(err.value.problems) == 3


def test_defaults_are_the_reference_net():
    cfg = config.validate({})
    assert cfg.model.hidden == (10, 7, 5, 4, 3) and cfg.model.activation == "tanh"
    assert (cfg.train.optimizer, cfg.train.learning_rate, cfg.train.batch_size) == ("adam", 4e-4, 512)
    assert cfg.train.epochs == 8000 and cfg.data.train_fraction == 0.8
    assert cfg.estimators[0].n_bins == 30 and cfg.estimators[0].range == (-1.0, 1.0)


def test_config_is_frozen():
    cfg = config.validate({})
    with pytest.raises(Exception, match="frozen"):
        cfg.seed = 3


def test_yaml_exponent_floats_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "train:\n  learning_rate: 4e-4\n  batch_size: full\nmodel:\n  activation: [relu, tanh]\n  hidden: [8, 4]\n"
    )
    cfg = load_config(str(path), [])
    assert cfg.train.learning_rate == 4e-4 and cfg.train.batch_size == "full"
    assert cfg.model.activation == ("relu", "tanh")
    assert config.validate(config.to_dict(cfg)) == cfg


def test_overrides_edit_defaults_and_files(tmp_path):
    cfg = load_config(
        None, ["schedule.delta=0.05 train.epochs=100", "estimators.0.bin_size=0.07", "model.hidden=[4, 3]"]
    )
    assert cfg.schedule.delta == 0.05 and cfg.train.epochs == 100 and cfg.model.hidden == (4, 3)
    assert load_config(None, ["schedule.kind=log schedule.n=50"]).schedule.n == 50
    assert cfg.estimators[0].bin_size == 0.07 and cfg.estimators[0].n_bins is None
    assert load_config(None, ["schedule.kind=skip", "schedule.every=5"]).schedule.every == 5
    with pytest.raises(config.ConfigError, match="train: unknown key 'epoch'"):
        load_config(None, ["train.epoch=5"])
    with pytest.raises(ValueError, match="must look like key=value"):
        load_config(None, ["train.epochs"])


def test_split_assignments_keeps_lists_whole():
    assert split_assignments(["a=1 b=[1, 2, 3]", "c=x"]) == ["a=1", "b=[1, 2, 3]", "c=x"]
    assert split_assignments([""]) == []


def test_missing_or_bad_file(tmp_path):
    with pytest.raises(ValueError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"), [])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(str(tmp_path / "list.yaml"), [])


def test_flatten_and_hash():
    cfg = config.validate({"estimators": [{"label": "b30"}, {"label": "saxe", "bin_size": 0.07}]})
    flat = config.flatten(cfg)
    assert flat["train.epochs"] == "8000" and flat["model.hidden"] == "[10, 7, 5, 4, 3]"
    assert flat["estimators.saxe.bin_size"] == "0.07" and flat["estimators.b30.n_bins"] == "30"
    other_seed = config.validate({**config.to_dict(cfg), "seed": 5})
    assert config.config_hash(cfg) == config.config_hash(other_seed)
    assert config.config_hash(cfg, with_seed=True) != config.config_hash(other_seed, with_seed=True)
    assert yamlio.loads("x: 1e-3")["x"] == 1e-3


@pytest.mark.parametrize("name", ["shwartz_ziv_2017", "saxe_2018"])
def test_presets_validate(name):
    from ib_sweeps.cli import presets

    assert name in presets()
    cfg = load_config(name, ["seed=1"])
    assert cfg.model.hidden == (10, 7, 5, 4, 3) and cfg.seed == 1


@pytest.mark.parametrize("name", presets())
def test_every_preset_validates_and_round_trips(name):
    assert len(presets()) >= 5
    cfg = load_config(name, [])
    assert config.validate(config.to_dict(cfg)) == cfg


def test_preset_conventions():
    assert load_config("shwartz_ziv_2017", []).data.split == "reference"
    saxe = load_config("saxe_2018", [])
    assert saxe.estimators[0].bin_size == 0.07 and saxe.train.batch_size == 256
