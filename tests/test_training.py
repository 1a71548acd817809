"""gradbench.training: the tracker's budget, runs, held-out metrics, resume and the CLI."""

import dataclasses
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import reference_gradient

import gradbench
from gradbench import config, lock, optimizers, registry, training
from gradbench.cli import main
from gradbench.methods.backprop import Backprop
from gradbench.model import Network
from gradbench.problem import make_problem
from gradbench.results import TRAINING_COLUMNS
from gradbench.supervisor import InFlight

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


class Scripted:
    """A problem stand-in for the tracker: the loss at θ is θ[0] (a test chooses each
    loss by the point it evaluates), the training accuracy θ[1], the held-out loss and
    accuracy θ[2] and θ[3]. ``clock`` is a test clock: each loss advances it one second,
    each recording call 100 (recording is not timed)."""

    def __init__(self, theta0=(1.0, 0.0, 0.0, 0.0)):
        self.theta0, self.now = np.array(theta0), 0.0

    def clock(self):
        return self.now

    def loss(self, theta):
        self.now += 1.0
        return float(theta[0])

    def losses(self, thetas):
        self.now += len(thetas)
        return np.array(thetas)[:, 0]

    def _recorded(self, value):
        self.now += 100.0
        return float(value)

    def accuracy(self, theta):
        return self._recorded(theta[1])

    def test_loss(self, theta):
        return self._recorded(theta[2])

    def test_accuracy(self, theta):
        return self._recorded(theta[3])


def scripted_tracker(budget=100.0):
    problem = Scripted()
    return training.Tracker(problem, budget, clock=problem.clock), problem


def test_points_are_recorded_as_the_count_grows_by_half_and_at_each_rung():
    """Rungs are L₀·10^(−k/4) down to L₀·10⁻⁴ (k = 16); L₀ = 1 here. A point is recorded
    when the best loss first reaches a rung (≤, as the analysis's target is)."""
    tracker, _ = scripted_tracker()
    below = {20: 0.5, 21: 0.3, 22: 0.17, 23: 0.1, 24: 0.1, 25: 1.5e-4, 26: 5e-5, 27: 5e-5}
    # rungs 1, 2, 3, 4 (exactly 10^−1), none, 15, 16, none; then 1e-6 past the last rung
    theta = np.zeros(4)  # one buffer for every point: the tracker keeps its own copy
    for i in range(1, 29):
        theta[:] = (below.get(i, 1.0 if i < 20 else 1e-6), i, 0.0, 0.0)
        tracker.loss(theta)
    points = pd.DataFrame(tracker.points)
    # by count: 1, then each 1.5× the last (1.5 → 2, 3, 4.5 → 5, 7.5 → 8, 12, 18, 27)
    assert list(points.evals) == [0, 1, 2, 3, 5, 8, 12, 18, 20, 21, 22, 23, 25, 26, 27]
    assert list(points.loss) == [1.0] * 8 + [0.5, 0.3, 0.17, 0.1, 1.5e-4, 5e-5, 5e-5]
    # accuracy at the best θ: θ₀ (index 0) until the loss first falls below L₀; a tie
    # (points 24 and 27 repeat the best loss) keeps the first point that reached it
    assert list(points.accuracy) == [0.0] * 8 + [20, 21, 22, 23, 25, 26, 26]
    assert list(points.wall_s) == list(points.evals)  # one second per loss, none recording


def test_a_budget_of_whole_gradients_allows_every_one_of_them_despite_rounding():
    tracker, _ = scripted_tracker(budget=0.3)
    for _ in range(3):
        tracker.charge(0.1)  # 0.1 + 0.1 + 0.1 = 0.30000000000000004 > 0.3
    with pytest.raises(training.BudgetSpent):
        tracker.charge(0.1)
    assert tracker.evals == pytest.approx(0.3)


def test_a_population_with_room_for_one_evaluates_one():
    tracker, problem = scripted_tracker(budget=5)
    thetas = np.array([[0.9, 1, 0, 0], [0.8, 2, 0, 0], [0.7, 3, 0, 0], [0.6, 4, 0, 0]])
    np.testing.assert_array_equal(tracker.losses(thetas), [0.9, 0.8, 0.7, 0.6])
    with pytest.raises(training.BudgetSpent):
        tracker.losses(thetas[::-1] * 0.5)
    assert tracker.evals == 5 and tracker.best == 0.3
    assert problem.now - 100 * len(tracker.points) == 1 + 5  # θ₀'s loss and five more


