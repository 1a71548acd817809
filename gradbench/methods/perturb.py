"""The loss at many single-coordinate perturbations of θ, evaluated in batches.

``perturbed_losses(problem, θ, i, δ)[k] = L(θ + δ_k · e_{i_k})``, the shared engine of
finite differences and complex step. Every point is a full loss evaluation, done the way a
skilled engineer batches it:

* perturbations are grouped by the layer l they touch; layers before l see the
  unperturbed θ, so their outputs (the "prefix") are computed once and shared;
* K perturbed copies of layer l go through one stacked matmul ``(B, N) @ (K, N, N)``, and
  every later layer through one folded ``(K·B, N) @ (N, N)`` product;
* K is chosen so that a chunk's working set stays under a memory cap.

Work, in layer steps (one ``(B, N) @ (N, N)`` product with its elementwise work): the
prefix once (L−1), then L−l steps for a point in layer l, (L+1)/2 on average over points
spread evenly over the layers: (L+1)/(2L) of a forward pass per point, not one.

Each point goes through the same floating-point operations as ``problem.loss`` at that
point, so the result equals the one-at-a-time loop to the last bit.
"""

from __future__ import annotations

import numpy as np

from gradbench.model import Array, Network
from gradbench.problem import Problem

DEFAULT_MEM_CAP = 256 * 2**20  # bytes
LIVE_ACTIVATIONS = 4  # (K, B, N) arrays alive at once in a chunk: z, f(z), and the loss's two
# A chunk's working set is also kept near cache size: measured here (2 cores, N = 16…64),
# 2–8 MiB chunks ran up to 2× faster than 256 MiB ones, which stream through memory.
CACHE_BYTES = 4 * 2**20


def _budget(net: Network, B: int, dtype: np.dtype, n_points: int) -> tuple[int, int]:
    """Bytes per evaluated point of a chunk, and bytes that live for the whole call.

    One point holds a copy of its layer (``N² + N`` numbers) and a few ``(B, N)``
    activation arrays. For the whole call: about a dozen numbers per evaluated point
    (indices, steps, results, the gradient) and the shared prefix of activations.
    """
    itemsize = np.dtype(dtype).itemsize
    per_point = itemsize * (net.layer_size + LIVE_ACTIVATIONS * B * net.N)
    fixed = itemsize * (12 * max(n_points, net.P) + (net.L + 2) * B * net.N)
    return per_point, fixed


def chunk_size(net: Network, B: int, dtype: np.dtype, mem_cap: int, n_points: int = 0) -> int:
    """How many perturbed points to evaluate at once: as many as fit in a cache-sized
    working set, and never so many that the whole call exceeds ``mem_cap`` bytes (≥ 1)."""
    per_point, fixed = _budget(net, B, dtype, n_points)
    return max(1, int(min(mem_cap - fixed, CACHE_BYTES) // per_point))


def working_set(net: Network, B: int, dtype: np.dtype, mem_cap: int, n_points: int) -> float:
    """Memory model of :func:`perturbed_losses` with its caller's arrays, in bytes: what
    lives for the whole call plus one chunk, ``fixed + K · per_point``, where a chunk
    holds at most one layer's points. Capped by ``mem_cap`` unless one point exceeds it."""
    per_point, fixed = _budget(net, B, dtype, n_points)
    K = min(chunk_size(net, B, dtype, mem_cap, n_points), -(-n_points // net.L))
    return float(fixed + K * per_point)


def layer_steps(net: Network, n_points: int) -> float:
    """Layer steps of :func:`perturbed_losses` at ``n_points`` points spread evenly over the
    layers: the shared prefix, L−1, plus (L+1)/2 per point."""
    return net.L - 1 + n_points * (net.L + 1) / 2


def perturbed_losses(
    problem: Problem,
    theta: Array,
    index: Array,
    delta: Array,
    mem_cap: int = DEFAULT_MEM_CAP,
) -> Array:
    """The loss at ``θ + delta[k]·e_{index[k]}`` for every k; complex ``delta`` gives
    complex losses (complex step)."""
    net, loss = problem.net, problem.net.loss_fn
    dtype = np.result_type(theta, delta)
    layers = net.layers(theta)
    prefix = net.inputs(layers, problem.X)
    out = np.empty(len(index), dtype=dtype)
    K = chunk_size(net, problem.B, dtype, mem_cap, len(index))
    layer_of = net.layer_of(index)
    for l in range(net.L):
        base = theta[net.layer_slice(l)].astype(dtype)
        in_layer = np.flatnonzero(layer_of == l)
        for start in range(0, len(in_layer), K):
            ks = in_layer[start : start + K]
            block = np.repeat(base[None, :], len(ks), axis=0)
            block[np.arange(len(ks)), index[ks] - l * net.layer_size] += delta[ks]
            stacked = [*layers[:l], net.as_layer(block), *layers[l + 1 :]]
            out[ks] = loss.value(net.run(stacked, prefix[l], start=l), problem.target)
    return out
