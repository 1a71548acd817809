"""Reference implementations in the libraries a practitioner would reach for: PyTorch's
autograd and JAX, reverse and forward mode. They make gradbench's own numbers credible:
its methods are compared with these at the same sizes, in the same run.

Optional: install with ``pip install -e .[torch]`` or ``.[jax]``; without them the methods
are listed as unavailable. Compilation (JAX's jit) happens in ``prepare``, so only the call
is timed. PyTorch runs with as many threads as numpy's BLAS; JAX (XLA) picks its own
thread pool, which cannot be changed once it has started.

Each is written as a practitioner would: torch-backprop gives every weight matrix and bias
its own leaf tensor, as a model's parameters are (autograd's backward of a slice of one
flat θ would fill a zero tensor of all P numbers for every slice: 2L of them).

Cost and memory: reverse mode does backprop's work and stores the same activations.
jacfwd pushes P *dense* tangents through every layer, the identity basis included: 2L−1
layer steps per tangent (no sparsity exploited, unlike gradbench's forward-mode), and
every intermediate carries P·B·N tangent numbers.
"""

from __future__ import annotations

import warnings

import numpy as np

from gradbench import environment
from gradbench.methods.backprop import reverse_mode_cost, reverse_mode_memory
from gradbench.methods.base import GradFn, Method
from gradbench.model import Array, Layer, Network
from gradbench.problem import Problem


def dense_forward_cost(net: Network, primals: int = 1) -> float:
    """jacfwd's forward-pass equivalents: the primal passes (L steps each), then for each
    of the P dense tangents h_l·Ẇ_l in every layer and ḣ_l·W_l in all but the first
    (2L−1 steps)."""
    return primals + net.P * (2 * net.L - 1) / net.L


def dense_forward_memory(net: Network, B: int) -> float:
    """jacfwd's bytes: the identity basis of tangents (P²), about three intermediates of
    P·B·N tangent numbers per layer (torch-forward's peak resident memory above its
    baseline, measured at N = 32, L = 2 and N = 16, L = 4: within 1.2× of this), and the
    gradient (P)."""
    return net.itemsize * (net.P**2 + 3 * net.L * net.P * B * net.N + net.P)


def written_for(problem: Problem, act, logsumexp):
    """gradbench's loss, written once for a tensor library, over θ's layers as
    :meth:`Network.layers <gradbench.model.Network.layers>` views them (which works on
    torch and JAX arrays too): ``act`` and ``logsumexp`` come from that library, everything
    else (``@``, indexing) both share."""
    net = problem.net

    def loss(layers, X, target, rows):
        h = X
        for l, layer in enumerate(layers):
            z = h @ layer.W if layer.b is None else h @ layer.W + layer.b
            h = z if l == net.L - 1 else act(z)
        if net.loss == "cross_entropy":
            return (logsumexp(h) - h[rows, target]).mean()
        return 0.5 * ((h - target) ** 2).sum(-1).mean()

    return loss


class _Torch(Method):
    kind = "exact"
    requires = ("torch",)

    def _loss(self, problem: Problem):
        import torch

        torch.set_num_threads(max(1, environment.blas()["blas_threads"]))
        acts = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
        loss = written_for(problem, acts[problem.net.activation], lambda z: torch.logsumexp(z, -1))
        # copies: torch refuses to share gradbench's read-only arrays without a warning
        X, target = torch.tensor(problem.X), torch.tensor(problem.target)
        rows = torch.arange(problem.B)
        return torch, lambda layers: loss(layers, X, target, rows)


