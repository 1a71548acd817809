"""The network of the question: L dense N×N layers on one flat parameter vector θ.

Shapes: a batch of inputs is ``(B, N)``; layer ``l`` maps ``h ↦ h @ W_l + b_l`` with
``W_l`` of shape ``(N, N)``; an activation follows every layer but the last, whose output
is the logits. θ holds the layers in order, each as ``W_l.ravel()`` then ``b_l``, so
``P = L·(N² + N)`` with bias and ``L·N²`` without.

Every function here also accepts *stacks*: leading axes on θ (``(K, P)``) or on an
activation (``(K, B, N)``) broadcast through, which is how the batched methods evaluate
many parameter vectors in one call. Everything is written so complex inputs work too
(complex step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity next to its own derivative.

    ``df(a)`` is ``f'(z)`` written in terms of the output ``a = f(z)`` (as micrograd does
    for tanh), so the backward and tangent passes need only the stored activations.
    """

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    analytic: bool = True


def _relu(z: Array) -> Array:
    # np.maximum compares complex numbers lexicographically; compare the real part.
    return np.where(z.real > 0, z, 0)


def _sigmoid(z: Array) -> Array:
    # 1/(1+exp(-z)) overflows for large -z; the tanh form is stable, also for complex z.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", np.tanh, lambda a: 1.0 - a * a),
    "relu": Activation("relu", _relu, lambda a: (a > 0).astype(a.dtype), analytic=False),
    "sigmoid": Activation("sigmoid", _sigmoid, lambda a: a * (1.0 - a)),
}


@dataclass(frozen=True)
class Loss:
    """A loss on logits ``Z (..., B, N)`` averaged over the batch, with ``dL/dZ``."""

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]


def row_sum(A: Array) -> Array:
    """Σ over the last axis as a matrix–vector product: BLAS beats numpy's reduction on
    the short rows (N entries) of a big stack several times over."""
    return A @ np.ones(A.shape[-1], A.real.dtype)


def row_max(A: Array) -> Array:
    """max over the last axis. On short rows an elementwise sweep over the N columns is
    several times faster than numpy's reduction; on long rows the reduction wins."""
    if A.shape[-1] > 16:
        return A.max(axis=-1)
    m = A[..., 0].copy()
    for j in range(1, A.shape[-1]):
        np.maximum(m, A[..., j], out=m)
    return m


def logsumexp(Z: Array) -> Array:
    """log Σ exp over the last axis, shifted by the real max so it is stable for complex Z."""
    m = row_max(Z.real)
    return m + np.log(row_sum(np.exp(Z - m[..., None])))


def _picked(Z: Array, y: Array) -> Array:
    return Z[..., np.arange(y.shape[0]), y]


def _ce_value(Z: Array, y: Array) -> Array:
    return (logsumexp(Z) - _picked(Z, y)).mean(axis=-1)


def _ce_grad(Z: Array, y: Array) -> Array:
    G = np.exp(Z - logsumexp(Z)[..., None])  # softmax
    G[..., np.arange(y.shape[0]), y] -= 1.0
    return G / y.shape[0]


def _mse_value(Z: Array, T: Array) -> Array:
    D = Z - T
    return 0.5 * row_sum(D * D).mean(axis=-1)


def _mse_grad(Z: Array, T: Array) -> Array:
    return (Z - T) / T.shape[0]


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", _ce_value, _ce_grad),
    "mse": Loss("mse", _mse_value, _mse_grad),
}

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Layer:
    """One dense layer's parameters: zero-copy views into θ (``b`` is None without bias)."""

    W: Array
    b: Array | None