def test_a_non_finite_loss_ends_the_run_naming_the_count():
    tracker, _ = scripted_tracker()
    tracker.loss(np.array([0.5, 0, 0, 0]))
    with pytest.raises(training.Diverged, match=r"^loss became nan after 2 evaluations$"):
        tracker.loss(np.array([math.nan, 0, 0, 0]))
    with pytest.raises(training.Diverged, match=r"^loss became inf after 3 evaluations$"):
        tracker.loss(np.array([math.inf, 0, 0, 0]))


def test_a_note_goes_on_the_next_recorded_point_only():
    tracker, _ = scripted_tracker()
    tracker.note(cosine=0.5)
    for _ in range(2):
        tracker.loss(np.array([1.0, 0, 0, 0]))  # both recorded (by count)
    assert [p.get("cosine") for p in tracker.points] == [None, 0.5, None]


def test_a_diagnostic_gradient_is_neither_counted_nor_timed():
    tracker, problem = scripted_tracker()
    tracker.loss(np.array([1.0, 0, 0, 0]))

    def grad_fn(theta):
        problem.now += 7.0
        return 99.0, 2 * theta

    np.testing.assert_array_equal(tracker.diagnose(grad_fn, np.ones(4)), [2, 2, 2, 2])
    assert tracker.evals == 1 and tracker.wall_s == 1


def test_the_last_point_has_the_held_out_metrics_at_the_best_theta_untimed():
    tracker, _ = scripted_tracker()
    tracker.loss(np.array([0.5, 0.25, 7.0, 0.9]))  # the best
    tracker.loss(np.array([0.7, 0.5, 8.0, 0.8]))
    tracker.finish()
    last = tracker.points[-1]
    assert (last["loss"], last["accuracy"], last["test_loss"], last["test_accuracy"]) == (
        0.5, 0.25, 7.0, 0.9,
    )  # fmt: skip
    assert (last["evals"], last["wall_s"]) == (2, 2)
    assert all("test_loss" not in p for p in tracker.points[:-1])


class Bowl(Scripted):
    """Σθ² from θ₀ = (1, 1, 1, 1): a problem gradient descent's steps are known on."""

    net = "any network"

    def __init__(self):
        super().__init__((1.0, 1.0, 1.0, 1.0))

    def loss(self, theta):
        return float(theta @ theta)


class BowlGradient:
    """A gradient method stand-in for Bowl: 2θ at cost 2; ``scale`` 0 gives a zero
    gradient, ``loss`` replaces the loss it reports."""

    name, kind = "bowl", "exact"

    def __init__(self, declines=None, scale=2.0, loss=None):
        self.declines, self.scale, self.reported = declines, scale, loss

    def cost(self, net):
        assert net == "any network"
        return 2.0

    def supports(self, problem):
        return self.declines and f"{self.declines} at P = {len(problem.theta0)}"

    def prepare(self, problem):
        def grad_fn(theta):
            with np.errstate(over="ignore", invalid="ignore"):
                loss = float(theta @ theta) if self.reported is None else self.reported
                return loss, self.scale * theta

        return grad_fn


def test_gd_takes_its_first_step_against_the_gradient_at_its_learning_rate():
    run = training.train(Bowl(), "gd", BowlGradient(), budget=4, lr=0.1)  # two gradients
    np.testing.assert_allclose(run.theta, [0.8, 0.8, 0.8, 0.8])  # θ₀ − 0.1·2θ₀
    assert (run.status, run.reason) == ("ok", "")
    assert [p["evals"] for p in run.points] == [0, 2, 4, 4]  # recorded by count, then last
    last = run.points[-1]
    assert last["loss"] == pytest.approx(2.56) and last["test_loss"] == pytest.approx(0.8)


def test_a_run_whose_optimizer_stops_early_says_so():
    run = training.train(Bowl(), "lbfgs", BowlGradient(), budget=1000)
    assert (run.status, run.reason) == ("ok", "converged before the budget")
    assert run.points[-1]["evals"] < 1000 and run.points[-1]["loss"] < 1e-12


def test_a_declining_method_is_a_skipped_run_with_its_reason():
    run = training.train(Bowl(), "gd", BowlGradient(declines="too wide"), budget=10, lr=0.1)
    assert (run.status, run.reason) == ("skipped", "declined: too wide at P = 4")
    assert run.points == [{"evals": 0}]


