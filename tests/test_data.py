import hashlib
import os

import numpy as np
import pytest
from conftest import DATA

from ib_sweeps import config, data
from ib_sweeps.data import tishby12

# SHA-256 of the reference labels y[0].tobytes() (uint8), as published with them (tests/data/README.md).
REFERENCE_LABELS_SHA256 = "77732f16f85e91b49d3997196b56163b3bd362d8cf631468a8de3f986e88359f"


def test_labels_reproduce_reference_hash():
    y = tishby12.labels()
    assert y.dtype == np.uint8 and y.shape == (4096,)
    assert int(y.sum()) == 2118
    assert hashlib.sha256(y.tobytes()).hexdigest() == REFERENCE_LABELS_SHA256


def test_patterns_are_msb_first_binary():
    x = tishby12.patterns()
    assert x.shape == (4096, 12)
    assert x[1].tolist() == [0] * 11 + [1]
    assert x[2048].tolist() == [1] + [0] * 11
    assert (x @ (2 ** np.arange(11, -1, -1)) == np.arange(4096)).all()


def test_vertices_are_a_unit_icosahedron():
    v = tishby12.VERTICES
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    d = np.linalg.norm(v[:, None] - v[None], axis=2)
    nearest = np.sort(d, axis=1)[:, 1:6]  # every vertex has 5 equidistant neighbours
    assert np.allclose(nearest, nearest[0, 0])


def test_matches_var_u_mat():
    from scipy.io import loadmat

    m = loadmat(os.path.join(DATA, "var_u.mat"))
    assert (m["F"] == tishby12.patterns()).all()
    assert (m["y"][0] == tishby12.labels()).all()


def test_vertices_match_the_reference_table():
    table = np.loadtxt(os.path.join(DATA, "tishby12_vertices.csv"), delimiter=",", skiprows=1)
    assert (table[:, 0] == np.arange(12)).all()
    assert np.allclose(tishby12.VERTICES, table[:, 1:], atol=1e-15)


def _load(**kw):
    cfg = config.validate({"data": kw})
    return data.load(cfg.data, np.random.default_rng(7))


def test_reference_split_is_unshuffled_prefix():
    d = _load(split="reference")
    assert len(d.x_train) == 3277 and len(d.x_test) == 819
    assert (d.x_train == tishby12.patterns()[:3277]).all()
    assert (d.y_test == tishby12.labels()[3277:]).all()


def test_shuffled_split_is_seeded_and_disjoint():
    a, b = _load(), _load()
    assert (a.x_train == b.x_train).all()
    other = data.load(config.validate({}).data, np.random.default_rng(8))
    assert not (a.x_train == other.x_train).all()
    rows = {tuple(r) for r in a.x_train} | {tuple(r) for r in a.x_test}
    assert len(rows) == 4096 and len(a.x_train) == 3277


@pytest.mark.parametrize(("measure_on", "n"), [("all", 4096), ("train", 2048), ("test", 2048)])
def test_measure_on(measure_on, n):
    d = _load(measure_on=measure_on, train_fraction=0.5)
    assert len(d.x_measure) == len(d.y_measure) == n
    assert len({tuple(r) for r in d.x_measure}) == n  # one row per distinct input
