"""Backpropagation (reverse mode): one forward pass, then the chain rule from the loss
back through the layers, reusing each layer's stored input.

For layer l with input ``h_l (B, N)`` and output gradient ``dZ_l = ∂L/∂z_l (B, N)``::

    ∂L/∂W_l = h_lᵀ · dZ_l          ∂L/∂b_l = Σ_batch dZ_l
    dZ_{l-1} = (dZ_l · W_lᵀ) ⊙ f'(h_l)

Layer steps: L forward, L weight gradients ``h_lᵀ · dZ_l`` and L−1 input gradients: 3L−1
in all, (3L−1)/L forward passes (2 at L = 1, → 3 as L grows), whatever P is.

Memory: it keeps every layer's input for the way back, ``(L−1)·B·N`` numbers besides X,
plus the logits, ∂L/∂Z and a few ``(B, N)`` temporaries of the backward step, and the
gradient: ``(L + 3)·B·N + P`` numbers. This is what backprop pays for its speed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gradbench.methods.base import GradFn, Method
from gradbench.model import Array, Layer, Network, dense
from gradbench.problem import Problem


def reverse_mode_cost(net: Network) -> float:
    """(3L−1)/L forward passes: L forward, L weight-gradient and L−1 input-gradient steps."""
    return (3 * net.L - 1) / net.L


def reverse_mode_memory(net: Network, B: int) -> float:
    """Bytes: stored activations and backward temporaries, (L+3)·B·N, and the gradient, P."""
    return net.itemsize * ((net.L + 3) * B * net.N + net.P)


class Backprop(Method):
    name = "backprop"
    kind = "exact"
    description = "Reverse mode: one forward pass, then the chain rule back layer by layer."

    def cost(self, net: Network) -> float:
        return reverse_mode_cost(net)

    def memory(self, net: Network, B: int) -> float:
        return reverse_mode_memory(net, B)

    def prepare(self, problem: Problem) -> GradFn:
        net, X, target = problem.net, problem.X, problem.target

        def grad_fn(theta: Array) -> tuple[float, Array]:
            layers = net.layers(theta)
            hs = net.inputs(layers, X)
            value, dZ = output_gradient(net, layers[-1], hs[-1], target)
            grad = np.empty_like(theta)
            backward(net, layers, hs, dZ, grad)
            return value, grad

        return grad_fn


def output_gradient(net: Network, last: Layer, h: Array, target: Array) -> tuple[float, Array]:
    """The loss and ``dZ = ∂L/∂z`` at the logits ``z = h·W + b`` of the ``last`` layer, from
    its input ``h``; the logits are freed on return."""
    Z = dense(h, last)
    return float(net.loss_fn.value(Z, target)), net.loss_fn.grad(Z, target)


def backward(
    net: Network, layers: list[Layer], hs: list[Array], dZ: Array, grad: Array, start: int = 0
) -> Array:
    """The chain rule back through layers ``start + len(hs) − 1 … start``, whose inputs are
    ``hs``, from ``dZ = ∂L/∂z`` of the last of them: writes each one's ∂L/∂W_l = h_lᵀ·dZ_l
    and ∂L/∂b_l = Σ_batch dZ_l into its block of ``grad``, and returns
    ``dZ_{start−1} = ∂L/∂z_{start−1}``, the gradient flowing into the layer before
    (``dZ_start`` itself when ``start`` is 0: there is no layer before). Pops ``hs`` empty
    as it goes, so each stored input is freed once used."""
    df = net.act.df
    for l in reversed(range(start, start + len(hs))):
        h = hs.pop()
        g = net.as_layer(grad[net.layer_slice(l)])
        np.matmul(h.T, dZ, out=g.W)
        if g.b is not None:
            dZ.sum(axis=0, out=g.b)
        if l:
            dZ = dZ @ layers[l].W.T
            dZ *= df(h)
    return dZ


def matmul_floor(problem: Problem) -> Callable[[], None]:
    """The bare matrix products backprop performs at this size, alone, into preallocated
    buffers: L forward ``(B, N) @ (N, N)``, L weight gradients ``(N, B) @ (B, N)`` and L−1
    input gradients ``(B, N) @ (N, N)ᵀ``. Backprop's distance from it is what its
    elementwise work and allocations cost."""
    net, B = problem.net, problem.B
    rng = np.random.default_rng(0)
    H, dZ = (rng.standard_normal((B, net.N)).astype(net.dtype) for _ in range(2))
    W = rng.standard_normal((net.N, net.N)).astype(net.dtype)
    out_bn, out_nn = np.empty_like(H), np.empty_like(W)

    def products() -> None:
        for _ in range(net.L):
            np.matmul(H, W, out=out_bn)
            np.matmul(H.T, dZ, out=out_nn)  # two arrays, as in backprop: H.T @ H would be SYRK
        for _ in range(net.L - 1):
            np.matmul(H, W.T, out=out_bn)

    return products
