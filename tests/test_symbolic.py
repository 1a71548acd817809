"""symbolic and symbolic-cse against backprop (itself tested against independent central
differences) and against conftest's central differences directly; expression sizes; the
cost bookkeeping. Networks stay small (N ≤ 4, L ≤ 3) and derivations are cached, so the
file runs in seconds."""

import itertools

import numpy as np
import pytest
from conftest import reference_gradient, rho_max

from gradbench.methods.backprop import Backprop
from gradbench.methods.symbolic import (
    Symbolic,
    SymbolicCSE,
    cse_ops,
    cse_temporaries,
    derivation,
    derivative_ops,
    tree_ops,
)
from gradbench.model import ACTIVATIONS, LOSSES, Network
from gradbench.problem import make_problem

METHODS = [Symbolic(), SymbolicCSE()]
LARGER = [
    ("tanh", "cross_entropy", True, 2, 2),
    ("sigmoid", "mse", False, 2, 2),
    ("relu", "mse", False, 2, 3),
    ("relu", "cross_entropy", False, 4, 1),
]
# every activation × loss × bias at the smallest net, and a few deeper or wider ones
CASES = [(*c, 2, 1) for c in itertools.product(ACTIVATIONS, LOSSES, [True, False])] + LARGER


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@pytest.mark.parametrize(("activation", "loss", "bias", "N", "L"), CASES)
def test_agrees_with_backprop_and_central_differences(method, activation, loss, bias, N, L):
    p = make_problem(N, L, 8, activation=activation, loss=loss, bias=bias, seed=N + L)
    theta = p.theta0 + 0.01
    value, grad = method.prepare(p)(theta)
    assert value == pytest.approx(p.loss(theta), rel=1e-13)
    assert rho_max(grad, Backprop().prepare(p)(theta)[1]) <= 1e-10
    assert rho_max(grad, reference_gradient(p.loss, theta)) < 1e-7


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_float32_gradient_in_float32(method):
    p = make_problem(2, 2, 8, activation="sigmoid", loss="mse", bias=False, dtype="float32")
    theta = p.theta0.copy()
    theta.flags.writeable = False  # as the sweep hands it
    value, grad = method.prepare(p)(theta)
    assert grad.dtype == np.float32
    assert rho_max(grad, Backprop().prepare(p)(theta)[1]) < 1e-5


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_relu_derivative_at_zero_is_zero_as_in_backprop(method):
    # first layer all zero, no bias: every hidden pre-activation is exactly 0, so with
    # relu'(0) = 0 no gradient reaches the first layer (with ½, as Heaviside(0), it would)
    p = make_problem(2, 3, 4, activation="relu", loss="mse", bias=False)
    theta = p.theta0.copy()
    theta[:4] = 0.0
    grad = method.prepare(p)(theta)[1]
    np.testing.assert_array_equal(grad[:4], 0.0)
    np.testing.assert_array_equal(grad, Backprop().prepare(p)(theta)[1])


def test_smallest_mse_expression_sizes_by_hand():
    # z_j = x_0·w_0j + x_1·w_1j (2 MUL, 1 ADD); ℓ = ½((z_0−t_0)² + (z_1−t_1)²):
    # 2·(3 + SUB + POW) + ADD + MUL + DIV(½) = 13. ∂ℓ/∂w_ij = x_i·(z_j − t_j): 1 + 1 + 3 = 5,
    # four weights: 20.
    d = derivation(Network(2, 1, loss="mse", bias=False))
    assert (d.ops_forward, d.ops_derivatives) == (13, 20)


def test_sizes_grow_with_P_and_cse_shrinks_deep_derivatives():
    small, wide, deep = (derivation(Network(N, L)) for N, L in [(2, 1), (3, 1), (2, 2)])
    for key in ("ops_forward", "ops_derivatives", "ops_cse"):
        assert getattr(small, key) < getattr(wide, key)
        assert getattr(small, key) < getattr(deep, key)
    assert deep.ops_cse < deep.ops_derivatives / 5


def test_stats_name_the_derivation_and_both_methods_share_it():
    p = make_problem(2, 2, 4, dtype="float32")
    d = derivation(p.net)
    assert d is derivation(Network(2, 2))  # one derivation per architecture, any dtype
    for method in METHODS:
        stats = method.prepare(p).stats
        assert stats["ops_forward"] == d.ops_forward
        assert stats["ops_derivatives"] == d.ops_derivatives
        assert stats["ops_cse"] == d.ops_cse
        assert stats["prepare_s"] >= d.derive_s > 0  # set-up as if nothing were cached


# the agreement tests' networks (derived once); sigmoid's z/2 distributes over a sum
@pytest.mark.parametrize(
    ("activation", "loss", "bias", "N", "L"), [c for c in LARGER if c[0] != "sigmoid"]
)
def test_tree_size_recurrence_matches_sympys_count(activation, loss, bias, N, L):
    net = Network(N, L, activation, loss, bias)
    assert tree_ops(net) == derivation(net).ops_forward


@pytest.mark.parametrize(("N", "L"), [(2, 1), (3, 1), (2, 2)])
def test_size_predictions_within_their_stated_error(N, L):
    net, d = Network(N, L), derivation(Network(N, L))
    assert derivative_ops(net) == pytest.approx(d.ops_derivatives, rel=0.1)
    assert cse_ops(net) == pytest.approx(d.ops_cse, rel=0.15)
    assert cse_temporaries(net) == pytest.approx(len(d.cse[0]), rel=0.15)


def test_cost_of_the_smallest_net_by_hand():
    # N=2, L=1, tanh, cross-entropy, bias. One forward pass: 2 neurons × (2 MUL + 1 ADD +
    # bias) + loss 5N + 1 = 19 ops. Loss tree: 2 uses × 2 logits × 4 + 11 = 27. Raw
    # derivatives (0.5 + 0.7/2)·6·(1 + 1)/2·27 = 137.7, shift 2 logits × 4 = 8.
    net = Network(2, 1)
    assert Symbolic().cost(net) == pytest.approx((27 + 137.7 + 8) / 19)
    assert SymbolicCSE().cost(net) == pytest.approx(2.4)
    # 8 bytes × (64 × (2·(P + 1) outputs and stacked copy + N one-hot) + P gradient)
    assert Symbolic().memory(net, 64) == 8 * (64 * (2 * 7 + 2) + 6)
    # symbolic-cse adds its 2N·L + 3 = 7 temporaries of 64
    assert SymbolicCSE().memory(net, 64) == Symbolic().memory(net, 64) + 8 * 64 * 7


def test_prepare_cost_grows_with_the_raw_derivatives():
    costs = [Symbolic().prepare_cost(Network(N, L)) for N, L in [(2, 1), (4, 1), (4, 2), (8, 2)]]
    assert costs == sorted(costs) and costs[-1] > 100 * costs[0]
    # (8, 2) against (8, 1): (313 824 / 12 563 predicted raw ops)^0.76; measured CPU 11.5×
    assert costs[-1] / Symbolic().prepare_cost(Network(8, 1)) == pytest.approx(11.54, rel=1e-3)
    assert SymbolicCSE().prepare_cost(Network(4, 2)) == costs[2]  # one derivation, shared
