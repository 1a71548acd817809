"""Backpropagation with checkpoints (Griewank 1992; Chen et al. 2016): memory bought back
with one extra forward pass.

Backprop stores the input of every layer for the way back: L arrays of ``(B, N)``. This
variant cuts the L layers into S segments of k (``k ≈ √L`` by default; the first segment
takes the remainder, ``L − (S − 1)·k`` layers) and keeps only each segment's input on the
way forward, ``X, h_a, h_b, …``. On the way back it computes one segment's inputs from
its checkpoint and runs backprop's own chain rule through them
(:func:`~gradbench.methods.backprop.backward`), last segment first. The last segment is
computed once, on the way back; every other is computed twice.

Memory: at most ``S − 1`` checkpoints (``X`` is the data) and the ``k − 1`` inputs of one
segment after its checkpoint are alive at once, ``O(L/k + k)`` arrays, fewest at
``k = √L``: about ``2√L`` instead of L. The peak is the last segment beside all the
checkpoints, so the remainder goes first: a full last segment makes that peak the model
for every L, and the short segment is one that is recomputed. Time: ``L − k − S + 1``
layer steps done twice, just under one forward pass. The gradient is the same arithmetic
on the same numbers as backprop's, so it agrees to the last bit.
"""

from __future__ import annotations

import itertools
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

    def starts(self, net: Network) -> list[int]:
        """The first layer of each segment: the remainder first, then every k layers, so
        the last segment, which is never computed twice, is a full one."""
        k = self.segment(net)
        return [0, *range(net.L % k or k, net.L, k)]

    def recomputed_steps(self, net: Network) -> int:
        """Layer steps done twice: every segment's but the last, less each one's
        checkpoint, ``(L − k) − (S − 1)``."""
        return net.L - self.segment(net) - len(self.starts(net)) + 1

    def cost(self, net: Network) -> float:
        """Backprop's cost plus the recomputed layer steps, ÷ L (one forward pass is L
        layer steps)."""
        return super().cost(net) + self.recomputed_steps(net) / net.L

    def memory(self, net: Network, B: int) -> float:
        """Bytes beyond θ and the data: ``(S − 1) + (k − 1) + 4`` arrays of ``(B, N)``
        (checkpoints, one segment's inputs, the working arrays) and the gradient (P)."""
        arrays = len(self.starts(net)) - 1 + self.segment(net) - 1 + WORK_ARRAYS
        return float((arrays * B * net.N + net.P) * np.dtype(net.dtype).itemsize)

    def prepare(self, problem: Problem) -> GradFn:
        net, X, target = problem.net, problem.X, problem.target
        # (first layer, one past the last layer) of each segment
        segments = list(itertools.pairwise([*self.starts(net), net.L]))

        def grad_fn(theta: Array) -> tuple[float, Array]:
            layers = net.layers(theta)
            checkpoints = [X]
            for a, b in segments[:-1]:  # forward, keeping only each segment's input
                checkpoints.append(net.inputs(layers, checkpoints[-1], a, b + 1)[-1])
            last = segments[-1][0]
            segment = net.inputs(layers, checkpoints.pop(), last)  # the last, computed once
            value, dZ = output_gradient(net, layers[-1], segment[-1], target)
            grad = np.empty_like(theta)
            for j in reversed(range(len(segments))):
                dZ = backward(net, layers, segment, dZ, grad, segments[j][0])  # empties it
                if j:
                    segment = net.inputs(layers, checkpoints.pop(), *segments[j - 1])
            return value, grad

        return grad_fn
