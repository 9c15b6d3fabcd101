"""Data sets beyond the 12-bit task: MNIST files (npz, IDX), digits, random labels, training size, measure cap.

MNIST is never downloaded: the tests write tiny files in the same formats.
"""

import gzip

import numpy as np
import pytest

from ib_sweeps import config, data, sweep
from ib_sweeps.cli import load_config, main
from ib_sweeps.data import mnist, tishby12

N_TRAIN, N_TEST = 50, 20


@pytest.fixture(autouse=True)
def no_data_env(tmp_path, monkeypatch):
    """No MNIST location from the machine: variables unset, an empty Keras home."""
    for var in ("IB_SWEEPS_MNIST", "IB_SWEEPS_FASHION_MNIST", "IB_SWEEPS_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def tiny_arrays(seed=0):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8)
    x_te = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
    y_tr, y_te = np.arange(N_TRAIN, dtype=np.uint8) % 10, np.arange(N_TEST, dtype=np.uint8) % 10
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


def write_npz(path, arrays=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **(arrays or tiny_arrays()))
    return path


def write_idx(path, arr, gz=False):
    header = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    body = header + arr.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(body)


def write_idx_dir(directory, gz=False, arrays=None):
    a = arrays or tiny_arrays()
    directory.mkdir(parents=True, exist_ok=True)
    for name, key in zip(mnist.IDX_FILES, ("x_train", "y_train", "x_test", "y_test"), strict=True):
        write_idx(directory / name, a[key], gz)
    return directory


def load(seed=0, **kw):
    return data.load(config.validate({"data": kw}).data, np.random.default_rng(seed))


# --- MNIST files ---------------------------------------------------------------------------------------------


def test_npz_is_read_scaled_flat_with_image_shape(tmp_path):
    a = tiny_arrays()
    d = load(name="mnist", path=str(write_npz(tmp_path / "mnist.npz")))
    assert d.x_train.shape == (N_TRAIN, 784) and d.x_test.shape == (N_TEST, 784)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert np.array_equal(d.x_train, a["x_train"].reshape(N_TRAIN, -1) / np.float32(255))
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1
    assert (d.y_train == a["y_train"]).all() and (d.y_test == a["y_test"]).all()
    assert d.input_shape == (28, 28, 1) and d.n_classes == 10
    assert np.array_equal(d.x_train[3].reshape(28, 28), a["x_train"][3] / np.float32(255))  # row-major images
    assert len(d.x_measure) == N_TRAIN + N_TEST  # the 10 000 cap is above this tiny file


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_files_read_as_the_npz(tmp_path, gz):
    npz = load(name="mnist", path=str(write_npz(tmp_path / "a.npz")))
    idx = load(name="mnist", path=str(write_idx_dir(tmp_path / "idx", gz)))
    for key in ("x_train", "y_train", "x_test", "y_test", "x_measure", "y_measure"):
        assert np.array_equal(getattr(idx, key), getattr(npz, key)), key


def test_read_idx_checks_magic_and_length(tmp_path):
    labels = tmp_path / "labels"
    write_idx(labels, np.arange(5))
    assert mnist.read_idx(labels, "labels").tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"not an IDX images file: magic number 0x00000801, expected 0x00000803"):
        mnist.read_idx(labels, "images")
    labels.write_bytes(labels.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"header says shape \(5,\) \(5 bytes\) but 4 follow"):
        mnist.read_idx(labels, "labels")
    labels.write_bytes(b"PK")
    with pytest.raises(ValueError, match="shorter than 4 bytes"):
        mnist.read_idx(labels, "labels")


def test_bad_files_name_what_is_wrong(tmp_path):
    a = tiny_arrays()
    path = tmp_path / "nokeys.npz"
    np.savez(path, x_train=a["x_train"])
    with pytest.raises(ValueError, match=r"lacks the keys \['y_train', 'x_test', 'y_test'\]"):
        load(name="mnist", path=str(path))
    small = write_npz(tmp_path / "small.npz", {**a, "x_test": np.zeros((N_TEST, 8, 8), np.uint8)})
    with pytest.raises(ValueError, match=r"test split\): images must be uint8 of shape \(n, 28, 28\)"):
        load(name="mnist", path=str(small))
    bad_labels = write_npz(tmp_path / "labels.npz", {**a, "y_train": a["y_train"] + 10})
    with pytest.raises(ValueError, match=r"labels must be integers 0..9"):
        load(name="mnist", path=str(bad_labels))


