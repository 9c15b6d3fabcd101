"""Bad input (issue 12): every one is refused by the real CLI before any run exists, clearly and fast.

Each case runs ``ib_sweeps.cli.main`` in-process with a fresh tracking URI and
asserts exit code 2, a message naming the key or path, the value and what is
allowed, that no MLflow store (or no run in it) was created, and a wall-clock
bound: the hang cases (a 10^6-point grid, 10^9 seeds, an alias bomb) used to
run for minutes.
"""

import sqlite3
import textwrap
import time

import pytest

from ib_sweeps.cli import main

SWEEP = textwrap.dedent(
    """\
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
)


def bomb(levels: int = 9, width: int = 9, flow: bool = False) -> str:
    """A "billion laughs" document: ``width ** levels`` values from a few hundred bytes of nested aliases."""
    items = [f"&a0 [{', '.join(['x'] * width)}]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    if flow:  # one flow list: fits a --set value
        return "[" + ", ".join(items) + "]"
    return "".join(f"l{i}: {item}\n" for i, item in enumerate(items))


TRIAL_BOMB = bomb() + "seed: *a8\n"
SWEEP_BOMB = SWEEP.replace("base:\n", "junk: *a8\nbase:\n").replace("name: t\n", "name: t\n" + bomb())
GRID_1E6 = SWEEP.replace(
    "grid:\n  model.activation: [tanh, relu]",
    "grid:\n" + "".join(f"  {k}: [{', '.join(str(v) for v in range(1, 101))}]\n" for k in ("a.b", "c.d", "e.f")),
)
SEARCH = SWEEP.replace(
    "grid:\n  model.activation: [tanh, relu]\n",
    "search:\n  params:\n    train.learning_rate: {kind: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
    "  objective: {metric: compression/binning/last_hidden, mode: max}\n  n_trials: 3\n",
)
CLAIM = "claims:\n  - {kind: compresses, layers: [last_hidden], estimator: binning, min_fraction: .nan}\n"
DEEP = "[" * 100 + "]" * 100

DIR, BINARY = object(), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def trial(*sets, file=None, fragments, extra=()):
    return ("trial", file, sets, extra, fragments)


def sweep(*sets, file=SWEEP, fragments, extra=()):
    return ("sweep", file, sets, ("--dry-run", *extra), fragments)


CASES = {
    # Not finite: YAML reads 1e400 as inf; .inf and .nan are YAML floats.
    "learning_rate_1e400": trial("train.learning_rate=1e400", fragments=["train.learning_rate", "finite", "inf"]),
    "learning_rate_nan": trial("train.learning_rate=.nan", fragments=["train.learning_rate", "finite", "nan"]),
    "bin_size_inf": trial("estimators.0.bin_size=.inf", fragments=["estimators[0].bin_size", "finite", "inf"]),
    "range_inf": trial("estimators.0.range=[-.inf, .inf]", fragments=["estimators[0].range", "finite", "inf"]),
    "range_overflows": trial(
        "estimators.0.range=[-1.0e308, 1.0e308]", fragments=["estimators[0].range", "1e+308", "overflows", "allowed"]
    ),
    "noise_variance_inf": trial(
        "estimators=[{method: kde_upper, noise_variance: .inf}]",
        fragments=["estimators[0].noise_variance", "finite", "inf"],
    ),
    "snapshot_mb_inf": trial("schedule.snapshot_mb=.inf", fragments=["schedule.snapshot_mb", "finite", "inf"]),
    "delta_nan": trial("schedule.delta=.nan", fragments=["schedule.delta", "finite", "nan"]),
    "init_std_inf": trial("model.init_std=.inf", fragments=["model.init_std", "finite", "inf"]),
    "noise_std_inf": trial("model.noise_std=.inf", fragments=["model.noise_std", "finite", "inf"]),
    "momentum_nan": trial("train.optimizer=sgd", "train.momentum=.nan", fragments=["train.momentum", "finite", "nan"]),
    "jitter_inf": trial(
        "estimators=[{method: ksg, jitter: .inf}]", fragments=["estimators[0].jitter", "finite", "inf"]
    ),
    "random_labels_nan": trial("data.random_labels=.nan", fragments=["data.random_labels", "finite", "nan"]),
    "train_fraction_inf": trial("data.train_fraction=.inf", fragments=["data.train_fraction", "finite", "inf"]),
    "training_size_nan": trial("data.training_size=.nan", fragments=["data.training_size", "got nan", "allowed"]),
    # Sizes that cannot fit or overflow.
    "epochs_1e13": trial(
        "train.epochs=10000000000000", fragments=["train.epochs", "less than or equal to 10000000", "10000000000000"]
    ),
    "log_n_1e10": trial(
        "schedule.kind=log",
        "schedule.n=10000000000",
        fragments=["schedule.n", "less than or equal to 10000000", "10000000000"],
    ),
    "skip_every_1e10": trial(
        "schedule.kind=skip", "schedule.every=10000000000", fragments=["schedule.every", "less than or equal"]
    ),
    "list_epoch_1e10": trial(
        "schedule={kind: list, epochs: [10000000000]}", fragments=["schedule.epochs[0]", "less than or equal"]
    ),
    "hidden_1e10": trial(
        "model.hidden=[10000000000]", fragments=["model.hidden[0]", "less than or equal to 10000000", "10000000000"]
    ),
    "hidden_2000_layers": trial(
        "model.hidden=[" + ", ".join(["2"] * 2000) + "]", fragments=["model.hidden", "at most 1000 items"]
    ),
    "memory_weights": trial(
        "model.hidden=[10000000, 10000000]",
        fragments=["model.hidden: the trial needs at least", "PiB of memory", "this machine's", "weights", "allowed"],
    ),
    "memory_snapshots": trial(
        "model.hidden=[10000000, 10000000]",
        "schedule.snapshot_mb=1.0e15",
        fragments=["the trial needs at least", "weight snapshots", "schedule.snapshot_mb", "this machine's"],
    ),
    "pooled_window_1e9": trial("pooled={window: 1000000000}", fragments=["pooled.window", "less than or equal"]),
    "n_bins_1e9": trial("estimators.0.n_bins=1000000000", fragments=["estimators[0].n_bins", "less than or equal"]),
    "ksg_k_1e9": trial("estimators=[{method: ksg, k: 1000000000}]", fragments=["estimators[0].k", "less than or"]),
    "n_cond_1e9": trial(
        "model.noise_std=0.1",
        "estimators=[{method: noisy_sp, n_cond: 1000000000}]",
        fragments=["estimators[0].n_cond", "less than or equal to 10000"],
    ),
    "seed_2e64": trial("seed=36893488147419103232", fragments=["seed", "less than or equal", "36893488147419103232"]),
    "int_of_5000_digits": trial("seed=" + "9" * 5000, fragments=["override 'seed=999", "4300 digits"]),
    # Labels become metric-key segments: ixt/<label>/<layer>.
    "label_at": trial("estimators.0.label=a@b", fragments=["estimators[0].label", "'a@b'", "allowed: 1 to 100"]),
    "label_path": trial("estimators.0.label=x/../y", fragments=["estimators[0].label", "'x/../y'", "metric keys"]),
    "label_dotdot": trial("estimators.0.label='..'", fragments=["estimators[0].label", "'..'", "not starting"]),
    "label_space": trial("estimators.0.label='a b'", fragments=["estimators[0].label", "'a b'", "allowed"]),
    "label_long": trial("estimators.0.label=" + "x" * 101, fragments=["estimators[0].label", "1 to 100"]),
    # YAML: duplicate keys, alias bombs, nesting, malformed --set values.
    "duplicate_key": trial(
        file="train: {epochs: 5}\nseed: 1\ntrain: {epochs: 6}\n",
        fragments=["c.yaml: line 3: key 'train' appears twice", "first on line 1", "allowed: each key once"],
    ),
    "duplicate_nested_key": trial(
        file="train:\n  epochs: 5\n  epochs: 6\n", fragments=["line 3: key 'epochs' appears twice", "c.yaml"]
    ),
    "alias_bomb_file": trial(file=TRIAL_BOMB, fragments=["c.yaml", "aliases", "more than 1,000,000", "allowed"]),
    "alias_bomb_set": trial("model.hidden=" + bomb(flow=True), fragments=["override 'model.hidden=[&a0", "aliases"]),
    "alias_recursive": trial("model.hidden=&a [*a]", fragments=["override 'model.hidden=&a [*a]'", "contains it"]),
    "nested_too_deep": trial("model.hidden=" + DEEP, fragments=["override 'model.hidden=[[[", "64 levels"]),
    "set_malformed_yaml": trial(
        "train.epochs=[1, 2", fragments=["override 'train.epochs=[1, 2' is not valid YAML", "flow sequence", "(line "]
    ),
    "set_unclosed_quote": trial("train.epochs='5", fragments=["--set", "No closing quotation", "allowed"]),
    "set_no_equals": trial("train.epochs", fragments=["override 'train.epochs' must look like key=value"]),
    "set_python_tag": trial(
        "seed=!!python/object/apply:os.system [true]", fragments=["override 'seed=!!python", "constructor"]
    ),
    # Files that are not configs: named by path, never echoed.
    "config_binary": trial(file=BINARY, fragments=["c.yaml is not a text file", "UTF-8"]),
    "config_nul": trial(file="seed: 1\n\x00\n", fragments=["c.yaml is not a text file", "NUL"]),
    "config_too_large": trial(
        file="seed: 1\n" + "#" * 2**21, fragments=["c.yaml has 2,097,160 bytes", "at most 1,048,576 bytes"]
    ),
    "config_directory": trial(file=DIR, fragments=["is a directory", "allowed: a YAML file"]),
    "config_missing": trial(extra=("{tmp}/nope.yaml",), fragments=["config file not found", "nope.yaml", "presets"]),
    "config_foreign_mapping": trial(
        file="rootuser: $6$s3cr3t:19000\ndaemonuser: '*:19000'\n",
        fragments=["c.yaml does not look like an ib-sweeps trial config", "seed, data, model"],
    ),
    "config_shadow_lines": trial(  # each line ends in ':', so YAML reads a mapping of the whole lines
        file="rootuser:$6$s3cr3t:19000:0:99999:7:::\ndaemonuser:*:19000:0:99999:7:::\n",
        fragments=["c.yaml does not look like an ib-sweeps trial config"],
    ),
    "config_passwd_lines": trial(
        file="rootuser:x:0:0:s3cr3t:/root:/bin/bash\ndaemonuser:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
        fragments=["c.yaml must hold a mapping", "not str"],
    ),
    # Sweeps: sizes counted, not expanded.
    "seeds_1e9": sweep("seeds=1000000000", fragments=["seeds: expands to 2,000,000,000 trials", "max_trials"]),
    "grid_1e6": sweep(
        file=GRID_1E6, fragments=["grid: expands to 2,000,000 trials", "a.b (100) x", "at most 10,000", "max_trials"]
    ),
    "max_trials_in_file": sweep(
        file=SWEEP + "max_trials: 3\n", fragments=["grid: expands to 4 trials", "at most 3 trials", "--set max_trials"]
    ),
    "max_trials_over_cap": sweep("max_trials=10000000", fragments=["max_trials", "less than or equal to 1000000"]),
    "search_n_trials_1e9": sweep(
        "search.n_trials=1000000000", file=SEARCH, fragments=["search: n_trials is 1,000,000,000", "at most 10,000"]
    ),
    "seed_list_2e64": sweep("seeds=[36893488147419103232]", fragments=["seeds", "less than or equal"]),
    "sampler_seed_2e40": sweep(
        "search.sampler_seed=1099511627776", file=SEARCH, fragments=["search.sampler_seed", "less than or equal"]
    ),
    "grid_value_inf": sweep(
        "grid.train.learning_rate=[0.01, .inf]",
        fragments=["grid.train.learning_rate[1] = inf", "train.learning_rate", "finite"],
    ),
    "grid_label_at": sweep("grid.estimators.0.label=[a@b]", fragments=["grid.estimators.0.label[0] = 'a@b'"]),
    "search_high_inf": sweep(
        file=SEARCH.replace("high: 1.0e-2", "high: .inf"),
        fragments=["search.params.train.learning_rate.high", "finite", "inf"],
    ),
    "gpus_nan": sweep("resources.gpus=.nan", fragments=["resources.gpus", "nan"]),
    "claim_nan": sweep(file=SWEEP + CLAIM, fragments=["claims[0]", "min_fraction", "finite", "nan"]),
    "profile_inf": sweep(
        file=SWEEP.replace("quick: {", "quick: {train.learning_rate: .inf, "),
        extra=("--profile", "quick"),
        fragments=["with profile 'quick'", "base: train.learning_rate", "finite"],
    ),
    "sweep_alias_bomb": sweep(file=SWEEP_BOMB, fragments=["s.yaml", "aliases", "more than 1,000,000"]),
    "sweep_duplicate_key": sweep(
        file=SWEEP + "seeds: 3\n", fragments=["s.yaml: line 12: key 'seeds' appears twice", "first on line 9"]
    ),
    "sweep_set_malformed": sweep("seeds=[1, 2", fragments=["override 'seeds=[1, 2' is not valid YAML"]),
    "sweep_binary": sweep(file=BINARY, fragments=["s.yaml is not a text file", "UTF-8"]),
    "sweep_too_large": sweep(file=SWEEP + "#" * 2**21, fragments=["s.yaml has", "at most 1,048,576 bytes"]),
    "sweep_missing": sweep(file=None, extra=("{tmp}/nope.yaml",), fragments=["sweep not found: '", "nope.yaml'"]),
    "sweep_directory": sweep(file=DIR, fragments=["is a directory", "allowed: a YAML file"]),
    "sweep_foreign_mapping": sweep(
        file="rootuser: $6$s3cr3t:19000\ndaemonuser: x\n",
        fragments=["s.yaml does not look like an ib-sweeps sweep file", "name, description"],
    ),
}


def _runs(db) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from runs").fetchone()[0]


@pytest.mark.parametrize(("command", "file", "sets", "extra", "fragments"), CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_before_any_run(tmp_path, tracking_uri, capsys, command, file, sets, extra, fragments):
    args = [command]
    if file is not None:
        path = tmp_path / ("s.yaml" if command == "sweep" else "c.yaml")
        if file is DIR:
            path.mkdir()
        elif isinstance(file, bytes):
            path.write_bytes(file)
        else:
            path.write_text(file)
        args.append(str(path))
    args += [a.format(tmp=tmp_path) for a in extra]
    for item in sets:
        args += ["--set", item]
    start = time.perf_counter()
    code = main([*args, "--tracking-uri", tracking_uri])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not [w for w in ("s3cr3t", "rootuser", "daemonuser") if w in err]  # a foreign file is not echoed
    db = tmp_path / "mlflow.db"
    assert not db.exists() or _runs(db) == 0
    assert seconds < 10, seconds  # the hang cases ran for minutes


def test_case_count():
    assert len(CASES) >= 60


def test_max_trials_override_admits_the_sweep(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP + "max_trials: 3\n")
    assert main(["sweep", str(path), "--set", "max_trials=4", "--dry-run"]) == 0
    assert "t: 4 trials" in capsys.readouterr().out


def test_sweep_with_max_trials_unset_keeps_its_invocation_hash(tmp_path):
    from ib_sweeps import sweep as sweeps

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP)
    s = sweeps.load(str(path))
    assert "max_trials" not in s.spec.model_dump(exclude_unset=True)
    path.write_text(SWEEP + "max_trials: 10000\n")
    assert sweeps.load(str(path)).invocation != s.invocation  # set explicitly: part of the command


def test_profile_may_shrink_an_oversized_file(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("seeds: 2", "seeds: 20000"))
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "seeds: expands to 40,000 trials" in capsys.readouterr().err
    assert main(["sweep", str(path), "--profile", "quick", "--dry-run"]) == 0
    assert "t: 2 trials" in capsys.readouterr().out


def test_valid_yaml_features_still_load(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {epochs: 7}\ntrain:\n  <<: *b\n  learning_rate: 1e-3\n".replace("base", "x-base"))
    assert main(["trial", str(path), "--print-config"]) == 2  # x-base is not a key: an error, but no parse error
    assert "unknown key 'x-base'" in capsys.readouterr().err
    path.write_text("train:\n  <<: {epochs: 7}\n  learning_rate: 1e-3\nmodel: {hidden: &h [4, 3]}\n")
    assert main(["trial", str(path), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 7" in out and "learning_rate: 0.001" in out


def test_hashes_of_valid_inputs_are_unchanged():
    from ib_sweeps import config
    from ib_sweeps import sweep as sweeps
    from ib_sweeps.cli import load_config

    # Values from before the bad-input checks: finite types, caps and max_trials change nothing valid.
    assert config.config_hash(config.validate({}), with_seed=True) == "412c356b989a"
    assert config.config_hash(load_config("saxe_2018", []), with_seed=True) == "1e6462a69d8d"
    # Since 2026-11-29 an invocation leaves out claims, description and profiles (it was ee7f9c7312eb and
    # 9b79b135b262); parents stored under the earlier hash are found by their resolved sweep (test_ledger.py).
    assert sweeps.load("smoke").invocation == "3ce120fa03f2"
    assert sweeps.load("smoke", "quick").invocation == "f9177861dc80"


def test_footprint_by_hand():
    from ib_sweeps import config

    cfg = config.validate({})  # 12 inputs -> 10, 7, 5, 4, 3 -> 2; delta_exact; binning
    parts = config.footprint(cfg)
    floats, layers, n_params = 10 + 7 + 5 + 4 + 3 + 2, 6, 13 * 10 + 11 * 7 + 8 * 5 + 6 * 4 + 5 * 3 + 4 * 2
    assert parts["activity"] == (4096 + 512) * floats * 4  # every input measured, one batch of 512 trained
    assert parts["trace"] == 8001 * (48 + 20 * layers) + 8001 * 1 * layers * 16
    assert parts["snapshots"] == 8001 * 4 * n_params  # 256 MB hold all 8000 epochs: capacity 8000, plus one
    assert parts["weights"] == n_params * 4 * 4  # weights, gradients, Adam's two slots
    log = config.validate({"schedule": {"kind": "log", "n": 10}, "train": {"gradient_stats": False}})
    assert config.footprint(log)["trace"] == 8001 * 48 + 22 * layers * 16 and config.footprint(log)["snapshots"] == 0


def test_footprint_of_a_cnn_counts_its_orders_table_and_im2col_patches():
    """A CNN array replica holds every epoch's minibatch orders and one minibatch's im2col patches."""
    from ib_sweeps import config

    cnn = {"kind": "cnn", "conv": [32, 64], "kernel": 3, "pool": 2, "dense": [128]}
    raw = {"data": {"name": "digits"}, "model": cnn, "schedule": {"kind": "log", "n": 10}}  # log: no snapshots
    short, long = (config.validate(raw | {"train": {"epochs": e}}) for e in (10, 1000))
    n_train, batch = 1438, 512  # 0.8 of 1797 digits; the default batch
    parts = config.footprint(long)
    assert parts["orders"] == 1000 * n_train * 4  # int32 (epochs, n_train)
    # 8x8x1 images, 3x3 kernels: 6x6 outputs of 9 x 1 channel, then 4x4 outputs of 9 x 32 channels
    assert parts["im2col"] == batch * (6 * 6 * 9 * 1 + 4 * 4 * 9 * 32) * 4
    grown = sum(parts.values()) - sum(config.footprint(short).values())
    trace = parts["trace"] - config.footprint(short)["trace"]
    assert grown == trace + 990 * n_train * 4  # more epochs: a longer trace and a taller orders table
    assert "orders" not in config.footprint(config.validate({}))  # an MLP (alone or in an array) holds none


@pytest.mark.parametrize(
    ("data", "rows"),
    [
        ({}, 4096),
        ({"measure_on": "test"}, 4096 - 3277),
        ({"measure_on": "train", "training_size": 100}, 100),
        ({"name": "mnist", "measure_on": "test"}, 10_000),
        ({"name": "mnist", "measure_size": 70_000}, 70_000),
        ({"name": "mnist", "measure_on": "train", "training_size": 0.5, "measure_size": 70_000}, 30_000),
    ],
)
def test_measured_inputs(data, rows):
    from ib_sweeps import config

    assert config.measured_inputs(config.validate({"data": data}).data) == rows
