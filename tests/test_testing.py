"""check_grads: one verdict per rule, each with its expected reason and number."""

import math

import numpy as np
import pytest
from fake_methods import OffByTenPercent

from gradbench.methods.backprop import Backprop
from gradbench.methods.stochastic import SPSA
from gradbench.problem import make_problem
from gradbench.testing import check_grads, in_float64


class _Returns(Backprop):
    """Backprop's loss and gradient, passed through ``change`` (a contract breach)."""

    def __init__(self, change):
        self.change = change

    def prepare(self, problem):
        backprop = super().prepare(problem)
        return lambda theta: self.change(*backprop(theta))


def test_backprop_against_itself_is_ok_with_zero_error():
    p = make_problem(4, 2, 8)
    v = check_grads(Backprop(), p)
    assert (v.status, v.reason, v.grad_error, v.grad_error_mean) == ("ok", "", 0.0, 0.0)
    assert v.cosine == pytest.approx(1.0) and v.tolerance == 1e-8
    assert v.loss == p.loss(p.theta0)


def test_ten_percent_off_is_wrong_by_the_error_it_makes():
    p = make_problem(4, 2, 8)
    g = Backprop().prepare(p)(p.theta0)[1]
    # ρ of 1.1·g against g, written out: 0.1|g| / max(1, 2.1|g|)
    expected = float(np.max(0.1 * np.abs(g) / np.maximum(1, 2.1 * np.abs(g))))
    v = check_grads(OffByTenPercent(), p)
    assert v.status == "wrong"
    assert v.grad_error == pytest.approx(expected, rel=1e-6)
    assert v.reason == f"grad_error {expected:.1e} > tolerance 1e-08"


def test_a_gradient_in_another_dtype_is_an_error():
    p = make_problem(4, 2, 8)
    v = check_grads(_Returns(lambda loss, g: (loss, g.astype(np.float32))), p)
    assert v.status == "error"
    assert v.reason == "gradient has dtype float32, expected θ's dtype float64"
    assert math.isnan(v.grad_error) and v.grad is None


def test_a_loss_that_is_not_the_problems_is_wrong():
    p = make_problem(4, 2, 8)
    v = check_grads(_Returns(lambda loss, g: (loss + 1.0, g)), p)
    assert v.status == "wrong" and v.reason.startswith(f"loss {p.loss(p.theta0) + 1:.12g} is not")


def test_stochastic_methods_are_not_held_to_a_tolerance():
    v = check_grads(SPSA(), make_problem(4, 2, 8))
    assert v.tolerance is None and v.status == "ok" and v.grad_error > 1e-3


def test_a_given_theta_is_used_read_only_and_left_alone():
    p = make_problem(4, 2, 8)
    theta = p.theta0 + 0.5
    v = check_grads(Backprop(), p, theta=theta)
    assert v.loss == p.loss(theta) and theta.flags.writeable


def test_float32_is_checked_against_float64_backprop_on_the_same_data():
    p = make_problem(4, 2, 8, dtype="float32", loss="mse")
    exact = in_float64(p)
    assert exact.X.dtype == exact.theta0.dtype == exact.target.dtype == np.float64
    np.testing.assert_array_equal(exact.X, p.X)  # the float32 data, widened exactly
    v = check_grads(Backprop(), p)
    assert v.status == "ok" and 0 < v.grad_error < 1e-5 and v.grad.dtype == np.float32


def test_a_given_reference_is_used():
    p = make_problem(4, 2, 8)
    v = check_grads(Backprop(), p, reference=np.zeros(p.P))
    assert v.status == "wrong" and math.isnan(v.cosine)