def test_locations_env_data_dir_and_keras_cache(tmp_path, monkeypatch):
    want = load(name="mnist", path=str(write_npz(tmp_path / "ref.npz"))).x_train
    monkeypatch.setenv("IB_SWEEPS_MNIST", str(write_idx_dir(tmp_path / "env", gz=True)))
    assert np.array_equal(load(name="mnist").x_train, want)
    monkeypatch.delenv("IB_SWEEPS_MNIST")
    monkeypatch.setenv("IB_SWEEPS_DATA", str(tmp_path / "root"))
    write_npz(tmp_path / "root" / "mnist.npz")
    write_idx_dir(tmp_path / "root" / "fashion_mnist")
    assert np.array_equal(load(name="mnist").x_train, want)
    assert np.array_equal(load(name="fashion_mnist").x_train, want)
    monkeypatch.delenv("IB_SWEEPS_DATA")
    write_idx_dir(tmp_path / "keras_home" / "datasets" / "fashion-mnist", gz=True)  # where keras.datasets keeps it
    assert np.array_equal(load(name="fashion_mnist").x_train, want)
    # a directory holding the npz is read as the npz
    assert np.array_equal(load(name="mnist", path=str(tmp_path / "root")).x_train, want)


def test_absent_file_names_the_files_and_the_variable(tmp_path, monkeypatch):
    cfg = config.validate({"data": {"name": "mnist"}}).data
    message = data.missing(cfg)
    for part in ("mnist.npz", *mnist.IDX_FILES, "$IB_SWEEPS_MNIST", "data.path", "$IB_SWEEPS_DATA", "downloaded"):
        assert part in message, part
    with pytest.raises(FileNotFoundError) as err:
        data.load(cfg, np.random.default_rng(0))
    assert str(err.value) == message
    monkeypatch.setenv("IB_SWEEPS_FASHION_MNIST", str(tmp_path / "nowhere"))
    message = data.missing(config.validate({"data": {"name": "fashion_mnist"}}).data)
    assert f"$IB_SWEEPS_FASHION_MNIST = '{tmp_path / 'nowhere'}' does not exist" in message
    assert "fashion_mnist.npz" in message
    partial = write_idx_dir(tmp_path / "partial")
    (partial / "t10k-labels-idx1-ubyte").unlink()
    message = data.missing(config.validate({"data": {"name": "mnist", "path": str(partial)}}).data)
    assert "lacks t10k-labels-idx1-ubyte" in message
    assert data.missing(config.validate({}).data) is None  # the 12-bit task needs no file


# --- digits --------------------------------------------------------------------------------------------------


def test_digits_shapes_and_range():
    d = load(name="digits")
    assert d.x_train.shape == (1438, 64) and d.x_test.shape == (359, 64) and d.x_measure.shape == (1797, 64)
    assert d.x_train.dtype == np.float32 and d.x_measure.min() == 0 and d.x_measure.max() == 1
    assert d.n_classes == 10 and set(d.y_measure.tolist()) == set(range(10))
    assert d.input_shape == (8, 8, 1)
    assert load(name="digits").x_train.tobytes() == d.x_train.tobytes()  # seeded split


def test_tishby12_is_unchanged_and_keeps_its_input_shape():
    d = load(seed=7)
    order = np.random.default_rng(7).permutation(4096)  # the split is the generator's first draw
    x = tishby12.patterns().astype(np.float32)
    assert np.array_equal(d.x_train, x[np.sort(order[:3277])]) and np.array_equal(d.x_measure, x)
    assert d.input_shape == (12,)
    assert config.to_dict(config.validate({}))["data"] == {
        "name": "tishby12",
        "train_fraction": 0.8,
        "split": "shuffled",
        "measure_on": "all",
    }


# --- random labels, training size, measure cap ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["tishby12", "digits"])
def test_random_labels_permute_training_labels_per_seed(name):
    kw = {"name": name, "split": "reference"}  # the same split for every seed: only the labels move
    plain, a, b = load(3, **kw), load(3, random_labels=1.0, **kw), load(3, random_labels=1.0, **kw)
    other = load(4, random_labels=1.0, **kw)
    assert np.array_equal(a.y_train, b.y_train)  # deterministic per seed
    assert np.array_equal(other.x_train, a.x_train) and not np.array_equal(other.y_train, a.y_train)
    assert np.array_equal(np.bincount(a.y_train), np.bincount(plain.y_train))  # class counts kept
    assert np.array_equal(a.x_train, plain.x_train) and np.array_equal(a.y_test, plain.y_test)  # test labels true
    assert np.mean(a.y_train == plain.y_train) < 0.6


