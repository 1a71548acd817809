"""backprop-checkpoint: the same gradient as backprop and as an independent central
difference, from fewer stored activations, for the layer steps its cost model counts."""

import itertools
import tracemalloc

import numpy as np
import pytest
from conftest import reference_gradient, rho_max

import gradbench.model
from gradbench import registry
from gradbench.methods import backprop
from gradbench.methods.backprop import Backprop
from gradbench.methods.checkpoint import CheckpointedBackprop
from gradbench.model import ACTIVATIONS, LOSSES, Network
from gradbench.problem import make_problem

DEPTHS = [1, 2, 3, 7, 16]
OPTIONS = list(itertools.product(ACTIVATIONS, LOSSES, [True, False]))


def _problem(L, activation="tanh", loss="cross_entropy", bias=True):
    return make_problem(3, L, 8, activation=activation, loss=loss, bias=bias, seed=L)


@pytest.mark.parametrize("k", [None, 1, 2, 3, 5, 16, 40])
@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize(("activation", "loss", "bias"), OPTIONS)
def test_agrees_with_backprop_to_rounding(activation, loss, bias, L, k):
    p = _problem(L, activation, loss, bias)
    theta = p.theta0 + 0.05
    value, grad = CheckpointedBackprop(k).prepare(p)(theta)
    ref_value, ref_grad = Backprop().prepare(p)(theta)
    assert value == ref_value
    assert rho_max(grad, ref_grad) <= 1e-12


@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize(("activation", "loss", "bias"), OPTIONS)
def test_matches_independent_central_differences(activation, loss, bias, L):
    p = _problem(L, activation, loss, bias)
    value, grad = CheckpointedBackprop().prepare(p)(p.theta0)
    assert value == pytest.approx(p.loss(p.theta0), rel=1e-14)
    assert rho_max(grad, reference_gradient(p.loss, p.theta0)) < 1e-7


@pytest.mark.parametrize(
    ("L", "k", "segment", "starts", "recomputed"),
    [
        (1, None, 1, [0], 0),  # one segment: plain backprop
        (16, None, 4, [0, 4, 8, 12], 9),  # 4 segments of 4: 3 computed twice, 3 steps each
        (7, 3, 3, [0, 1, 4], 2),  # the remainder first: [0,1) [1,4) [4,7): 0 + 2
        (7, 2, 2, [0, 1, 3, 5], 2),  # [0,1) [1,3) [3,5) [5,7): 0 + 1 + 1
        (10, None, 3, [0, 1, 4, 7], 4),  # round(√10) = 3
        (64, None, 8, [0, 8, 16, 24, 32, 40, 48, 56], 49),  # 7 segments twice, 7 steps each
        (3, 40, 3, [0], 0),  # k beyond L: one segment
    ],
)
def test_segments_and_recomputed_steps(L, k, segment, starts, recomputed):
    method, net = CheckpointedBackprop(k), Network(4, L)
    assert method.segment(net) == segment
    assert method.starts(net) == starts
    assert method.recomputed_steps(net) == recomputed
    assert method.cost(net) == Backprop().cost(net) + recomputed / L


@pytest.mark.parametrize(("L", "k", "products"), [(7, 3, 9), (16, None, 25), (5, 1, 5)])
def test_cost_counts_the_forward_products_actually_done(monkeypatch, L, k, products):
    """Every forward layer product goes through ``dense``: L of them in the forward pass,
    plus the recomputed ones."""
    p, calls, dense = _problem(L), [], gradbench.model.dense

    def counting_dense(h, layer):
        calls.append(h.shape)
        return dense(h, layer)

    monkeypatch.setattr(gradbench.model, "dense", counting_dense)
    monkeypatch.setattr(backprop, "dense", counting_dense)
    CheckpointedBackprop(k).prepare(p)(p.theta0)
    assert len(calls) == products


def test_memory_model_in_bytes():
    net = Network(64, 64)  # k = 8: 7 checkpoints, 7 recomputed inputs, 4 working arrays
    assert CheckpointedBackprop().memory(net, 1024) == (18 * 1024 * 64 + net.P) * 8
    assert (
        CheckpointedBackprop().memory(Network(4, 9, dtype="float32"), 2)
        == ((2 + 2 + 4) * 2 * 4 + 9 * 20) * 4
    )


def _peak(method, p):
    grad_fn = method.prepare(p)
    grad_fn(p.theta0)  # warm: caches and lazily built arrays are not the method's memory
    tracemalloc.start()
    try:
        grad_fn(p.theta0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_stores_fewer_activations_than_backprop():
    """At L = 16, k = 4 the stored inputs fall from 15 to 3 checkpoints + 3 of one segment
    (4 working arrays beside both)."""
    p = make_problem(16, 16, 512, seed=3)  # activations (64 KiB each) outweigh θ (34 KiB)
    assert _peak(CheckpointedBackprop(), p) < 0.6 * _peak(Backprop(), p)


@pytest.mark.parametrize(("L", "arrays"), [(16, 3 + 3 + 4), (10, 3 + 2 + 4), (8, 2 + 2 + 4)])
def test_the_measured_peak_is_the_declared_model(L, arrays):
    """The peak (tracemalloc) is ``(S − 1) + (k − 1) + 4`` arrays of (B, N) and the
    gradient, also where k does not divide L."""
    p = make_problem(16, L, 512, seed=3)
    model = CheckpointedBackprop().memory(p.net, p.B)
    assert model == (arrays * 512 * 16 + p.net.P) * 8
    assert _peak(CheckpointedBackprop(), p) == pytest.approx(model, rel=0.05)


@pytest.mark.parametrize("k", [0, -2, 2.5, True, "4"])
def test_refuses_a_segment_length_that_is_not_a_positive_integer(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        CheckpointedBackprop(k)


def test_registered_like_every_built_in():
    entry = registry.discover()["backprop-checkpoint"]
    assert entry.available and isinstance(entry.method, CheckpointedBackprop)
    assert entry.method.k is None and entry.method.kind == "exact"


def test_returns_fresh_gradients():
    p = _problem(7)
    grad_fn = CheckpointedBackprop(2).prepare(p)
    g1, g2 = grad_fn(p.theta0)[1], grad_fn(p.theta0)[1]
    assert g1 is not g2
    np.testing.assert_array_equal(g1, g2)