def test_a_diverging_run_is_an_error_row_with_the_held_out_metrics_at_theta0():
    run = training.train(Bowl(), "gd", BowlGradient(loss=math.nan), budget=10, lr=0.1)
    assert (run.status, run.reason) == ("error", "Diverged: loss became nan after 2 evaluations")
    last = run.points[-1]
    assert (last["evals"], last["loss"], last["test_loss"]) == (2, 4.0, 1.0)


def test_tuning_breaks_a_tie_by_the_smaller_rate():
    lr, finals = training.tune_lr(Bowl(), BowlGradient(scale=0.0), 20, (0.3, 0.1, 1.0))
    assert lr == 0.1 and finals == {0.1: 4.0, 0.3: 4.0, 1.0: 4.0}


def test_tuning_scores_each_rate_by_its_runs_final_loss_and_takes_the_lowest():
    """At η = 0.001 the loss falls slowly and steadily, so the last gradients (evaluations
    12 and 14, not recorded by count) improve on the last recorded point (10)."""
    lr, finals = training.tune_lr(Bowl(), BowlGradient(), 14, (0.001, 0.1))
    slow = training.train(Bowl(), "gd", BowlGradient(), 14, 0.001)
    assert lr == 0.1 and finals[0.001] == slow.points[-1]["loss"] < slow.points[-2]["loss"]


def test_tuning_counts_a_diverging_rate_as_never_reaching_any_loss():
    lr, finals = training.tune_lr(Bowl(), BowlGradient(), 100, (1000.0, 1.0))
    assert lr == 1.0 and finals[1000.0] == math.inf and finals[1.0] < 4.0


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


def test_the_refusal_names_every_optimizer_and_a_gradient_optimizer_needs_a_method():
    choices = (
        "gd/<method>, gd-layerwise/<method>, lbfgs/<method>, cma-es, es, nelder-mead, "
        "powell, cobyla, differential-evolution, dual-annealing"
    )
    with pytest.raises(ValueError) as refused:
        training.parse("gd")
    assert str(refused.value) == f"unknown optimizer 'gd'; choose from {choices}"
    with pytest.raises(ValueError) as refused:
        training.parse("gd-layerwise/fd-central")
    assert str(refused.value).startswith(
        "'gd-layerwise/fd-central': the layer-wise update is defined for backprop only"
    )
    assert training.parse("powell") == ("powell", "")


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


def test_config_key_is_a_prefixed_hash_that_ignores_the_order_of_the_rate_grid():
    base = _tiny(["gd/backprop"])
    shuffled = dataclasses.replace(base, train=dataclasses.replace(base.train, lr_grid=(1.0, 0.3)))
    assert re.fullmatch(r"c[0-9a-f]{12}", training.config_key(base))
    assert training.config_key(shuffled) == training.config_key(base)


def test_config_key_covers_the_recording_rules(monkeypatch):
    base = _tiny(["gd/backprop"])
    key = training.config_key(base)
    monkeypatch.setattr(training, "RECORD", [2.0, *training.RECORD[1:]])
    assert training.config_key(base) != key


def test_config_columns_hold_the_settings_themselves():
    s = dataclasses.replace(
        _tiny(["gd/backprop"]), dtype="float32", activation="relu", loss="mse", bias=False
    )
    assert training.config_of(s) == {
        "dtype": "float32", "activation": "relu", "loss_function": "mse", "bias": False,
        "budget_evals": 60, "n_test": 20, "config": training.config_key(s),
    }  # fmt: skip


def test_run_settings_hold_the_whole_training_profile():
    s = _tiny(["gd/backprop"])
    held = json.loads(json.dumps(training.run_settings(s)))
    assert held["train"]["optimizers"] == ["gd/backprop"] and held["train"]["seeds"] == 1
    assert held["dtype"] == "float64" and held["record"] == list(training.RECORD)


def test_a_training_problem_has_n_train_samples_and_the_held_out_ones():
    s = dataclasses.replace(
        _tiny(["gd/backprop"]), dtype="float32", activation="relu", loss="mse", bias=False
    )
    p = training.training_problem(s, 3, 2, seed=5)
    assert p.net == Network(3, 2, "relu", "mse", False, "float32")
    assert (p.B, p.n_test, p.seed) == (18, 20, 5)  # n_train = max(4·3, P = 2·3²)
    assert p.theta0.dtype == np.float32
    again, other = (training.training_problem(s, 3, 2, seed=k) for k in (5, 6))
    np.testing.assert_array_equal(again.theta0, p.theta0)
    assert not np.array_equal(other.theta0, p.theta0)