def test_random_label_fraction_moves_only_that_share():
    plain, half = load(name="digits"), load(name="digits", random_labels=0.25)
    changed = np.mean(half.y_train != plain.y_train)
    assert 0.1 < changed <= 0.25  # a permuted label may land on its own class
    assert np.array_equal(np.bincount(half.y_train), np.bincount(plain.y_train))


@pytest.mark.parametrize(("size", "n"), [(0.25, 819), (1000, 1000), (1.0, 3277)])
def test_training_size_subsamples_the_training_split(size, n):
    full, d = load(5), load(5, training_size=size)
    assert len(d.x_train) == len(d.y_train) == n
    assert {tuple(r) for r in d.x_train} <= {tuple(r) for r in full.x_train}
    assert np.array_equal(d.x_test, full.x_test) and np.array_equal(d.x_measure, full.x_measure)  # all 4096
    assert np.array_equal(d.x_train, load(5, training_size=size).x_train)
    assert np.array_equal(load(5, training_size=size, measure_on="train").x_measure, d.x_train)


def test_training_size_count_beyond_a_file_split_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"data.training_size: got 60, but the training split has 50 examples"):
        load(name="mnist", path=str(write_npz(tmp_path / "m.npz")), training_size=60)


def test_measure_size_caps_the_measured_inputs_with_the_seed(tmp_path):
    d = load(2, measure_size=1000)
    assert len(d.x_measure) == len(d.y_measure) == 1000 and len({tuple(r) for r in d.x_measure}) == 1000
    assert np.array_equal(d.x_measure, load(2, measure_size=1000).x_measure)
    assert not np.array_equal(d.x_measure, load(3, measure_size=1000).x_measure)
    assert np.array_equal(d.x_train, load(2).x_train)  # the cap draws from its own generator
    path = str(write_npz(tmp_path / "m.npz"))
    assert len(load(name="mnist", path=path, measure_size=30, measure_on="train").x_measure) == 30
    assert len(load(name="mnist", path=path, measure_on="test").x_measure) == N_TEST
    assert config.validate({"data": {"name": "mnist"}}).data.measure_size == 10_000
    assert config.validate({"data": {"name": "digits"}}).data.measure_size is None


# --- config validation ---------------------------------------------------------------------------------------

