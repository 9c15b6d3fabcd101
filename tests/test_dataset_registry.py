"""Conformance suite: every registered data set honours the :class:`~ib_sweeps.data.Dataset` contract.

Each data set is loaded with its config defaults. A file-backed set (MNIST,
Fashion-MNIST) whose files are not on this machine is skipped, naming why;
nothing is downloaded.
"""

import numpy as np
import pytest

from ib_sweeps import config, data

NAMES = list(data.DATASETS)


FILE_SETS = [name for name, source in data.DATASETS.items() if source.files is not None]


def load(name: str, seed: int = 0, **options) -> data.Dataset:
    cfg = config.DataConfig(name=name, **options)
    reason = data.missing(cfg)
    if reason is not None:
        pytest.skip(reason)
    return data.load(cfg, np.random.default_rng(seed))


def test_registry_lists_data_sets():
    assert {"tishby12", "digits", "mnist", "fashion_mnist"} <= set(NAMES)
    with pytest.raises(config.ConfigError, match="unknown data set 'nope'; allowed: " + ", ".join(NAMES)):
        config.validate({"data": {"name": "nope"}})


@pytest.mark.parametrize("name", NAMES)
def test_declared_properties_are_consistent(name):
    source = data.DATASETS[name]
    assert set(source.defaults()) <= set(config.DataConfig.model_fields)
    assert source.input_shape is None or all(type(n) is int and n > 0 for n in source.input_shape)
    assert source.files is not None or data.missing(config.DataConfig(name=name)) is None  # in the package
    assert config.DataConfig(name=name).name == name  # the defaults validate


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_labels(name):
    d, source = load(name), data.DATASETS[name]
    assert d.name == name and d.n_classes >= 2
    assert d.n_classes == source.n_classes, f"{name}: the registry declares {source.n_classes} classes"
    width = int(np.prod(d.input_shape))
    assert source.input_shape is None or d.input_shape == source.input_shape
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test), (d.x_measure, d.y_measure)):
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == width
        assert y.dtype == np.int32 and y.shape == (len(x),)
        assert np.all((x >= 0) & (x <= 1)), f"{name}: inputs outside [0, 1]"
        assert np.all((y >= 0) & (y < d.n_classes))
    assert len(d.x_train) >= 2 and len(d.x_test) >= 1
    assert set(np.unique(d.y_train)) == set(range(d.n_classes)), f"{name}: a class is missing from training"
    if source.n_examples is not None:
        assert len(d.x_train) + len(d.x_test) == source.n_examples


@pytest.mark.parametrize("name", NAMES)
def test_measure_set_is_as_configured(name):
    cfg = config.DataConfig(name=name)
    d = load(name)
    assert len(d.x_measure) == config.measured_inputs(cfg)
    test = load(name, measure_on="test", measure_size=5)
    assert len(test.x_measure) == min(5, data.DATASETS[name].distinct_inputs or 5)  # a toy set has fewer inputs
    rows = {r.tobytes(): label for r, label in zip(test.x_test, test.y_test, strict=True)}
    assert all(rows.get(r.tobytes()) == label for r, label in zip(test.x_measure, test.y_measure, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_data(name):
    a, b = load(name, seed=7), load(name, seed=7)
    for field in ("x_train", "y_train", "x_test", "y_test", "x_measure", "y_measure"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    if not data.DATASETS[name].fixed_split:  # a shuffled split is drawn from the seed
        assert not np.array_equal(a.x_train, load(name, seed=8).x_train)


@pytest.mark.parametrize("name", FILE_SETS)
def test_file_sets_read_a_tiny_file_of_their_format(name, tmp_path):
    """Runs on any machine: a file-backed set reads a small file in its Keras ``.npz`` layout."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_train": np.arange(30, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "y_test": np.arange(12, dtype=np.uint8) % 10,
    }
    np.savez(tmp_path / f"{name}.npz", **arrays)
    d = load(name, path=str(tmp_path / f"{name}.npz"), measure_size=8)
    assert d.input_shape == data.DATASETS[name].input_shape and d.x_train.shape == (30, 28 * 28)
    assert d.n_classes == data.DATASETS[name].n_classes  # the registry's count, which arrays size evaluation by
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32 and len(d.x_measure) == 8
    assert np.array_equal(d.x_test, arrays["x_test"].reshape(12, -1) / np.float32(255.0))
