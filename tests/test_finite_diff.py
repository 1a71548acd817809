"""Per-weight methods against backprop, and batched against one-at-a-time."""

import itertools
import tracemalloc

import numpy as np
import pytest
from conftest import rho_max

from gradbench.methods.backprop import Backprop
from gradbench.methods.complex_step import ComplexStep
from gradbench.methods.finite_diff import (
    CentralDifference,
    ForwardDifference,
    NaiveForwardDifference,
    steps,
)
from gradbench.methods.forward_mode import ForwardMode
from gradbench.methods.perturb import perturbed_losses
from gradbench.model import ACTIVATIONS, LOSSES
from gradbench.problem import make_problem

TOLERANCE = {
    ForwardMode: 1e-12,
    ComplexStep: 1e-12,
    CentralDifference: 1e-6,
    ForwardDifference: 1e-4,
}
CASES = list(itertools.product(ACTIVATIONS, LOSSES, [(1, 1), (3, 2), (8, 3)], [True, False]))


@pytest.mark.parametrize("method", list(TOLERANCE), ids=lambda m: m.name)
@pytest.mark.parametrize(("activation", "loss", "shape", "bias"), CASES)
def test_agrees_with_backprop(method, activation, loss, shape, bias):
    p = make_problem(*shape, 16, activation=activation, loss=loss, bias=bias, seed=7)
    value, grad = method(mem_cap=64 * 1024).prepare(p)(p.theta0)  # small cap: many chunks
    _, g_ref = Backprop().prepare(p)(p.theta0)
    assert value == pytest.approx(p.loss(p.theta0), rel=1e-15)
    assert rho_max(grad, g_ref) < TOLERANCE[method]


def test_perturbed_losses_are_the_losses_at_the_perturbed_points():
    p = make_problem(4, 3, 8, seed=1)
    index = np.array([0, 17, 20, 39, 59, 59])
    delta = np.array([0.1, -0.2, 0.3, 1.0, 0.5, -0.5])
    expected = []
    for i, d in zip(index, delta, strict=True):
        theta = p.theta0.copy()
        theta[i] += d
        expected.append(p.loss(theta))
    got = perturbed_losses(p, p.theta0, index, delta, mem_cap=2000)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_naive_and_batched_fd_evaluate_the_same_points(activation):
    p = make_problem(6, 3, 32, activation=activation, seed=2)
    _, batched = ForwardDifference().prepare(p)(p.theta0)
    _, naive = NaiveForwardDifference().prepare(p)(p.theta0)
    assert rho_max(batched, naive) < 1e-12


def test_steps_are_exactly_representable():
    theta = np.random.default_rng(0).normal(0, 100, 1000)
    up, down = steps(theta, 1 / 2)
    assert np.all((theta + up) - theta == up)
    assert np.all(theta - (theta - down) == down)
    assert np.all(up > 0) and np.all(down > 0)


@pytest.mark.parametrize("method", [ForwardDifference, CentralDifference, ComplexStep, ForwardMode])
def test_peak_memory_stays_under_the_cap(method):
    cap = 2 * 2**20
    p = make_problem(32, 2, 64, seed=0)
    grad_fn = method(mem_cap=cap).prepare(p)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        grad_fn(p.theta0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < cap, f"peak {peak} over the cap {cap}"
    assert peak > cap / 2, "the cap is far from used: chunks are needlessly small"


# float32 (ε ≈ 1.2e-7): measured ρ is ~1e-3 for forward differences (√ε times the
# curvature), ~5e-5 for central differences (ε^(2/3)) and ~5e-8 for the exact methods (a
# few ε of accumulated rounding); the bounds keep about a 5× margin above that.
FLOAT32_TOLERANCE = {
    ForwardMode: 1e-6,
    ComplexStep: 1e-6,
    CentralDifference: 3e-4,
    ForwardDifference: 5e-3,
}


@pytest.mark.parametrize("method", list(FLOAT32_TOLERANCE), ids=lambda m: m.name)
def test_float32_reaches_what_float32_allows(method):
    p = make_problem(6, 2, 16, dtype="float32", seed=3)
    p64 = make_problem(6, 2, 16, seed=3)
    value, grad = method().prepare(p)(p.theta0)
    assert grad.dtype == np.float32
    _, g_ref = Backprop().prepare(p64)(p.theta0.astype(np.float64))
    assert rho_max(grad, g_ref) < FLOAT32_TOLERANCE[method]


def test_complex_step_says_relu_is_not_analytic():
    assert "not analytic" in ComplexStep().note(make_problem(2, 1, activation="relu"))
    assert ComplexStep().note(make_problem(2, 1)) == ""


def test_central_differences_divide_by_the_distance_between_the_two_points():
    # Pinned rule: ĝᵢ = (L(θ + upᵢeᵢ) − L(θ − downᵢeᵢ)) / (upᵢ + downᵢ), with the steps
    # rounded to what θ ± h really is. Where θᵢ is a power of two, θᵢ − h falls in the binade
    # below, with a finer spacing, so up and down differ in their last bits and ĝᵢ moves by
    # ~1e-11 relative: dividing by 2·up instead must fail here.
    p = make_problem(3, 2, 8, seed=4)
    theta = p.theta0.copy()
    theta[::2] = np.sign(theta[::2]) * 2.0 ** np.round(np.log2(np.abs(theta[::2])))
    h = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(theta))
    up, down = (theta + h) - theta, theta - (theta - h)
    differ = np.flatnonzero(up != down)
    assert len(differ) >= 5  # the rule is tested where it matters
    f_up, f_down = np.empty(p.P), np.empty(p.P)
    for i in range(p.P):
        e = np.zeros(p.P)
        e[i] = 1.0
        f_up[i], f_down[i] = p.loss(theta + up[i] * e), p.loss(theta - down[i] * e)
    expected = (f_up - f_down) / (up + down)
    wrong = (f_up - f_down) / (2 * up)
    assert not np.allclose(wrong[differ], expected[differ], rtol=1e-13, atol=0)
    _, grad = CentralDifference().prepare(p)(theta)
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=0)
