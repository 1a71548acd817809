"""gradbench.training: the tracker's budget, runs, held-out metrics, resume and the CLI."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from conftest import reference_gradient

from gradbench import config, optimizers, registry, training
from gradbench.cli import main
from gradbench.methods.backprop import Backprop
from gradbench.problem import make_problem
from gradbench.results import TRAINING_COLUMNS

TIME_COLUMNS = ["wall_s", "run_id"]
TINY = """
[tiny]
N = [2]
L = [1]
[tiny.train]
sizes = [[3, 2]]
seeds = 2
budget_evals = 120
per_class = 4
n_test = 50
lr_grid = [0.3, 3.0]
optimizers = ["gd/backprop", "gd-layerwise/backprop", "lbfgs/backprop", "cma-es", "es",
              "differential-evolution", "dual-annealing"]
"""


@pytest.fixture(scope="module")
def entries():
    return registry.discover()


class Counting:
    """A problem whose loss and batched losses are counted here, independently of the
    tracker; everything else is the wrapped problem's."""

    def __init__(self, problem):
        self._problem, self.calls = problem, 0

    def __getattr__(self, name):
        return getattr(self._problem, name)

    def loss(self, theta):
        self.calls += 1
        return self._problem.loss(theta)

    def losses(self, thetas):
        self.calls += len(thetas)
        return self._problem.losses(thetas)


@pytest.mark.parametrize("name", list(optimizers.GRADIENT_FREE))
def test_no_gradient_free_run_exceeds_its_budget(name):
    problem = Counting(make_problem(2, 2, 12, seed=4))
    run = training.train(problem, name, None, budget=137)
    assert run.status == "ok", run.reason
    made = problem.calls - 1  # the starting point's loss is given, not counted
    assert made == run.points[-1]["evals"] <= 137
    if not run.reason:  # ended by the budget, not by converging
        assert made == 137


class CountedBackprop(Backprop):
    def prepare(self, problem):
        grad_fn = super().prepare(problem)
        self.calls = 0

        def counted(theta):
            self.calls += 1
            return grad_fn(theta)

        return counted


