"""Backprop against an independent central-difference gradient written in conftest."""

import itertools

import numpy as np
import pytest
from conftest import reference_gradient, rho_max
from hypothesis import given, settings
from hypothesis import strategies as st

from gradbench.methods.backprop import Backprop
from gradbench.model import ACTIVATIONS, LOSSES
from gradbench.problem import make_problem

CASES = list(itertools.product(ACTIVATIONS, LOSSES, [True, False], [1, 2, 5], [1, 2, 3]))


@pytest.mark.parametrize(("activation", "loss", "bias", "N", "L"), CASES)
def test_backprop_matches_independent_central_differences(activation, loss, bias, N, L):
    p = make_problem(N, L, 8, activation=activation, loss=loss, bias=bias, seed=N + L)
    value, grad = Backprop().prepare(p)(p.theta0)
    assert value == pytest.approx(p.loss(p.theta0), rel=1e-14)
    assert rho_max(grad, reference_gradient(p.loss, p.theta0)) < 1e-7


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 6),
    L=st.integers(1, 4),
    B=st.integers(1, 9),
    seed=st.integers(0, 2**31),
    activation=st.sampled_from(list(ACTIVATIONS)),
    loss=st.sampled_from(list(LOSSES)),
)
def test_backprop_property_random_shapes(N, L, B, seed, activation, loss):
    p = make_problem(N, L, B, activation=activation, loss=loss, seed=seed)
    theta = p.theta0 + np.random.default_rng(seed).normal(0, 0.1, p.P)
    _, grad = Backprop().prepare(p)(theta)
    assert grad.shape == (p.P,)
    assert rho_max(grad, reference_gradient(p.loss, theta)) < 1e-6


def test_backprop_is_deterministic_and_returns_fresh_arrays():
    p = make_problem(5, 3, 16, seed=9)
    grad_fn = Backprop().prepare(p)
    g1 = grad_fn(p.theta0)[1]
    g2 = grad_fn(p.theta0)[1]
    assert g1 is not g2
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(
        g1, Backprop().prepare(make_problem(5, 3, 16, seed=9))(p.theta0)[1]
    )
