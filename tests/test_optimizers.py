"""gradbench.optimizers: each optimizer learns, is configured as documented, and the
gradient-free ones never see a gradient."""

import math

import numpy as np
import pytest
from scipy import optimize

from gradbench import optimizers, training
from gradbench.methods.backprop import Backprop
from gradbench.problem import make_problem


@pytest.mark.parametrize("name", ["cma-es", "es"])
def test_cma_es_and_es_lower_the_loss_on_a_tiny_problem(name):
    p = make_problem(2, 1, 20, seed=0)
    run = training.train(p, name, None, budget=800)
    assert run.status == "ok", run.reason
    assert run.points[-1]["loss"] < 0.5 * p.loss(p.theta0)


@pytest.mark.parametrize("name", ["gd", "lbfgs"])
def test_gradient_optimizers_lower_the_loss(name):
    p = make_problem(3, 2, 20, seed=1)
    run = training.train(p, name, Backprop(), budget=300, lr=1.0)
    assert run.points[-1]["loss"] < 0.5 * p.loss(p.theta0)


class Captured(Exception):
    pass


def capture(monkeypatch, target, name):
    """Replace ``target.name`` by a recorder of its arguments that stops the run."""
    seen = {}

    def record(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise Captured

    monkeypatch.setattr(target, name, record)
    return seen


def oracle(P_net=(3, 2)):
    return training.Tracker(make_problem(*P_net, 10, seed=2), budget=100)


@pytest.mark.parametrize(
    ("name", "function", "expected"),
    [
        ("differential-evolution", "differential_evolution", {"polish": False}),
        ("dual-annealing", "dual_annealing", {"no_local_search": True}),
    ],
)
def test_scipy_searches_run_without_their_gradient_based_local_step(
    monkeypatch, name, function, expected
):
    seen = capture(monkeypatch, optimize, function)
    tracker = oracle()
    with pytest.raises(Captured):
        optimizers.GRADIENT_FREE[name](tracker)
    assert expected.items() <= seen["kwargs"].items()
    bounds = np.array(seen["args"][1])  # θ₀ ± 6 standard deviations of θ₀
    half = 6 * np.std(tracker.problem.theta0)
    np.testing.assert_allclose(bounds[:, 1] - tracker.problem.theta0, half)
    np.testing.assert_allclose(tracker.problem.theta0 - bounds[:, 0], half)


def test_nelder_mead_is_the_adaptive_variant(monkeypatch):
    seen = capture(monkeypatch, optimize, "minimize")
    with pytest.raises(Captured):
        optimizers.GRADIENT_FREE["nelder-mead"](oracle())
    assert seen["kwargs"]["method"] == "Nelder-Mead" and seen["kwargs"]["options"]["adaptive"]
    assert "jac" not in seen["kwargs"]


def test_differential_evolution_population_leaves_twenty_generations(monkeypatch):
    seen = capture(monkeypatch, optimize, "differential_evolution")
    tracker = oracle((3, 2))  # P = 24, budget 100: popsize 1 (the smallest)
    tracker.budget = 24 * 20 * 4
    with pytest.raises(Captured):
        optimizers.differential_evolution(tracker)
    assert seen["kwargs"]["popsize"] == 4


@pytest.mark.parametrize(("P_limit", "diagonal"), [(1000, False), (5, True)])
def test_cma_es_is_separable_only_beyond_its_full_covariance_size(monkeypatch, P_limit, diagonal):
    import cma

    seen = capture(monkeypatch, cma, "CMAEvolutionStrategy")
    monkeypatch.setattr(optimizers, "CMA_FULL_MAX_P", P_limit)
    tracker = oracle()
    with pytest.raises(Captured):
        optimizers.cma_es(tracker)
    theta0, sigma0, options = seen["args"]
    assert options["CMA_diagonal"] is diagonal and options["seed"] == tracker.problem.seed + 1
    assert sigma0 == pytest.approx(np.std(tracker.problem.theta0))


def test_es_population_and_ranks():
    assert optimizers.es_pairs(6) == math.ceil((4 + math.floor(3 * math.log(6))) / 2) == 5
    assert optimizers.es_pairs(10**5) == 19
    ranks = optimizers.centred_ranks(np.array([3.0, -1.0, 10.0, 2.0, 0.0]))
    np.testing.assert_allclose(ranks, [0.25, -0.5, 0.5, 0.0, -0.25])


def test_es_evaluates_antithetic_pairs_in_one_batch():
    p = make_problem(2, 1, 10, seed=3)
    batches = []

    class Oracle(training.Tracker):
        def losses(self, thetas):
            batches.append(thetas.copy())
            return super().losses(thetas)

    tracker = Oracle(p, budget=3 * 2 * optimizers.es_pairs(p.P))
    with pytest.raises(training.BudgetSpent):
        optimizers.evolution_strategy(tracker)
    first = batches[0]
    n = optimizers.es_pairs(p.P)
    assert first.shape == (2 * n, p.P)
    np.testing.assert_allclose(first[:n] + first[n:], np.tile(2 * p.theta0, (n, 1)))  # θ ± σε
    assert tracker.evals == 3 * 2 * n  # three generations; the fourth is refused


def test_layerwise_steps_count_the_layer_products():
    assert [optimizers.layerwise_steps(L) for L in (1, 2, 3)] == [2, 6, 12]
