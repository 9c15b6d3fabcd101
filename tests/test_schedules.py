"""Schedules: the conformance suite over the registry, each fixed grid, and delta skip on synthetic traces."""

import itertools

import numpy as np
import pytest

from ib_sweeps import config, schedules

KINDS = sorted(schedules.REGISTRY)
EXAMPLES = {"list": {"epochs": [3, 5]}}  # kinds with required parameters


def run_plan(schedule, n_epochs, trace, h_x=1.0, h_y=1.0):
    """Drive a plan against ``trace(epoch) -> point (2, n_layers)``, backtracking synchronously.

    Returns {epoch: reason}.
    """
    plan = schedule.plan(n_epochs, h_x, h_y)
    seen = {}
    while (epoch := plan.next()) is not None:
        assert epoch not in seen
        seen[epoch] = "scheduled"
        gap = plan.observe(epoch, trace(epoch))
        if gap is not None:
            for e, _ in schedules.backtrack(gap, trace, plan.close, plan.budget):
                seen[e] = "backtracked"
    return seen


def smooth(epoch):
    """Fast early, flat late, with a sudden jump at epoch 600: (2 axes, 3 layers)."""
    x = 1 - np.exp(-epoch / 40) + 0.5 * (epoch >= 600)
    return np.array([[x, 0.5 * x, 0.2 * x], [x / 3, x / 4, x / 5]])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_epochs", [1, 7, 100, 1000])
def test_contract(kind, n_epochs):
    schedule = schedules.REGISTRY[kind](**EXAMPLES.get(kind, {}))
    epochs = sorted(run_plan(schedule, n_epochs, smooth))
    assert epochs[0] == 0 and epochs[-1] == n_epochs
    assert all(0 <= e <= n_epochs for e in epochs)


def test_every_skip_list():
    assert schedules.Every().epochs(5).tolist() == [0, 1, 2, 3, 4, 5]
    assert schedules.Skip(every=3).epochs(10).tolist() == [0, 3, 6, 9, 10]
    assert schedules.Explicit(epochs=[7, 2]).epochs(10).tolist() == [0, 2, 7, 10]


def test_log_gives_n_distinct_points():
    epochs = schedules.Log(n=300).epochs(8000)
    assert len(epochs) == 300
    assert epochs[:10].tolist() == list(range(10))  # dense early
    assert np.diff(epochs)[-1] > 100 and (np.diff(np.log(epochs[50:])) < 0.05).all()  # sparse late
    assert schedules.Log(n=50).epochs(20).tolist() == list(range(21))


def test_piecewise_is_the_saxe_grid_by_default():
    epochs = schedules.Piecewise().epochs(1000).tolist()
    expected = [*range(20), *range(20, 100, 5), *range(100, 200, 10), *range(200, 1001, 100)]
    assert epochs == expected


def test_piecewise_validation():
    with pytest.raises(config.ConfigError, match="'until' must increase"):
        config.validate(
            {
                "schedule": {
                    "kind": "piecewise",
                    "segments": [{"until": 50, "every": 1}, {"every": 5}, {"until": 9, "every": 2}],
                }
            }
        )


def test_distance_normalized_and_absolute():
    p = np.array([[12.0, 6.0], [1.0, 0.5]])
    q = np.array([[11.0, 6.0], [1.0, 0.4]])
    assert schedules.distance(p, q) == pytest.approx(1.0)  # Eq. 3.8: largest shift, 1 bit of I(X;T)
    assert schedules.distance(p, q, 12.0, 1.0) == pytest.approx(0.1)  # Eq. 3.9: 0.1 of H(Y) beats 1/12 of H(X)


def test_delta_skip_doubles_on_a_flat_trace():
    flat = lambda e: np.zeros((2, 3))  # noqa: E731
    assert sorted(run_plan(schedules.DeltaExact(delta=0.01), 100, flat)) == [0, 1, 3, 7, 15, 31, 63, 100]
    assert sorted(run_plan(schedules.DeltaExact(delta=0.01, multiplier=3), 100, flat)) == [0, 1, 4, 13, 40, 100]