def test_plan_runs_sizes_then_seeds_then_optimizers_and_limits_the_gradient_free():
    s = _tiny(["gd/backprop", "powell"], max_P=(("gradient-free", 6),))
    s = dataclasses.replace(s, train=dataclasses.replace(s.train, sizes=((2, 1), (3, 1)), seeds=2))
    assert training.plan(s) == [
        ("gd", "backprop", 2, 1, 0), ("powell", "", 2, 1, 0),
        ("gd", "backprop", 2, 1, 1), ("powell", "", 2, 1, 1),
        ("gd", "backprop", 3, 1, 0), ("gd", "backprop", 3, 1, 1),
    ]  # fmt: skip


def test_rows_carry_the_run_its_cell_and_the_data_sizes():
    s = _tiny(["gd/backprop"])
    entries = {
        "backprop": registry.Entry("backprop", "test", Backprop()),
        "gone": registry.Entry("gone", "test", reason="needs x"),
    }
    cell = {"optimizer": "gd", "gradient_method": "backprop", "N": 2, "L": 1, "seed": 3}
    run = training.Run([{"evals": 0.0, "loss": 2.0}, {"evals": 9.0, "loss": 1.0}], "ok", "")
    rows = training._rows(s, entries, cell, run, 0.3)
    assert [(r["evals"], r["loss"]) for r in rows] == [(0.0, 2.0), (9.0, 1.0)]
    assert rows[1] == rows[1] | cell | {
        "kind": "exact", "P": 6, "status": "ok", "reason": "", "lr": 0.3, "B": 8,
        "n_train": 8, "gradbench": gradbench.__version__,
    }  # fmt: skip
    failed = training.Run.failed("error", "unavailable: needs x")
    for method in ("gone", ""):
        (row,) = training._rows(s, entries, cell | {"gradient_method": method}, failed, math.nan)
        assert (row["kind"], row["status"], row["evals"]) == ("", "error", 0.0)


def _marker(tmp_path, run_id, key=("gd", "backprop", 2, 1, 0)):
    InFlight(tmp_path).write(
        {"what": "gd/backprop N=2", "key": [*key, run_id], "death": "was killed by signal 9"}
    )
    return InFlight(tmp_path)


def test_a_run_left_in_flight_by_a_dead_process_is_recorded_as_crashed(tmp_path):
    s, lines, puts = _tiny(["gd/backprop"]), [], []
    store = SimpleNamespace(run_id="r1", put=puts.append)
    todo = training.plan(s)
    training._settle(store, _marker(tmp_path, "r1"), s, {}, todo, lines.append)
    (rows,) = puts
    assert [(r["status"], r["reason"], r["seed"]) for r in rows] == [
        ("crashed", "the process measuring it was killed by signal 9", 0)
    ]
    assert lines == [
        "gradbench: gd/backprop N=2: the process measuring it was killed by signal 9; "
        "recorded as crashed"
    ]
    assert not (tmp_path / InFlight(tmp_path).path.name).exists()


def test_a_crash_of_another_run_or_cell_is_not_recorded(tmp_path):
    s, lines, puts = _tiny(["gd/backprop"]), [], []
    store = SimpleNamespace(run_id="r1", put=puts.append)
    todo = training.plan(s)
    training._settle(store, _marker(tmp_path, "r0"), s, {}, todo, lines.append)
    training._settle(store, _marker(tmp_path, "r1", ("gd", "backprop", 2, 1, 5)), s, {}, todo,
                     lines.append)  # fmt: skip
    training._settle(store, InFlight(tmp_path), s, {}, todo, lines.append)  # no marker
    assert puts == [] and len(lines) == 2
    assert lines[0] == "gradbench: gd/backprop N=2 crashed in run r0, not continued here"


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


def _interrupted(entries, tmp_path, monkeypatch):
    """A run stopped after the first (powell) of its three runs."""
    monkeypatch.setenv("GRADBENCH_FINGERPRINT", "machine-a")
    settings = _tiny(["powell", "gd/backprop", "nelder-mead"])
    with pytest.raises(Interrupt):
        training.run_all(settings, entries, tmp_path, echo=_stop_after_first_run([]))
    return settings


def _gd_crashed(entries, tmp_path, monkeypatch):
    """An interrupted run whose second run (gd/backprop) a dead process left in flight."""
    settings = _interrupted(entries, tmp_path, monkeypatch)
    run_id = pd.read_csv(tmp_path / "training.csv", dtype=str).run_id.iloc[0]
    _marker(tmp_path, run_id, ("gd", "backprop", 2, 1, 0))
    return settings


