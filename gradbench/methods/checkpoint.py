"""Backpropagation with checkpoints (Griewank 1992; Chen et al. 2016): memory bought back
with one extra forward pass.

Backprop stores the input of every layer for the way back: L arrays of ``(B, N)``. This
variant cuts the L layers into segments of k (``k ≈ √L`` by default) and keeps only each
segment's input ``h_0, h_k, h_2k, …`` on the way forward. On the way back it recomputes
one segment's inputs from its checkpoint and runs backprop's own chain rule through it
(:func:`~gradbench.methods.backprop.backward`), last segment first; the last segment's
inputs are kept from the forward pass, so it is never recomputed. With ``S = ⌈L/k⌉``
segments the stored activations are at most ``S − 1`` checkpoints (``h_0`` is the data)
plus ``k − 1`` inputs of one segment, ``O(L/k + k)``, smallest at ``k = √L``: ``2√L``
instead of L. The gradient is the same arithmetic on the same numbers as backprop's, so
it agrees to the last bit; the price is ``(S − 1)(k − 1)`` recomputed layer steps, just
under one forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from gradbench.methods.backprop import Backprop, backward, output_gradient
from gradbench.methods.base import GradFn
from gradbench.model import Array, Network
from gradbench.problem import Problem

# (B, N) arrays alive beside the stored inputs at the peak, a backward step:
# dZ_l, dZ_l·W_lᵀ, and f'(h_l) with the temporary it is computed from
WORK_ARRAYS = 4


class CheckpointedBackprop(Backprop):
    name = "backprop-checkpoint"
    description = (
        "Reverse mode keeping every k-th layer input (k ≈ √L), recomputing each segment "
        "on the way back: O(√L) activations for about one extra forward pass."
    )

    def __init__(self, k: int | None = None) -> None:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k

    def segment(self, net: Network) -> int:
        """Layers per segment: the k given, else the integer nearest √L (at most L)."""
        return min(self.k or max(1, round(math.sqrt(net.L))), net.L)

    def recomputed_steps(self, net: Network) -> int:
        """Layer steps done again on the way back: ``k − 1`` for each of the ``S − 1``
        segments before the last (a segment's first input is its checkpoint)."""
        k = self.segment(net)
        return (math.ceil(net.L / k) - 1) * (k - 1)

    def cost(self, net: Network) -> float:
        """Backprop's cost plus the recomputed layer steps, ÷ L (one forward pass is L
        layer steps)."""
        return super().cost(net) + self.recomputed_steps(net) / net.L

    def memory(self, net: Network, B: int) -> float:
        """Bytes beyond θ and the data: ``(S − 1) + (k − 1) + 4`` arrays of ``(B, N)``
        (checkpoints, one segment's inputs, the working arrays) and the gradient (P)."""
        k = self.segment(net)
        arrays = math.ceil(net.L / k) - 1 + k - 1 + WORK_ARRAYS
        return float((arrays * B * net.N + net.P) * np.dtype(net.dtype).itemsize)

    def prepare(self, problem: Problem) -> GradFn:
        net, X, target = problem.net, problem.X, problem.target
        k = self.segment(net)
        starts = range(0, net.L, k)  # the first layer of each segment

        def grad_fn(theta: Array) -> tuple[float, Array]:
            layers = net.layers(theta)
            checkpoints = [X]
            for a in starts[1:]:  # forward to each segment's input, keeping only those
                checkpoints.append(net.inputs(layers, checkpoints[-1], a - k, a + 1)[-1])
            segment = net.inputs(layers, checkpoints.pop(), starts[-1])  # the last, kept
            value, dZ = output_gradient(net, layers[-1], segment[-1], target)
            grad = np.empty_like(theta)
            for a in reversed(starts):
                dZ = backward(net, layers, segment, dZ, grad, a)  # empties the segment
                if a:
                    segment = net.inputs(layers, checkpoints.pop(), a - k, a)
            return value, grad

        return grad_fn
