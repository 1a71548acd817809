"""Richardson-extrapolated central differences: an example gradbench plugin.

With D(h) the central difference of step h, ``(4·D(h/2) − D(h)) / 3`` cancels the h²
error term, leaving O(h⁴): more accurate than central differences for twice the losses
(4P). It reuses gradbench's batched perturbation engine, as a plugin may.
"""

import numpy as np

from gradbench import Method
from gradbench.methods.perturb import perturbed_losses


class RichardsonDifference(Method):
    name = "fd-richardson"
    kind = "approximate"
    description = "Richardson-extrapolated central differences: 4P losses, error O(h⁴)."

    def cost(self, net):
        return 4.0 * net.P

    def prepare(self, problem):
        P = problem.P
        index = np.tile(np.arange(P), 4)

        def grad_fn(theta):
            h = np.finfo(theta.dtype).eps ** (1 / 5) * np.maximum(1.0, np.abs(theta))
            h = (theta + h) - theta  # exactly representable
            half = (theta + h / 2) - theta
            steps = np.concatenate([h, -h, half, -half])
            f = perturbed_losses(problem, theta, index, steps).reshape(4, P)
            wide = (f[0] - f[1]) / (2 * h)
            narrow = (f[2] - f[3]) / (2 * half)
            return problem.loss(theta), (4 * narrow - wide) / 3

        return grad_fn
