"""The PyTorch and JAX reference methods agree with backprop when their library is
installed; without it they are listed as unavailable and these tests say so."""

import importlib.util

import pytest
from conftest import rho_max

from gradbench import registry
from gradbench.methods.backprop import Backprop, matmul_floor
from gradbench.problem import make_problem

LIBRARY = {
    "torch-backprop": "torch",
    "torch-forward": "torch",
    "jax-grad": "jax",
    "jax-forward": "jax",
}


@pytest.mark.parametrize("name", list(LIBRARY))
@pytest.mark.parametrize(
    "options",
    [{}, {"activation": "relu", "loss": "mse", "bias": False}, {"activation": "sigmoid"}],
    ids=["tanh-ce", "relu-mse-nobias", "sigmoid-ce"],
)
def test_reference_agrees_with_backprop(name, options):
    entry = registry.discover()[name]
    if importlib.util.find_spec(LIBRARY[name]) is None:
        assert not entry.available and LIBRARY[name] in entry.reason
        pytest.skip(f"{LIBRARY[name]} is not installed (pip install -e '.[{LIBRARY[name]}]')")
    p = make_problem(6, 3, 16, seed=8, **options)
    loss, grad = entry.method.prepare(p)(p.theta0)
    assert loss == pytest.approx(p.loss(p.theta0), rel=1e-12)
    assert rho_max(grad, Backprop().prepare(p)(p.theta0)[1]) < 1e-10


def test_matmul_floor_runs_the_products_backprop_needs():
    p = make_problem(4, 3, 8)
    assert matmul_floor(p)() is None  # runs, shapes agree


@pytest.mark.parametrize("name", ["torch-backprop", "torch-forward"])
@pytest.mark.parametrize(("N", "L"), [(8, 1), (8, 3), (16, 2)])
def test_torch_cost_model_matches_the_products_torch_counts(name, N, L):
    # torch's own FlopCounterMode counts the matrix products of one gradient and of one
    # loss; their ratio is the cost in forward passes (its loss's log-sum-exp is not counted,
    # so the match is exact)
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install -e '.[torch]')")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    method = registry.discover()[name].method
    p = make_problem(N, L, 4)
    grad_fn = method.prepare(p)
    with FlopCounterMode(display=False) as forward:
        p_loss = method._loss(p)[1]
        p_loss(p.net.layers(torch.tensor(p.theta0)))
    with FlopCounterMode(display=False) as gradient:
        grad_fn(p.theta0)
    counted = gradient.get_total_flops() / forward.get_total_flops()
    assert method.cost(p.net) == pytest.approx(counted, rel=0.02)
