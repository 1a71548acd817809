"""Every built-in method's cost and memory models against work and memory COUNTED while
it runs, never against the formulas themselves.

Work is counted with an ndarray subclass that adds up the flops of every matrix product
(``@``, ``np.matmul``) it takes part in; the problem's X and θ are handed over as that
subclass, so every product a method computes from them is seen, whatever code path it
takes. The counted work of one gradient ÷ the counted work of ``problem.loss`` is its
cost in forward-pass equivalents. Memory is tracemalloc's peak during one gradient.
"""

from dataclasses import replace

import numpy as np
import pytest

from gradbench.methods.backprop import Backprop
from gradbench.methods.complex_step import ComplexStep
from gradbench.methods.finite_diff import (
    CentralDifference,
    ForwardDifference,
    NaiveForwardDifference,
    ScipyApproxFprime,
)
from gradbench.methods.forward_mode import ForwardMode
from gradbench.methods.stochastic import SPSA, ForwardGradient
from gradbench.problem import make_problem

NUMPY_METHODS = [
    Backprop,
    ForwardDifference,
    CentralDifference,
    NaiveForwardDifference,
    ScipyApproxFprime,
    ForwardMode,
    ComplexStep,
    ForwardGradient,
    SPSA,
]
CHUNKED = (ForwardDifference, CentralDifference, ForwardMode, ComplexStep)


class Counted(np.ndarray):
    """An array that adds the flops (2·m·k·n per product) of every matmul it is in."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(x) if isinstance(x, Counted) else x for x in inputs]
        out = kwargs.get("out")
        if out:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, Counted) else o for o in out)
        if ufunc is np.matmul and method == "__call__":
            Counted.flops += matmul_flops(*(np.shape(x) for x in plain))
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return result.view(Counted) if isinstance(result, np.ndarray) else result


def matmul_flops(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """2·m·k·n for each of the broadcast batch of (m, k) @ (k, n) products."""
    a = a if len(a) > 1 else (1, *a)
    b = b if len(b) > 1 else (*b, 1)
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    return 2 * int(np.prod(batch)) * a[-2] * a[-1] * b[-1]


def test_the_counter_counts_one_forward_pass():
    p = make_problem(8, 3, 4)
    counted = replace(p, X=p.X.view(Counted), theta0=p.theta0.view(Counted))
    Counted.flops = 0
    counted.loss(counted.theta0)
    # three (4, 8) @ (8, 8) layers and the loss's row sum, (4, 8) @ (8,)
    assert Counted.flops == 3 * 2 * 4 * 8 * 8 + 2 * 4 * 8


def counted_cost(method, N: int, L: int, B: int = 4) -> float:
    """Matmul flops of one gradient ÷ matmul flops of one ``problem.loss``."""
    p = make_problem(N, L, B, seed=5)
    p = replace(p, X=p.X.view(Counted), theta0=p.theta0.view(Counted))
    grad_fn = method.prepare(p)
    Counted.flops = 0
    p.loss(p.theta0)
    forward = Counted.flops
    Counted.flops = 0
    grad_fn(p.theta0)
    return Counted.flops / forward


# The models count layer steps; the counter also sees each loss's O(B·N) row sum, which
# the models fold into the last layer step: they differ by at most 1/(N·L) of a pass.
@pytest.mark.parametrize("method", NUMPY_METHODS, ids=lambda m: m.name)
@pytest.mark.parametrize(("N", "L"), [(16, 1), (8, 2), (8, 3), (8, 4)])
def test_cost_model_matches_the_work_counted(method, N, L):
    m = method()
    p = make_problem(N, L, 4)
    assert m.cost(p.net) == pytest.approx(counted_cost(m, N, L), rel=0.08)


def test_forward_mode_does_little_beyond_the_primal_at_one_layer():
    # unit tangents of the only layer need no layer step: a dot product each (1/N step)
    assert counted_cost(ForwardMode(), 16, 1) < 0.1 * 16 * 17


def peak_bytes(grad_fn, theta) -> int:
    """tracemalloc's peak above the start during one call."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        grad_fn(theta)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# A model is good enough to budget with when the measured peak is within a factor 2 of it.
MEMORY_FACTOR = 2.0


@pytest.mark.parametrize("method", NUMPY_METHODS, ids=lambda m: m.name)
@pytest.mark.parametrize(
    ("N", "L", "B", "dtype"),
    [(8, 2, 16, "float64"), (16, 2, 64, "float64"), (8, 4, 32, "float32"), (4, 8, 256, "float64")],
)
def test_memory_model_is_within_a_factor_of_the_measured_peak(method, N, L, B, dtype):
    m = method(mem_cap=2**20) if method in CHUNKED else method()  # a cap that binds
    p = make_problem(N, L, B, dtype=dtype)
    grad_fn = m.prepare(p)
    grad_fn(p.theta0)  # warm: first-call allocations (caches, imports) are not the model's
    ratio = peak_bytes(grad_fn, p.theta0) / m.memory(p.net, B)
    assert 1 / MEMORY_FACTOR < ratio < MEMORY_FACTOR
