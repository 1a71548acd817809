"""Forward mode: push tangents (directional derivatives) forward with the primal values.

A tangent ż_l = ∂z_l/∂θ · v rides along the network as the dual part of z_l::

    ż_l = ḣ_l · W_l + h_l · Ẇ_l + ḃ_l,    ḣ_{l+1} = f'(z_l) ⊙ ż_l,    L̇ = ⟨∂L/∂Z, ż_last⟩

The primal pass (h_l, f'(z_l), ∂L/∂Z) is shared by every tangent. One tangent gives one
directional derivative ∇L·v; the whole gradient takes P of them, one per unit vector eᵢ.
For a unit tangent on weight W_l[j, k] the tangent is zero before layer l and
``h_l · Ẇ_l`` is just column j of h_l placed in column k, so it starts at layer l.

Work, in layer steps: the primal pass (L), then each unit tangent of layer l goes through
the L−1−l later layers, P·(L−1)/2 steps in all, and ends in one dot product ⟨∂L/∂Z, ż⟩ of
B·N numbers, 1/N of a layer step. At L = 1 that dot product is all it does beyond the
primal: the sparsity of unit tangents, not forward mode itself, makes it cheap. Dense
forward mode (jacfwd) does 2L−1 steps for every tangent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradbench.methods.base import GradFn, Method
from gradbench.methods.perturb import DEFAULT_MEM_CAP, chunk_size
from gradbench.model import Array, Layer, Network, dense
from gradbench.problem import Problem


@dataclass(frozen=True)
class Primal:
    """What every tangent needs from the primal pass."""

    layers: list[Layer]
    inputs: list[Array]  # h_l, the input of each layer (B, N)
    slopes: list[Array]  # f'(z_l) for each hidden layer (B, N)
    loss: float
    dZ: Array  # ∂L/∂Z at the logits (B, N)


def primal(problem: Problem, theta: Array) -> Primal:
    net = problem.net
    layers = net.layers(theta)
    hs = net.inputs(layers, problem.X)
    Z = dense(hs[-1], layers[-1])
    loss = net.loss_fn
    slopes = [net.act.df(h) for h in hs[1:]]
    return Primal(
        layers, hs, slopes, float(loss.value(Z, problem.target)), loss.grad(Z, problem.target)
    )


def step(p: Primal, Zdot: Array, l: int) -> Array:
    """ż_l from ż_{l-1}: through the activation's slope, then layer l's weights."""
    return dense(Zdot * p.slopes[l - 1], Layer(p.layers[l].W, None))


def to_loss(p: Primal, Zdot: Array) -> Array:
    """L̇ = ⟨∂L/∂Z, ż⟩ for each tangent in the stack ``(K, B, N)`` → ``(K,)``."""
    return Zdot.reshape(len(Zdot), -1) @ p.dZ.ravel()


def jvp(problem: Problem, theta: Array, V: Array) -> tuple[float, Array]:
    """Loss and ∇L·v for every dense tangent v in the rows of ``V (K, P)``."""
    p = primal(problem, theta)
    Zdot = None
    for l, tangent in enumerate(problem.net.layers(V)):
        seeded = dense(p.inputs[l], tangent)  # h_l · Ẇ_l + ḃ_l, (K, B, N)
        Zdot = seeded if Zdot is None else step(p, Zdot, l) + seeded
    return p.loss, to_loss(p, Zdot)


class ForwardMode(Method):
    name = "forward-mode"
    kind = "exact"
    description = (
        "Forward mode per weight: P JVPs, batched; each unit tangent eᵢ starts at its own "
        "layer, placed as one column (sparse tangents: P(L-1)/2 layer steps, not P·L)."
    )

    def __init__(self, mem_cap: int = DEFAULT_MEM_CAP) -> None:
        self.mem_cap = mem_cap

    def cost(self, net: Network) -> float:
        return (net.L + net.P * (net.L - 1) / 2 + net.P / net.N) / net.L

    def memory(self, net: Network, B: int) -> float:
        # primal: inputs and slopes of the hidden layers, logits and ∂L/∂Z (2L·B·N); a
        # chunk of K tangents alive three times over in a step (ż, ż ⊙ f', the product);
        # the gradient (P)
        K = min(chunk_size(net, B, net.dtype, self.mem_cap), net.layer_size)
        return net.itemsize * (2 * net.L * B * net.N + 3 * K * B * net.N + net.P)

    def prepare(self, problem: Problem) -> GradFn:
        net, B = problem.net, problem.B
        n = net.layer_size
        # Unit tangent u of a layer: ż_l[:, col[u]] = h_l[:, row[u]] (weights) or 1 (biases).
        unit = np.arange(n)
        col = np.where(unit < net.N**2, unit % net.N, unit - net.N**2)
        row = np.where(unit < net.N**2, unit // net.N, -1)
        K = chunk_size(net, B, problem.theta0.dtype, self.mem_cap)

        def grad_fn(theta: Array) -> tuple[float, Array]:
            p = primal(problem, theta)
            grad = np.empty_like(theta)
            for l in range(net.L):
                h1 = np.concatenate([p.inputs[l], np.ones((B, 1), theta.dtype)], axis=1)
                g = grad[net.layer_slice(l)]
                for start in range(0, n, K):
                    u = unit[start : start + K]
                    Zdot = np.zeros((len(u), B, net.N), theta.dtype)
                    Zdot[np.arange(len(u)), :, col[u]] = h1[:, row[u]].T
                    for m in range(l + 1, net.L):
                        Zdot = step(p, Zdot, m)
                    g[u] = to_loss(p, Zdot)
            return p.loss, grad

        return grad_fn