@pytest.mark.parametrize("delta", [0.005, 0.02, 0.1])
@pytest.mark.parametrize("shrink", [False, True])
def test_delta_exact_guarantees_the_bound(delta, shrink):
    schedule = schedules.DeltaExact(delta=delta, shrink_after_backtrack=shrink)
    seen = run_plan(schedule, 2000, smooth)
    epochs = sorted(seen)
    for a, b in itertools.pairwise(epochs):
        assert b - a == 1 or schedules.distance(smooth(a), smooth(b)) <= delta
    assert "backtracked" in seen.values()  # the jump at 600 had to be filled in
    assert 599 in seen and 600 in seen  # ... down to adjacent epochs around it
    assert len(epochs) < 0.25 * 2001


def test_delta_approx_never_backtracks_and_counts_as_expected():
    seen = run_plan(schedules.DeltaApprox(delta=0.02), 2000, smooth)
    assert set(seen.values()) == {"scheduled"}
    linear = lambda e: np.full((2, 1), 0.001 * e)  # noqa: E731
    # D = 0.001 * skip: skip doubles while D <= 0.02 (skips 1..16), then stays at 32 (D = 0.032).
    epochs = sorted(run_plan(schedules.DeltaApprox(delta=0.02), 200, linear))
    assert epochs[:7] == [0, 1, 3, 7, 15, 31, 63] and np.all(np.diff(epochs[6:-1]) == 32)


def test_shrink_after_backtrack_measures_less_on_a_speeding_up_trace():
    def speeding_up(e):  # slow, then fast again late in training
        return np.full((2, 1), 1e-4 * e + (0.002 * (e - 1500) if e > 1500 else 0.0))

    plain = run_plan(schedules.DeltaExact(delta=0.02), 3000, speeding_up)
    shrink = run_plan(schedules.DeltaExact(delta=0.02, shrink_after_backtrack=True), 3000, speeding_up)
    n_back = lambda seen: sum(r == "backtracked" for r in seen.values())  # noqa: E731
    assert n_back(shrink) < n_back(plain)


def test_max_evaluations_caps_and_keeps_the_last_epoch():
    seen = run_plan(schedules.DeltaExact(delta=0.001, max_evaluations=12), 2000, smooth)
    assert len(seen) == 12 and 2000 in seen and 0 in seen


def test_primary_and_list_are_checked_against_the_config():
    with pytest.raises(config.ConfigError, match="primary 'kde' is not an estimator"):
        config.validate({"schedule": {"kind": "delta_exact", "primary": "kde"}})
    with pytest.raises(config.ConfigError, match=r"epochs \[90\] are beyond train.epochs = 50"):
        config.validate({"train": {"epochs": 50}, "schedule": {"kind": "list", "epochs": [1, 90]}})
    assert config.validate({}).schedule.kind == "delta_exact"  # the default for long runs


@pytest.mark.parametrize("kind", KINDS)
def test_declared_hooks(kind):
    """What a trial asks of every schedule, with the base's defaults unless the kind needs more."""
    schedule = schedules.REGISTRY[kind](**EXAMPLES.get(kind, {}))
    primary, listed, limit = schedule.primary_estimator(), schedule.listed_epochs(), schedule.snapshot_limit_mb()
    assert primary is None or isinstance(primary, str)
    assert all(type(e) is int for e in listed) and (kind != "list" or listed == (3, 5))
    plan = schedule.plan(10)
    assert plan.needs_snapshots == (limit is not None)  # a plan that backtracks keeps snapshots within a limit
    assert (plan.close is not None and plan.budget is not None) or not plan.needs_snapshots
    cfg = config.validate({"train": {"epochs": 10}, "schedule": {"kind": kind, **EXAMPLES.get(kind, {})}})
    assert cfg.primary_estimator() == 0


def test_primary_estimator_picks_the_labelled_one():
    raw = {"schedule": {"kind": "delta_approx", "primary": "b"}, "estimators": [{"label": "a"}, {"label": "b"}]}
    assert config.validate(raw).primary_estimator() == 1
