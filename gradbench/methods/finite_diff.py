"""Finite differences: perturb each weight, re-evaluate the whole loss.

Forward:  ∂L/∂θᵢ ≈ (L(θ + hᵢeᵢ) − L(θ)) / hᵢ,          hᵢ ∝ √ε·max(1, |θᵢ|), P+1 losses
Central:  ∂L/∂θᵢ ≈ (L(θ + hᵢeᵢ) − L(θ − hᵢ′eᵢ)) / (hᵢ + hᵢ′), hᵢ ∝ ∛ε·max(1, |θᵢ|), 2P+1 losses
(2P perturbed points and L(θ), the loss it reports).

Each step is re-derived as ``(θᵢ + h) − θᵢ`` so that it is exactly the distance between
the two points evaluated. The truncation error is O(h) forward and O(h²) central; the
rounding error is O(ε/h): about √ε and ε^(2/3) of the gradient's scale at these steps.
"""

from __future__ import annotations

import numpy as np

from gradbench.methods.base import GradFn, Method
from gradbench.methods.perturb import DEFAULT_MEM_CAP, layer_steps, perturbed_losses, working_set
from gradbench.model import Array, Network
from gradbench.problem import Problem

# Largest max ρ allowed for forward differences (fd-forward, fd-naive, scipy-fprime), from
# errors measured at θ₀ over every activation and loss, N ≤ 128, L ≤ 8: worst 4.8e-5 in
# float64 (relu + MSE at L = 8; ≤ 1.1e-7 with cross-entropy). In float32 the rounding error
# ε·|L|/h grows with the loss: ≤ 1.1e-2 with cross-entropy at every size, ≤ 5e-2 with MSE
# up to N = 64; beyond the bound, MSE at N = 128 (0.15) and relu + MSE at depth (ρ up to
# 1: the step cannot resolve the gradient), where such cells are honestly "wrong".
FORWARD_TOLERANCE = {"float64": 2e-4, "float32": 1e-1}


def steps(theta: Array, power: float) -> tuple[Array, Array]:
    """Exactly representable steps up and down: ``(θ + h) − θ`` and ``θ − (θ − h)``
    with ``h = ε^power · max(1, |θ|)``."""
    h = np.finfo(theta.dtype).eps ** power * np.maximum(1.0, np.abs(theta))
    return (theta + h) - theta, theta - (theta - h)


class _BatchedDifferences(Method):
    """What forward and central differences share: the batched loss evaluations at
    ``points_per_weight``·P perturbed points, plus L(θ)."""

    kind = "approximate"
    points_per_weight: int

    def __init__(self, mem_cap: int = DEFAULT_MEM_CAP) -> None:
        self.mem_cap = mem_cap

    def cost(self, net: Network) -> float:
        return (layer_steps(net, self.points_per_weight * net.P) + net.L) / net.L

    def memory(self, net: Network, B: int) -> float:
        return working_set(net, B, net.dtype, self.mem_cap, self.points_per_weight * net.P)


class ForwardDifference(_BatchedDifferences):
    name = "fd-forward"
    description = (
        "Forward differences, batched: P+1 losses, error O(√ε); each point recomputes only "
        "the layers from the perturbed one on (shared prefix)."
    )
    points_per_weight = 1

    def tolerance(self, dtype: str) -> float | None:
        return FORWARD_TOLERANCE[dtype]

    def prepare(self, problem: Problem) -> GradFn:
        index = np.arange(problem.P)

        def grad_fn(theta: Array) -> tuple[float, Array]:
            h, _ = steps(theta, 1 / 2)
            f0 = problem.loss(theta)
            return f0, (perturbed_losses(problem, theta, index, h, self.mem_cap) - f0) / h

        return grad_fn


class CentralDifference(_BatchedDifferences):
    name = "fd-central"
    description = (
        "Central differences, batched: 2P+1 losses, error O(ε^(2/3)); each point "
        "recomputes only the layers from the perturbed one on (shared prefix)."
    )
    points_per_weight = 2

    def prepare(self, problem: Problem) -> GradFn:
        P = problem.P
        index = np.concatenate([np.arange(P), np.arange(P)])

        def grad_fn(theta: Array) -> tuple[float, Array]:
            up, down = steps(theta, 1 / 3)
            f = perturbed_losses(problem, theta, index, np.concatenate([up, -down]), self.mem_cap)
            return problem.loss(theta), (f[:P] - f[P:]) / (up + down)

        return grad_fn


class NaiveForwardDifference(Method):
    name = "fd-naive"
    kind = "approximate"
    description = (
        "Forward differences, textbook loop: one full loss call per weight "
        "(as scipy.optimize.approx_fprime)."
    )

    def cost(self, net: Network) -> float:
        return net.P + 1.0  # P+1 full forward passes, nothing shared

    def memory(self, net: Network, B: int) -> float:
        # the moving point, the gradient, the steps and their temporaries (6P); one
        # forward pass's live activations (3·B·N)
        return net.itemsize * (6 * net.P + 3 * B * net.N)

    def tolerance(self, dtype: str) -> float | None:
        return FORWARD_TOLERANCE[dtype]

    def prepare(self, problem: Problem) -> GradFn:
        def grad_fn(theta: Array) -> tuple[float, Array]:
            h, _ = steps(theta, 1 / 2)
            f0 = problem.loss(theta)
            grad = np.empty_like(theta)
            point = theta.copy()
            for i in range(theta.size):
                point[i] = theta[i] + h[i]
                grad[i] = (problem.loss(point) - f0) / h[i]
                point[i] = theta[i]
            return f0, grad

        return grad_fn


class ScipyApproxFprime(Method):
    name = "scipy-fprime"
    kind = "approximate"
    description = "scipy.optimize.approx_fprime on the black-box loss: the practitioner's FD."

    def cost(self, net: Network) -> float:
        return net.P + 2.0

    def memory(self, net: Network, B: int) -> float:
        # scipy's approx_derivative works in float64 and keeps ~45 P-vectors alive (its
        # point, steps, bounds and differences: measured with tracemalloc, scipy 1.x);
        # one forward pass's live activations (3·B·N)
        return 8 * 45 * net.P + net.itemsize * 3 * B * net.N

    def tolerance(self, dtype: str) -> float | None:
        return FORWARD_TOLERANCE[dtype]

    def prepare(self, problem: Problem) -> GradFn:
        from scipy.optimize import approx_fprime

        def grad_fn(theta: Array) -> tuple[float, Array]:
            # scipy evaluates L(θ) itself and does not return it: one extra call, P+2 in all
            return problem.loss(theta), approx_fprime(theta, problem.loss).astype(theta.dtype)

        return grad_fn
