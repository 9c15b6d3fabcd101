"""Conformance suite over the schedule registry, plus each schedule's own rule."""

import numpy as np
import pytest

from ib_sweeps import schedules

KINDS = sorted(schedules.REGISTRY)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_epochs", [1, 7, 100, 8000])
def test_contract(kind, n_epochs):
    epochs = schedules.REGISTRY[kind]().epochs(n_epochs)
    assert epochs.dtype.kind == "i"
    assert epochs[0] == 0 and epochs[-1] == n_epochs
    assert (np.diff(epochs) > 0).all()  # sorted, distinct


def test_every():
    assert schedules.Every().epochs(5).tolist() == [0, 1, 2, 3, 4, 5]


def test_skip():
    assert schedules.Skip(every=3).epochs(10).tolist() == [0, 3, 6, 9, 10]
    assert schedules.Skip(every=5).epochs(10).tolist() == [0, 5, 10]


def test_log_gives_n_distinct_points():
    epochs = schedules.Log(n=300).epochs(8000)
    assert len(epochs) == 300
    assert epochs[:10].tolist() == list(range(10))  # dense early
    gaps = np.diff(epochs)
    assert gaps[-1] > 100 and (np.diff(np.log(epochs[50:])) < 0.05).all()  # sparse late, log-even


def test_log_with_more_points_than_epochs_is_every_epoch():
    assert schedules.Log(n=50).epochs(20).tolist() == list(range(21))


def test_schedules_are_pure():
    s = schedules.Log(n=40)
    assert (s.epochs(1000) == s.epochs(1000)).all()