def test_run_all_keeps_a_crashed_run_on_resume_and_goes_on(entries, tmp_path, monkeypatch):
    settings, lines = _gd_crashed(entries, tmp_path, monkeypatch), []
    frame = training.run_all(settings, entries, tmp_path, echo=lines.append)
    status = frame.groupby("optimizer").status.agg(set).to_dict()
    assert status == {"powell": {"ok"}, "gd": {"crashed"}, "nelder-mead": {"ok"}}
    assert set(frame[frame.optimizer == "gd"].kind) == {"exact"}
    (line,) = [x for x in lines if x.startswith("[2/3] gd/backprop ")]
    assert line.endswith("on file, crashed (--retry-crashed trains it again)")


def test_run_all_trains_a_crashed_run_again_when_asked(entries, tmp_path, monkeypatch):
    settings, lines = _gd_crashed(entries, tmp_path, monkeypatch), []
    frame = training.run_all(settings, entries, tmp_path, retry_crashed=True, echo=lines.append)
    assert set(frame.status) == {"ok"} and set(frame.optimizer) == {"powell", "gd", "nelder-mead"}
    assert kept(lines) == 1


def test_run_all_fresh_archives_an_unfinished_run(entries, tmp_path, monkeypatch):
    settings, lines = _interrupted(entries, tmp_path, monkeypatch), []
    frame = training.run_all(settings, entries, tmp_path, fresh=True, echo=lines.append)
    assert not kept(lines) and any("moved" in line for line in lines)
    assert set(frame.optimizer) == {"powell", "gd", "nelder-mead"}


def test_each_run_is_marked_in_flight_on_its_seeds_problem_and_spends_the_budget(entries, tmp_path):
    """Also: gd's rate is tuned once per size with backprop on the TUNE_SEED problem."""
    (tmp_path / lock.HOLDER).write_text(json.dumps({"command": "train", "pid": 1}))
    seen, gradients = [], []

    class Spy(Backprop):
        def prepare(self, problem):
            seen.append((InFlight(tmp_path).read(), problem.seed))
            grad_fn, run = super().prepare(problem), len(gradients)
            gradients.append(0)

            def counted(theta):
                gradients[run] += 1
                return grad_fn(theta)

            return counted

    entries = {**entries, "backprop": registry.Entry("backprop", "test", Spy())}
    settings = _tiny(["gd/backprop"])
    settings = dataclasses.replace(settings, train=dataclasses.replace(settings.train, seeds=2))
    frame = training.run_all(settings, entries, tmp_path, echo=lambda line: None)
    run_id = frame.run_id.iloc[0]
    marks = [(f"gd/backprop N=2 L=1 seed={k}", ["gd", "backprop", 2, 1, k, run_id]) for k in (0, 1)]
    tune = training.TUNE_SEED
    assert [((m["what"], m["key"]), seed) for m, seed in seen] == [
        (marks[0], tune), (marks[0], tune), (marks[0], 0), (marks[1], 1)
    ]  # fmt: skip
    assert tune >= settings.train.seeds  # a problem no reported run uses
    assert InFlight(tmp_path).read() is None
    assert json.loads((tmp_path / lock.HOLDER).read_text())["run_id"] == run_id
    assert list(frame.groupby("seed").evals.max()) == [60, 60]  # 30 gradients of 2 passes
    assert gradients == [30, 30, 30, 30]  # tuning runs spend the same budget


def test_an_unavailable_method_is_an_error_row_and_gradient_free_runs_have_no_rate(
    entries, tmp_path
):
    entries = {**entries, "gone": registry.Entry("gone", "test", reason="needs x")}
    settings = _tiny(["gd/gone", "gd/backprop", "powell"])
    frame = training.run_all(settings, entries, tmp_path, echo=lambda line: None)
    last = frame.groupby("gradient_method").tail(1).set_index("gradient_method")
    assert (last.loc["gone", "status"], last.loc["gone", "reason"]) == (
        "error", "unavailable: needs x",
    )  # fmt: skip
    assert last.loc["gone", "lr"] == last.loc["backprop", "lr"] and last.loc["gone", "lr"] in (
        0.3, 1.0,
    )  # fmt: skip
    assert math.isnan(last.loc["", "lr"]) and last.loc["", "status"] == "ok"


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