BAD = [
    ({"name": "mnist", "train_fraction": 0.5}, "data.train_fraction: got 0.5, but mnist has a published train/test"),
    ({"name": "fashion_mnist", "split": "reference"}, "data.split: got 'reference', but fashion_mnist has a published"),
    ({"path": "/data/mnist.npz"}, "data.path: got '/data/mnist.npz', but tishby12 is not read from a file; allowed"),
    ({"training_size": 1}, "data.training_size: got 1; allowed: a count of training examples (an integer >= 2)"),
    ({"training_size": 1.5}, "data.training_size: got 1.5; allowed: a count of training examples"),
    ({"training_size": True}, "data.training_size: got True; allowed"),
    ({"training_size": 4000}, "data.training_size: got 4000, but the training split of tishby12 has 3277 examples"),
    ({"name": "digits", "training_size": 1500}, "training split of digits has 1438 examples"),
    ({"random_labels": 0}, "data.random_labels: Input should be greater than 0; got 0"),
    ({"random_labels": 1.5}, "data.random_labels: Input should be less than or equal to 1; got 1.5"),
    ({"random_labels": True}, "data.random_labels: Input should be a valid number; got True"),
    ({"measure_size": 1}, "data.measure_size: Input should be greater than or equal to 2; got 1"),
    (
        {"name": "cifar10"},
        "data.name: unknown data set 'cifar10'; allowed: tishby12, digits, single_neuron, mnist, fashion_mnist",
    ),
    ({"name": "mnist", "path": 3}, "data.path: Input should be a valid string; got 3"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_data_config_names_key_value_and_allowed(raw, message):
    with pytest.raises(config.ConfigError) as err:
        config.validate({"data": raw})
    assert message in str(err.value)


def test_data_config_round_trips_and_states_what_ran():
    raw = {"name": "mnist", "path": "/m.npz", "training_size": 0.5, "random_labels": 1.0}
    cfg = config.validate({"data": raw})
    dumped = config.to_dict(cfg)["data"]
    assert dumped == {**raw, "measure_on": "all", "measure_size": 10_000}
    assert config.validate(config.to_dict(cfg)) == cfg


def test_presets_validate():
    mn = load_config("saxe_2018_mnist", [])
    assert mn.data.name == "mnist" and mn.model.hidden == (1024, 20, 20, 20) and mn.data.measure_on == "test"
    assert load_config("digits", []).data.name == "digits"


# --- a trial end to end, and the mnist sweep without its file ------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("tf_ready")
def test_trial_on_a_tiny_mnist_file(tracking_uri, tmp_path):
    from mlflow import MlflowClient

    from ib_sweeps import tracking
    from ib_sweeps.trial import run_trial

    raw = {
        "data": {"name": "mnist", "path": str(write_npz(tmp_path / "m.npz")), "training_size": 40},
        "model": {"hidden": [16, 8]},
        "train": {"epochs": 3, "batch_size": 16},
        "schedule": {"kind": "every"},
        "estimators": [{"bin_size": 0.5}],
    }
    cfg = config.validate({**raw, "data": {**raw["data"], "random_labels": 1.0, "measure_size": 64}})
    result = run_trial(cfg, tracking.RunOptions(tracking_uri=tracking_uri, progress=False))
    run = MlflowClient(tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["entropy/x"] == pytest.approx(6.0)  # 64 measured inputs
    assert run.data.params["data.training_size"] == "40" and run.data.params["data.random_labels"] == "1.0"
    assert result.trace.epochs == [0, 1, 2, 3] and np.isfinite(np.stack(result.trace.ixt)).all()


def test_mnist_sweep_is_valid():
    full, quick = sweep.load("mnist"), sweep.load("mnist", profile="quick")
    assert [t.name for t in quick.trials()] == ["activation=tanh,seed=0", "activation=relu,seed=0"]
    assert quick.trial_for({}).config.train.epochs <= 400 and full.spec.claims
    assert quick.trial_for({}).config.data.training_size == 1000
    assert sweep.load("dataset").missing_data() == []


def test_mnist_sweep_is_skipped_without_its_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IB_SWEEPS_MNIST", str(tmp_path / "absent" / "mnist.npz"))
    db = tmp_path / "mlflow.db"
    assert main(["sweep", "mnist", "--profile", "quick", "--tracking-uri", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out
    assert "sweep mnist: skipped, nothing run" in out
    assert f"$IB_SWEEPS_MNIST = '{tmp_path / 'absent' / 'mnist.npz'}' does not exist" in out
    assert "train-images-idx3-ubyte" in out and "mnist.npz" in out
    assert not db.exists()  # no MLflow run, no Ray


def test_single_neuron_is_four_inputs_repeated_and_measured_once():
    # Goldfeld et al. (2019): X uniform on {-3, -1, 1, 3}, y = 1 only for x = 3.
    from ib_sweeps.data import single_neuron

    cfg = config.DataConfig(name="single_neuron", split="reference")
    d = data.load(cfg, np.random.default_rng(0))
    inputs = np.array([[0.0], [1 / 3], [2 / 3], [1.0]], dtype=np.float32)  # (x + 3) / 6
    assert np.array_equal(d.x_measure, inputs) and np.array_equal(d.y_measure, [0, 0, 0, 1])
    assert np.log2(len(d.x_measure)) == 2.0  # H(X) = 2 bits: one measured row per distinct input
    n = single_neuron.COPIES
    assert d.x_train.shape == (round(0.8 * 4 * n), 1) and d.x_test.shape == (4 * n - round(0.8 * 4 * n), 1)
    values, counts = np.unique(d.x_train, return_counts=True)  # the reference split: equal copies of each
    assert np.array_equal(values, inputs.ravel()) and set(counts) == {n * 4 // 5}
    assert np.array_equal(d.y_train, (d.x_train[:, 0] == 1.0).astype(np.int32))
    for on in ("train", "test"):
        other = data.load(config.DataConfig(name="single_neuron", measure_on=on), np.random.default_rng(1))
        assert len(other.x_measure) == 4 and set(other.x_measure.ravel()) == set(inputs.ravel())
    assert config.measured_inputs(cfg) == 4