def dense(h: Array, layer: Layer) -> Array:
    """``h @ W + b``. A stack of inputs against one shared W is folded into a single
    ``(K·B, N) @ (N, N)`` product, which BLAS runs faster than K small ones."""
    W, b = layer.W, layer.b
    if W.ndim == 2 and h.ndim > 2:
        z = (h.reshape(-1, h.shape[-1]) @ W).reshape(*h.shape[:-1], W.shape[-1])
    else:
        z = h @ W
    if b is not None:
        z += b[..., None, :]  # z is a fresh product: add in place, no temporary
    return z


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Network:
    """The architecture: width N, depth L, activation, loss, bias on/off and dtype."""

    N: int
    L: int
    activation: str = "tanh"
    loss: str = "cross_entropy"
    bias: bool = True
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _positive_int("N", self.N)
        _positive_int("L", self.L)
        for field, value, choices in (
            ("activation", self.activation, ACTIVATIONS),
            ("loss", self.loss, LOSSES),
            ("dtype", self.dtype, DTYPES),
        ):
            if value not in choices:
                raise ValueError(f"unknown {field} {value!r}; choose from {', '.join(choices)}")

    @property
    def layer_size(self) -> int:
        """Parameters per layer: N² weights plus N biases when bias is on."""
        return self.N * self.N + (self.N if self.bias else 0)

    @property
    def P(self) -> int:
        """Total parameter count, L·(N² + N) with bias, L·N² without."""
        return self.L * self.layer_size

    @property
    def itemsize(self) -> int:
        """Bytes per number in this network's dtype."""
        return np.dtype(self.dtype).itemsize

    @property
    def act(self) -> Activation:
        return ACTIVATIONS[self.activation]

    @property
    def loss_fn(self) -> Loss:
        return LOSSES[self.loss]

    def layer_slice(self, l: int) -> slice:
        """Where layer l's parameters sit in θ."""
        return slice(l * self.layer_size, (l + 1) * self.layer_size)

    def layer_of(self, i: Array) -> Array:
        """The layer index of each flat parameter index i."""
        return np.asarray(i) // self.layer_size

    def as_layer(self, block: Array) -> Layer:
        """Zero-copy view of one layer's block ``(..., layer_size)``: W ``(..., N, N)``,
        b ``(..., N)``."""
        N = self.N
        W = block[..., : N * N].reshape(*block.shape[:-1], N, N)
        return Layer(W, block[..., N * N :] if self.bias else None)

    def layers(self, theta: Array) -> list[Layer]:
        """Zero-copy views of θ ``(..., P)`` as its L layers."""
        return [self.as_layer(theta[..., self.layer_slice(l)]) for l in range(self.L)]

    def init(self, rng: np.random.Generator, scale: float = 1.0) -> Array:
        """Random θ: W ~ 𝒩(0, scale²/N) (variance-preserving), b ~ 𝒩(0, (0.1·scale)²)."""
        theta = np.empty(self.P, dtype=self.dtype)
        for layer in self.layers(theta):
            layer.W[...] = rng.normal(0.0, scale / np.sqrt(self.N), layer.W.shape)
            if layer.b is not None:
                layer.b[...] = rng.normal(0.0, 0.1 * scale, layer.b.shape)
        return theta

    def run(self, layers: Sequence[Layer], h: Array, start: int = 0) -> Array:
        """Logits from ``layers[start:]`` applied to ``h``, the input of layer ``start``."""
        for l in range(start, self.L):
            z = dense(h, layers[l])
            h = z if l == self.L - 1 else self.act.f(z)
        return h

    def inputs(
        self, layers: Sequence[Layer], X: Array, start: int = 0, stop: int | None = None
    ) -> list[Array]:
        """The input of every layer, ``[X, h_1, …, h_{L-1}]``: the shared prefix that a
        perturbation in layer l does not change. With ``start``/``stop``, the inputs
        ``[h_start, …, h_{stop-1}]`` of layers ``start … stop−1`` from ``X = h_start``
        (``stop`` ≤ L, so every one is an activation)."""
        hs = [X]
        for l in range(start, (self.L if stop is None else stop) - 1):
            hs.append(self.act.f(dense(hs[-1], layers[l])))
        return hs
