import contextlib
import math

import numpy as np
import pandas as pd
import pytest

from gradbench import config, registry, training
from gradbench.methods.backprop import Backprop
from gradbench.problem import make_problem
from gradbench.results import TRAINING_COLUMNS

OPTIMIZERS = [("gd", "backprop"), ("lbfgs", "backprop"), ("gd", "fd-central")] + [
    (name, "") for name in training.GRADIENT_FREE
]


@pytest.fixture(scope="module")
def entries():
    return registry.discover()


@pytest.mark.parametrize(("optimizer", "method"), OPTIMIZERS, ids=lambda x: x or "-")
def test_each_optimizer_lowers_the_loss_on_a_tiny_problem(entries, optimizer, method):
    p = make_problem(2, 1, 16, seed=0)
    points, status, reason = training.train(
        p, optimizer, entries[method].method if method else None, 0.3
    )
    assert status == "ok", reason
    assert points[-1]["loss"] < 0.8 * p.loss(p.theta0)
    assert points[-1]["wall_s"] <= 0.3 + 0.1  # the budget is respected (one last call may overrun)


def test_trajectory_is_ordered_in_time_and_evaluations(entries):
    p = make_problem(4, 1, 16, seed=1)
    points, _, _ = training.train(p, "nelder-mead", None, 0.2)
    frame = pd.DataFrame(points)
    assert frame.evals.is_monotonic_increasing and frame.wall_s.is_monotonic_increasing
    assert frame.loss.is_monotonic_decreasing  # best-so-far


def test_evaluation_counter_is_exact():
    p = make_problem(3, 2, 8, seed=2)
    calls = []
    original = p.loss

    class Counting:
        def __getattr__(self, name):
            return getattr(p, name)

        def loss(self, theta):
            calls.append(1)
            return original(theta)

        def losses(self, thetas):
            calls.extend([1] * len(thetas))
            return p.losses(thetas)

    tracker = training.Tracker(Counting(), budget_s=0.2)
    with contextlib.suppress(training.BudgetSpent):  # converging early is fine too
        training.GRADIENT_FREE["powell"](tracker)
    assert tracker.evals == len(calls) > 0
    tracker = training.Tracker(p, budget_s=0.2)
    value_and_grad = tracker.gradient(Backprop().prepare(p), cost=3.0)
    for _ in range(7):
        value_and_grad(p.theta0)
    assert tracker.evals == 21.0  # a gradient counts as its cost in forward passes


def test_a_failing_optimizer_is_recorded_with_its_reason():
    p = make_problem(2, 1, 8, seed=0)

    class Exploding(Backprop):
        def prepare(self, problem):
            return lambda theta: (math.nan, np.zeros_like(theta))

    points, status, reason = training.train(p, "gd", Exploding(), 0.2)
    assert status == "error" and "loss became nan" in reason


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        training.parse("adam")
    with pytest.raises(ValueError, match="unknown optimizer"):
        training.parse("powell/backprop")


def test_run_all_writes_the_schema_and_resumes(entries, tmp_path):
    settings = config.load("quick")
    settings = settings.__class__(
        **{
            **settings.__dict__,
            "train": config.TrainSettings(((2, 1),), 1, 0.1, ("gd/backprop", "powell")),
        }
    )
    lines = []
    frame = training.run_all(settings, entries, tmp_path, echo=lines.append)
    on_disk = pd.read_csv(tmp_path / "training.csv")
    assert list(on_disk.columns) == TRAINING_COLUMNS
    assert set(on_disk.optimizer) == {"gd", "powell"} and len(frame) == len(on_disk)
    again = training.run_all(settings, entries, tmp_path, echo=lines.append)
    assert len(again) == len(on_disk) and sum("on file" in line for line in lines) == 2
    summary = training.summarize(again)
    gd = summary[summary.optimizer == "gd"].iloc[0]
    assert gd.reached == 1.0 and gd.final_loss == gd.target_loss
