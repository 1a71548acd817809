"""Stochastic gradient estimators: cheap, unbiased, and noisier as P grows.

* Forward gradient (Baydin et al., 2022, "Gradients without Backpropagation"): with
  v ~ 𝒩(0, I), ĝ = (∇L·v)·v from one JVP. E[ĝ] = ∇L, E‖ĝ − ∇L‖² = (P+1)‖∇L‖², per
  entry Var ĝᵢ = ‖∇L‖² + (∇L)ᵢ².
* SPSA (Spall, 1992): with Rademacher Δ ∈ {±1}ᴾ, ĝ = (L(θ+cΔ) − L(θ−cΔ)) / (2c) · Δ.
  Unbiased up to O(c²); per entry Var ĝᵢ ≈ ‖∇L‖² − (∇L)ᵢ².

Both seed themselves from the problem's seed in ``prepare`` and draw a fresh direction on
every call, so a sequence of calls is reproducible.
"""

from __future__ import annotations

import numpy as np

from gradbench.methods.base import GradFn, Method
from gradbench.methods.forward_mode import jvp
from gradbench.model import Array, Network
from gradbench.problem import Problem


class ForwardGradient(Method):
    name = "forward-gradient"
    kind = "stochastic"
    description = "Forward gradient (∇L·v)v, v ~ N(0, I): one JVP, unbiased, variance ∝ P."

    def cost(self, net: Network) -> float:
        # primal (L steps), then a dense tangent: h_l·V_l in every layer and ż·W_l in all
        # but the first (2L−1 steps), closed by one dot product (1/N of a step)
        return (3 * net.L - 1 + 1 / net.N) / net.L

    def memory(self, net: Network, B: int) -> float:
        # v drawn in float64 and cast, ĝ (3P at most); the primal (2L·B·N); the tangent
        # and its temporaries (3·B·N)
        return net.itemsize * (3 * net.P + (2 * net.L + 3) * B * net.N)

    def prepare(self, problem: Problem) -> GradFn:
        rng = np.random.default_rng(problem.seed)

        def grad_fn(theta: Array) -> tuple[float, Array]:
            v = rng.standard_normal(theta.shape).astype(theta.dtype)
            loss, slope = jvp(problem, theta, v[None, :])
            return loss, slope[0] * v

        return grad_fn


class SPSA(Method):
    name = "spsa"
    kind = "stochastic"
    description = "SPSA: two losses along a random ±1 direction, unbiased up to O(c²)."

    def cost(self, net: Network) -> float:
        return 3.0  # L(θ) for the reported loss, and L(θ ± cΔ): one stacked forward pass

    def memory(self, net: Network, B: int) -> float:
        # Δ, cΔ, θ ± cΔ and their stack of three, ĝ (8P); three forward passes at once (9·B·N)
        return net.itemsize * (8 * net.P + 9 * B * net.N)

    def prepare(self, problem: Problem) -> GradFn:
        rng = np.random.default_rng(problem.seed)
        c = np.finfo(problem.theta0.dtype).eps ** (1 / 3)

        def grad_fn(theta: Array) -> tuple[float, Array]:
            delta = rng.choice(np.array([-1.0, 1.0], theta.dtype), size=theta.shape)
            f = problem.losses(np.stack([theta, theta + c * delta, theta - c * delta]))
            return float(f[0]), (f[1] - f[2]) / (2 * c) * delta

        return grad_fn