@pytest.mark.parametrize("budget", [100, 101, 9])
def test_each_gradient_costs_its_cost_model(budget):
    """Backprop at L = 2 does 3L − 1 = 5 layer steps, 2.5 forward passes: a budget of 100
    allows 40 gradients, not 100."""
    method = CountedBackprop()
    run = training.train(make_problem(3, 2, 8, seed=0), "gd", method, budget, lr=0.1)
    assert method.calls == int(budget // 2.5)
    assert run.points[-1]["evals"] == 2.5 * int(budget // 2.5)


def test_a_population_is_cut_at_the_budget():
    problem = Counting(make_problem(2, 1, 8, seed=0))
    tracker = training.Tracker(problem, budget=10)
    tracker.losses(np.tile(problem.theta0, (4, 1)))
    with pytest.raises(training.BudgetSpent):
        tracker.losses(np.tile(problem.theta0, (8, 1)))
    assert tracker.evals == 10 and problem.calls - 1 == 10
    with pytest.raises(training.BudgetSpent):
        tracker.loss(problem.theta0)
    assert problem.calls - 1 == 10


def test_recorded_accuracies_are_at_the_best_theta_not_theta0():
    p = make_problem(4, 1, 40, seed=3, n_test=300)
    run = training.train(p, "gd", Backprop(), budget=300, lr=1.0)
    last = run.points[-1]
    theta = run.theta
    by_hand = (p.net.run(p.layers(theta), p.X).argmax(-1) == p.target).mean()
    held_out = (p.net.run(p.layers(theta), p.X_test).argmax(-1) == p.target_test).mean()
    assert last["accuracy"] == pytest.approx(by_hand)
    assert last["test_accuracy"] == pytest.approx(held_out)
    assert last["loss"] == pytest.approx(p.loss(theta)) and last["loss"] < p.loss(p.theta0)
    assert by_hand != p.accuracy(p.theta0) and held_out != p.test_accuracy(p.theta0)
    assert last["test_loss"] == pytest.approx(p.test_loss(theta))
    assert all("test_accuracy" not in point for point in run.points[:-1])


def test_held_out_data_leaves_the_training_data_unchanged():
    plain = make_problem(4, 2, 30, seed=7)
    split = make_problem(4, 2, 30, seed=7, n_test=200)
    for name in ("X", "target", "theta0"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(split, name))
    assert split.X_test.shape == (200, 4) and split.target_test.shape == (200,)
    assert not np.isin(split.X_test[:, 0], split.X[:, 0]).any()
    assert plain.n_test == 0 and math.isnan(plain.test_accuracy(plain.theta0))
    with pytest.raises(ValueError, match="n_test"):
        make_problem(2, 1, 8, n_test=-1)


def test_trajectory_is_ordered_and_records_the_crossing_of_each_rung():
    p = make_problem(4, 1, 16, seed=1)
    run = training.train(p, "nelder-mead", None, budget=400)
    frame = pd.DataFrame(run.points)
    assert frame.evals.is_monotonic_increasing and frame.wall_s.is_monotonic_increasing
    assert frame.loss.is_monotonic_decreasing  # best so far
    tenth = frame[frame.loss <= 0.1 * frame.loss.iloc[0]]
    if len(tenth):  # the first point under a tenth is the evaluation that crossed it
        first = tenth.evals.iloc[0]
        assert (frame[frame.evals < first].loss > 0.1 * frame.loss.iloc[0]).all()


def test_layerwise_at_one_layer_is_gradient_descent():
    p = make_problem(3, 1, 20, seed=2)
    gd = training.train(p, "gd", Backprop(), 90, lr=0.5)
    lw = training.train(p, "gd-layerwise", Backprop(), 90, lr=0.5)
    assert lw.points[-1]["loss"] == pytest.approx(gd.points[-1]["loss"], rel=1e-12)
    assert training.layerwise_cost(p.net, 3.0) == 3.0


def test_layerwise_step_differs_from_the_whole_gradient_and_costs_more():
    p = make_problem(4, 3, 32, seed=5)
    run = training.train(p, "gd-layerwise", Backprop(), 200, lr=1.0)
    cosines = [q["cosine"] for q in run.points if "cosine" in q]
    assert cosines and all(-1 <= c <= 1 for c in cosines) and min(cosines) < 0.9999
    step = (9 + 3) / 3  # layer products L² + L, in forward passes of L layer steps
    assert training.layerwise_cost(p.net, (3 * 3 - 1) / 3) == pytest.approx(step)
    assert run.points[-1]["evals"] == pytest.approx(step * (200 // step))


def test_layerwise_first_step_updates_the_top_layer_by_its_plain_gradient():
    """With one step (no momentum history), the top layer moves by −η·∂L/∂W_top."""
    p = make_problem(3, 2, 10, seed=8)
    lr, top = 0.5, p.net.layer_slice(1)
    _, g = Backprop().prepare(p)(p.theta0)
    tracker = training.Tracker(p, budget=2 * 3.6)  # two steps: the second sees θ₁
    with pytest.raises(training.BudgetSpent):
        optimizers.layerwise_descent(tracker, Backprop().prepare(p), lr, 3.6)
    # the best θ seen is θ after the first step (the loss falls), its top block moved
    theta1 = tracker.best_theta
    np.testing.assert_allclose(theta1[top] - p.theta0[top], -lr * g[top], rtol=1e-10, atol=1e-14)
    # the first layer moved by its gradient through the *updated* top layer, which
    # central differences of the loss at that mixed point give independently
    mixed = p.theta0.copy()
    mixed[top] = theta1[top]
    first = p.net.layer_slice(0)
    g_mixed = reference_gradient(p.loss, mixed)[first]
    np.testing.assert_allclose(theta1[first] - p.theta0[first], -lr * g_mixed, atol=1e-8)
    assert not np.allclose(g_mixed, g[first], atol=1e-6)  # not the whole gradient's block


def test_a_failing_prepare_is_an_error_row_and_training_goes_on(entries, tmp_path):
    class Broken(Backprop):
        name = "broken"

        def prepare(self, problem):
            raise RuntimeError("boom")

    run = training.train(make_problem(2, 1, 8), "gd", Broken(), 50, lr=0.1)
    assert (run.status, run.reason) == ("error", "prepare failed: RuntimeError: boom")
    entries = {**entries, "broken": registry.Entry("broken", "test", Broken())}
    settings = _tiny(("gd/broken", "gd/backprop"))
    frame = training.run_all(settings, entries, tmp_path, echo=lambda line: None)
    status = frame.groupby("gradient_method").status.agg(set)
    assert status["broken"] == {"error"} and status["backprop"] == {"ok"}


def test_a_diverging_run_is_an_error_with_its_reason():
    class Exploding(Backprop):
        def prepare(self, problem):
            return lambda theta: (math.nan, np.zeros_like(theta))

    run = training.train(make_problem(2, 1, 8), "gd", Exploding(), 50, lr=0.1)
    assert run.status == "error" and "loss became nan" in run.reason


def test_unknown_optimizers_are_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        training.parse("adam")
    with pytest.raises(ValueError, match="unknown optimizer"):
        training.parse("powell/backprop")
    with pytest.raises(ValueError, match="backprop only"):
        training.parse("gd-layerwise/fd-central")
    assert training.parse("gd-layerwise/backprop") == ("gd-layerwise", "backprop")


def _tiny(names, **train):
    settings = config.load("quick")
    t = config.TrainSettings(
        sizes=((2, 1),), seeds=1, budget_evals=60, optimizers=tuple(names), per_class=4,
        n_test=20, lr_grid=(0.3, 1.0), **train,
    )  # fmt: skip
    return dataclasses.replace(settings, train=t)


CHANGES = {
    "dtype": ("settings", "float32"),
    "activation": ("settings", "relu"),
    "loss": ("settings", "mse"),
    "bias": ("settings", False),
    "budget_evals": ("train", 61.0),
    "per_class": ("train", 5),
    "max_train": ("train", 99),
    "n_test": ("train", 21),
    "lr_grid": ("train", (0.3, 2.0)),
}


@pytest.mark.parametrize("setting", list(CHANGES))
def test_resume_key_covers_every_setting(setting):
    base = _tiny(["gd/backprop"])
    where, value = CHANGES[setting]
    if where == "settings":
        other = dataclasses.replace(base, **{setting: value})
    else:
        other = dataclasses.replace(base, train=dataclasses.replace(base.train, **{setting: value}))
    assert training.config_of(other) != training.config_of(base)
    assert training.config_key(other) != training.config_key(base)


def test_resume_key_is_the_run_its_configuration_and_the_machine_not_the_plan():
    base = _tiny(["gd/backprop"])
    more = dataclasses.replace(base, train=dataclasses.replace(base.train, seeds=7))
    assert training.config_of(more) == training.config_of(base)
    assert training.run_settings(more) != training.run_settings(base)  # not resumed as is
    assert training.CELL == ["optimizer", "gradient_method", "N", "L", "seed"]
    assert set(training.config_of(base)) | {"fingerprint", "run_id"} <= set(TRAINING_COLUMNS)
    assert not training.config_key(base).isdigit()  # a CSV reads it back as text


def kept(lines) -> int:
    """How many runs a run_all said were on file (kept, not trained again)."""
    return sum(line.startswith("[") and line.endswith("on file") for line in lines)


class Interrupt(Exception):
    pass


def _stop_after_first_run(lines):
    def echo(line):
        lines.append(line)
        if line.startswith("[1/") and "on file" not in line:
            raise Interrupt  # as Ctrl-C would, once the first run is on disk

    return echo


def test_run_all_resumes_an_interrupted_run_and_archives_a_finished_one(
    entries, tmp_path, monkeypatch
):
    monkeypatch.setenv("GRADBENCH_FINGERPRINT", "machine-a")
    settings = _tiny(["gd/backprop", "powell"])
    lines = []
    with pytest.raises(Interrupt):
        training.run_all(settings, entries, tmp_path, echo=_stop_after_first_run(lines))
    partial = pd.read_csv(tmp_path / "training.csv")
    assert set(partial.optimizer) == {"gd"}  # the first run is on disk
    lines.clear()
    first = training.run_all(settings, entries, tmp_path, echo=lines.append)  # resumed
    assert kept(lines) == 1 and not any("moved" in x for x in lines)
    on_disk = pd.read_csv(tmp_path / "training.csv")
    assert list(on_disk.columns) == TRAINING_COLUMNS and len(first) == len(on_disk)
    assert set(on_disk.fingerprint) == {"machine-a"} and set(on_disk.n_train) == {8}
    assert on_disk.run_id.nunique() == 1 and set(on_disk.optimizer) == {"gd", "powell"}
    # --extend adds to the finished run: both runs are on file
    lines.clear()
    again = training.run_all(settings, entries, tmp_path, extend=True, echo=lines.append)
    assert len(again) == len(on_disk) and kept(lines) == 2
    # a finished run is archived, and everything is trained again
    lines.clear()
    training.run_all(settings, entries, tmp_path, echo=lines.append)
    assert not kept(lines) and any("moved" in x for x in lines)
    # another machine: archived too, never mixed in
    monkeypatch.setenv("GRADBENCH_FINGERPRINT", "machine-b")
    lines.clear()
    training.run_all(settings, entries, tmp_path, extend=True, echo=lines.append)
    assert not kept(lines) and any("moved" in x for x in lines)
    archived = pd.concat(pd.read_csv(f) for f in (tmp_path / "archive").glob("*/training.csv"))
    assert set(archived.fingerprint) == {"machine-a"}
    assert set(pd.read_csv(tmp_path / "training.csv").fingerprint) == {"machine-b"}


def test_an_interrupted_run_with_other_settings_is_archived(entries, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADBENCH_FINGERPRINT", "machine-a")
    settings = _tiny(["gd/backprop", "powell"])
    with pytest.raises(Interrupt):
        training.run_all(settings, entries, tmp_path, echo=_stop_after_first_run([]))
    other = dataclasses.replace(settings, train=dataclasses.replace(settings.train, n_test=21))
    lines = []
    frame = training.run_all(other, entries, tmp_path, echo=lines.append)
    assert any("moved" in line and "n_test" in line for line in lines)
    assert not kept(lines) and set(frame.n_test) == {21}


def test_max_P_limits_an_optimizer_to_small_sizes():
    settings = _tiny(["gd/backprop", "cobyla", "powell"], max_P=(("cobyla", 6),))
    settings = dataclasses.replace(
        settings, train=dataclasses.replace(settings.train, sizes=((2, 1), (3, 2)))
    )
    planned = {(o, N) for o, _, N, _, _ in training.plan(settings)}
    assert ("cobyla", 2) in planned and ("cobyla", 3) not in planned
    assert ("powell", 3) in planned and ("gd", 3) in planned


def test_gradbench_train_twice_gives_identical_results(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADBENCH_FINGERPRINT", "test")
    (tmp_path / "tiny.toml").write_text(TINY)
    tables = []
    for run in ("a", "b"):
        args = ["train", "--config", str(tmp_path / "tiny.toml"), "--profile", "tiny"]
        assert main([*args, "--out", str(tmp_path / run)]) == 0
        tables.append(pd.read_csv(tmp_path / run / "training.csv"))
    a, b = (t.drop(columns=TIME_COLUMNS) for t in tables)
    pd.testing.assert_frame_equal(a, b)
    final = a.groupby(["optimizer", "gradient_method", "N", "seed"], dropna=False).tail(1)
    assert len(final) == 7 * 2 and (final.status == "ok").all()
    assert final.test_accuracy.between(0, 1).all() and (final.evals <= 120).all()
    summary = pd.read_csv(tmp_path / "a" / "training_summary.csv")
    assert {"test_accuracy", "test_accuracy_lo", "evals_to_target", "reached"} <= set(summary)


def test_train_refuses_an_unknown_optimizer_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(TINY.replace('"es"', '"adam"'))
    code = main(["train", "--config", str(tmp_path / "bad.toml"), "--profile", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unknown optimizer 'adam'" in err


def test_train_refuses_an_unknown_gradient_method_before_running(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(TINY.replace('"gd/backprop"', '"gd/nope"'))
    args = ["train", "--config", str(tmp_path / "bad.toml"), "--profile", "tiny"]
    code = main([*args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nope" in err
    assert not (tmp_path / "out" / "training.csv").exists()