class TorchBackprop(_Torch):
    name = "torch-backprop"
    description = "PyTorch autograd (reverse mode) on the CPU: the practitioner's backprop."

    def cost(self, net: Network) -> float:
        return reverse_mode_cost(net)

    def memory(self, net: Network, B: int) -> float:
        return reverse_mode_memory(net, B)

    def prepare(self, problem: Problem) -> GradFn:
        torch, loss = self._loss(problem)
        net = problem.net

        def leaf(array, grad):
            if array is None:
                return None
            with warnings.catch_warnings():  # θ is read-only; autograd never writes a leaf
                warnings.simplefilter("ignore", UserWarning)
                tensor = torch.from_numpy(array).requires_grad_()
            tensor.grad = grad  # backward adds into it, in place
            return tensor

        def grad_fn(theta: Array) -> tuple[float, Array]:
            # One leaf per weight matrix and bias, as a model's parameters are: autograd's
            # backward of a slice of one flat leaf fills a zero tensor of all P numbers per
            # slice. Their gradients accumulate into views of one flat buffer, returned whole.
            flat = np.zeros_like(theta)
            grads = net.layers(torch.from_numpy(flat))
            layers = [
                Layer(leaf(layer.W, grad.W), leaf(layer.b, grad.b))
                for layer, grad in zip(net.layers(theta), grads, strict=True)
            ]
            value = loss(layers)
            value.backward()
            return float(value.detach()), flat

        return grad_fn


class TorchForward(_Torch):
    name = "torch-forward"
    description = "PyTorch torch.func.jacfwd: forward mode, vmapped over all P dense tangents."

    def cost(self, net: Network) -> float:
        return dense_forward_cost(net, primals=2)  # jacfwd's primal, and the loss returned

    def memory(self, net: Network, B: int) -> float:
        return dense_forward_memory(net, B)

    def prepare(self, problem: Problem) -> GradFn:
        torch, loss = self._loss(problem)
        jac = torch.func.jacfwd(lambda t: loss(problem.net.layers(t)))

        def grad_fn(theta: Array) -> tuple[float, Array]:
            t = torch.tensor(theta)  # a copy: θ is read-only
            return float(loss(problem.net.layers(t))), jac(t).numpy()

        return grad_fn


class _Jax(Method):
    kind = "exact"
    requires = ("jax",)
    transform = ""  # "grad" or "jacfwd"

    def prepare_cost(self, net: Network) -> float:
        return float(net.L)  # XLA compiles the unrolled layers: time grows with L

    def prepare(self, problem: Problem) -> GradFn:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        acts = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}
        loss = written_for(problem, acts[problem.net.activation], lambda z: jax.nn.logsumexp(z, -1))
        X, target, rows = jnp.asarray(problem.X), jnp.asarray(problem.target), jnp.arange(problem.B)

        def f(theta):
            return loss(problem.net.layers(theta), X, target, rows)

        both = jax.jit(lambda theta: (f(theta), getattr(jax, self.transform)(f)(theta)))
        theta0 = jnp.asarray(problem.theta0)
        jax.block_until_ready(both(theta0))  # compile now, untimed

        def grad_fn(theta: Array) -> tuple[float, Array]:
            value, grad = jax.block_until_ready(both(theta))
            return float(value), np.asarray(grad)

        # XLA's own count of what one call allocates beyond its arguments: its CPU runtime
        # keeps buffers between calls, which the resident-memory peak then misses
        used = both.lower(theta0).compile().memory_analysis()
        grad_fn.stats = {"allocator_bytes": used.temp_size_in_bytes + used.output_size_in_bytes}
        return grad_fn


class JaxGrad(_Jax):
    name = "jax-grad"
    description = "JAX jit(grad): reverse mode compiled by XLA, float64."
    transform = "grad"

    def cost(self, net: Network) -> float:
        return reverse_mode_cost(net)

    def memory(self, net: Network, B: int) -> float:
        return reverse_mode_memory(net, B)


class JaxForward(_Jax):
    name = "jax-forward"
    description = "JAX jit(jacfwd): forward mode over all P dense tangents, compiled by XLA."
    transform = "jacfwd"

    def cost(self, net: Network) -> float:
        return dense_forward_cost(net)

    def memory(self, net: Network, B: int) -> float:
        return dense_forward_memory(net, B)
