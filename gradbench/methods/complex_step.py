"""Complex step: ∂L/∂θᵢ = Im L(θ + i·h·eᵢ) / h, exact to rounding for analytic L.

No subtraction, so no cancellation: h can be tiny (1e-30) and the result is as accurate
as the loss itself. The price is P complex forward passes; complex tanh/exp and complex
matmuls cost several times their real versions, a constant factor behind finite
differences. relu is not analytic at 0: there the complex step gives the one-sided
derivative of the branch that ``Re z > 0`` selects.
"""

from __future__ import annotations

import numpy as np

from gradbench.methods.base import GradFn, Method
from gradbench.methods.perturb import DEFAULT_MEM_CAP, layer_steps, perturbed_losses, working_set
from gradbench.model import Array, Network
from gradbench.problem import Problem

STEP = {"float64": 1e-30, "float32": 1e-10}  # h² vanishes next to ε; h·|∂L| stays normal
COMPLEX = {"float64": np.complex128, "float32": np.complex64}


class ComplexStep(Method):
    name = "complex-step"
    kind = "exact"
    description = (
        "Complex step Im L(θ+ih·eᵢ)/h, batched like fd-forward (shared prefix): P complex "
        "losses, exact to rounding (relu: not at 0). Cost counts complex layer steps as "
        "real ones; complex arithmetic is ~4× slower (tanh, exp ~15×)."
    )

    def __init__(self, mem_cap: int = DEFAULT_MEM_CAP) -> None:
        self.mem_cap = mem_cap

    def cost(self, net: Network) -> float:
        # the real L(θ), then P complex points; each complex layer step counts as one
        return (layer_steps(net, net.P) + net.L) / net.L

    def memory(self, net: Network, B: int) -> float:
        return working_set(net, B, COMPLEX[net.dtype], self.mem_cap, net.P)

    def note(self, problem: Problem) -> str:
        if problem.net.act.analytic:
            return ""
        return f"{problem.net.activation} is not analytic at 0: one-sided derivative there"

    def prepare(self, problem: Problem) -> GradFn:
        index = np.arange(problem.P)
        h = STEP[problem.net.dtype]

        def grad_fn(theta: Array) -> tuple[float, Array]:
            delta = np.full(problem.P, 1j * h, dtype=COMPLEX[problem.net.dtype])
            f = perturbed_losses(problem, theta, index, delta, self.mem_cap)
            return problem.loss(theta), (f.imag / h).astype(theta.dtype)

        return grad_fn
