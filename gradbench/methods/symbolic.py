"""Symbolic differentiation of the whole network: the student's idea, done literally.

The loss of ONE sample is built as a SymPy expression in the P weight symbols, with the
sample's inputs ``x_i`` and targets ``t_j`` as symbols too (one-hot targets for
cross-entropy), so the expression does not grow with the batch::

    z = f(… f(x·W_1 + b_1) …)·W_L + b_L                       logits, N of them
    ℓ = m + log Σ_j exp(z_j − m) − Σ_j t_j z_j                  cross-entropy
    ℓ = ½ Σ_j (z_j − t_j)²                                      MSE

``sympy.diff`` then gives ∂ℓ/∂θ_k for every weight — no hand-written chain rule — and
``lambdify`` compiles them to numpy. The timed call evaluates the compiled expressions
with the inputs as batch arrays and averages over the batch: ∇L = (1/B) Σ_b ∇ℓ(x_b, t_b).

The shift ``m`` of the stable log-sum-exp is a symbol of its own while differentiating
(∂ℓ/∂m ≡ 0, so holding it fixed changes no derivative); the compiled function sets it to
``max_j z_j`` of each sample before anything uses it.

Two methods share one derivation per network (cached):

* ``symbolic`` compiles the P derivatives as SymPy writes them: trees in which every
  occurrence of a shared piece (a hidden activation, the softmax denominator) is written
  out, and evaluated, again. Their size grows far faster than P.
* ``symbolic-cse`` compiles the same derivatives after ``sympy.cse`` over the loss and all
  P derivatives together, so each shared piece is computed once — which is what reverse
  mode does by construction. ``sympy.cse`` is called directly (not ``lambdify(cse=True)``,
  which calls the same function) so the operation count of exactly what is compiled can be
  recorded and the shift ``m`` placed among the shared pieces.

relu is a SymPy function whose derivative is ``Heaviside(z, 0)``, so f'(0) = 0, backprop's
convention. sigmoid is ``½(1 + tanh(z/2))``, the model's stable form.

Measured (tanh, cross-entropy, bias): the P raw derivatives are 5× the loss's operations
at N = 2, L = 1, 40× at (4, 2) and 124× at (8, 2); after CSE, 1.1–1.5×. Deriving and
compiling is the price: its CPU time grows linearly with the raw size.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from gradbench.methods.base import GradFn, Method
from gradbench.model import Array, Network
from gradbench.problem import Problem

Expr = sp.Expr
Replacements = list[tuple[sp.Symbol, Expr]]

SHIFT = sp.Symbol("m")  # the log-sum-exp shift, max_j z_j of each sample


class Relu(sp.Function):
    """max(z, 0) as one SymPy function that knows its derivative, Heaviside(z, 0): the step
    with value 0 at 0, backprop's convention. (``Piecewise`` would differentiate too, but
    nested in conditions it makes the numpy printer call ``simplify_logic``, minutes even
    at N = 2, L = 3.)"""

    def fdiff(self, argindex: int = 1) -> Expr:
        return sp.Heaviside(self.args[0], 0)

    def _numpycode(self, printer: NumPyPrinter) -> str:
        return f"{printer._module_format('numpy.maximum')}({printer._print(self.args[0])}, 0)"


ACTIVATIONS: dict[str, Callable[[Expr], Expr]] = {
    "tanh": sp.tanh,
    "sigmoid": lambda z: sp.Rational(1, 2) * (1 + sp.tanh(z / 2)),
    "relu": Relu,
}


def _cross_entropy(z: Sequence[Expr], t: Sequence[Expr]) -> Expr:
    """ℓ = m + log Σ exp(z_j − m) − Σ t_j z_j (t one-hot): the max-shifted, stable form."""
    return (
        SHIFT
        + sp.log(sp.Add(*[sp.exp(zj - SHIFT) for zj in z]))
        - sp.Add(*[tj * zj for tj, zj in zip(t, z, strict=True)])
    )


def _mse(z: Sequence[Expr], t: Sequence[Expr]) -> Expr:
    """ℓ = ½ Σ (z_j − t_j)²."""
    return sp.Rational(1, 2) * sp.Add(*[(zj - tj) ** 2 for zj, tj in zip(z, t, strict=True)])


LOSSES: dict[str, Callable[[Sequence[Expr], Sequence[Expr]], Expr]] = {
    "cross_entropy": _cross_entropy,
    "mse": _mse,
}


@dataclasses.dataclass(frozen=True)
class Derivation:
    """The loss of one sample, its P derivatives, and their common subexpressions.

    ``cse`` is ``sympy.cse`` of ``[*logits, loss, *derivatives]``: the replacements (shared
    pieces, in order) and the reduced expressions. Sizes are ``sympy.count_ops``, which
    counts an expression as the tree that the printer writes out.
    """

    weights: tuple[sp.Symbol, ...]
    inputs: tuple[sp.Symbol, ...]
    targets: tuple[sp.Symbol, ...]
    logits: tuple[Expr, ...]
    loss: Expr
    derivatives: tuple[Expr, ...]
    cse: tuple[Replacements, list[Expr]]
    derive_s: float  # build the expression and differentiate it
    cse_s: float

    @property
    def args(self) -> list:
        """The compiled function's arguments: inputs, targets (batch arrays) and θ."""
        return [list(self.inputs), list(self.targets), list(self.weights)]

    @functools.cached_property
    def ops_forward(self) -> int:
        return int(sp.count_ops(self.loss))

    @functools.cached_property
    def ops_derivatives(self) -> int:
        return sum(int(sp.count_ops(d)) for d in self.derivatives)

    @functools.cached_property
    def ops_cse(self) -> int:
        replacements, reduced = self.cse
        shared = sum(int(sp.count_ops(value)) for _, value in replacements)
        return shared + sum(int(sp.count_ops(e)) for e in reduced[len(self.logits) :])


def _weights(net: Network, l: int) -> tuple[list[list[sp.Symbol]], list[sp.Symbol]]:
    """Layer l's symbols W (N×N) and b (N, empty without bias), in θ's layout."""
    N = net.N
    W = [[sp.Symbol(f"w_{l}_{i}_{j}") for j in range(N)] for i in range(N)]
    b = [sp.Symbol(f"b_{l}_{j}") for j in range(N)] if net.bias else []
    return W, b


@functools.cache
def _derive(net: Network) -> Derivation:
    t0 = time.perf_counter()
    x = sp.symbols(f"x_:{net.N}")
    t = sp.symbols(f"t_:{net.N}")
    weights: list[sp.Symbol] = []
    h: list[Expr] = list(x)
    for l in range(net.L):
        W, b = _weights(net, l)
        weights += [w for row in W for w in row] + b
        z = [sp.Add(*[h[i] * W[i][j] for i in range(net.N)], *b[j : j + 1]) for j in range(net.N)]
        h = z if l == net.L - 1 else [ACTIVATIONS[net.activation](zj) for zj in z]
    loss = LOSSES[net.loss](h, t)
    derivatives = tuple(sp.diff(loss, w) for w in weights)
    t1 = time.perf_counter()
    cse = sp.cse([*h, loss, *derivatives], symbols=sp.numbered_symbols("s"), order="none")
    return Derivation(
        tuple(weights), x, t, tuple(h), loss, derivatives, cse, t1 - t0, time.perf_counter() - t1
    )


def derivation(net: Network) -> Derivation:
    """The derivation for this network, done once per architecture (dtype does not matter)
    and shared by ``symbolic`` and ``symbolic-cse``."""
    return _derive(dataclasses.replace(net, dtype="float64"))


def _depends_on_shift(replacements: Replacements) -> set[sp.Symbol]:
    """The replacement symbols whose value needs m, directly or through earlier ones."""
    needs: set[sp.Symbol] = set()
    for symbol, value in replacements:
        if value.free_symbols & (needs | {SHIFT}):
            needs.add(symbol)
    return needs


def shifted(d: Derivation, replacements: Replacements, logits: Sequence[Expr]) -> Replacements:
    """``replacements`` with ``m = max_j z_j`` inserted after the pieces that do not need m
    and before those that do (for MSE, which has no m, unchanged)."""
    if SHIFT not in d.loss.free_symbols:
        return replacements
    needs = _depends_on_shift(replacements)
    m = sp.Max(*logits, evaluate=False) if len(logits) > 1 else logits[0]
    return [
        *(r for r in replacements if r[0] not in needs),
        (SHIFT, m),
        *(r for r in replacements if r[0] in needs),
    ]


PRINTER_SETTINGS = {
    "fully_qualified_modules": False,
    "inline": True,
    "allow_unknown_functions": True,
    "user_functions": {},
    "order": "none",  # print terms as stored: sorting them is most of the printing time
}


def compile_numpy(args: list, replacements: Replacements, outputs: list[Expr]) -> Callable:
    """``lambdify`` to numpy: the replacements become local assignments, then the outputs
    are returned as a list."""
    return sp.lambdify(
        args,
        outputs,
        modules="numpy",
        printer=NumPyPrinter(PRINTER_SETTINGS),
        use_imps=False,
        cse=lambda _: (replacements, outputs),
    )


def batch_targets(problem: Problem) -> Array:
    """The target as the per-sample symbols see it, ``(B, N)`` in the problem's dtype:
    one-hot class labels for cross-entropy, the teacher's logits for MSE."""
    if problem.net.loss == "cross_entropy":
        return np.eye(problem.net.N, dtype=problem.net.dtype)[problem.target]
    return np.asarray(problem.target, dtype=problem.net.dtype)


def program(d: Derivation, cse: bool) -> tuple[Replacements, list[Expr]]:
    """What is compiled: shared pieces (assigned first) and the outputs ``[loss, *∂ℓ/∂θ]``.
    Without CSE the only shared piece is the shift m; with it, every common subexpression."""
    if not cse:
        return shifted(d, [], d.logits), [d.loss, *d.derivatives]
    replacements, reduced = d.cse
    n = len(d.logits)
    return shifted(d, replacements, reduced[:n]), reduced[n:]


@functools.cache
def _compile(net: Network, cse: bool) -> tuple[Callable, float]:
    d = derivation(net)
    t0 = time.perf_counter()
    f = compile_numpy(d.args, *program(d, cse))
    return f, time.perf_counter() - t0


def compiled(net: Network, cse: bool) -> tuple[Callable, float]:
    """The compiled function ``f(inputs, targets, θ) -> [ℓ, ∂ℓ/∂θ_1, …]`` (per-sample
    arrays) and the seconds its compilation took, once per architecture and variant."""
    return _compile(dataclasses.replace(net, dtype="float64"), cse)


# --- cost bookkeeping: operation counts of one sample, predicted without deriving ---------


@functools.cache
def _pieces(activation: str, loss: str, N: int) -> tuple[int, int, int]:
    """Ops of one activation, ops of the loss on atomic logits, uses of each logit in it."""
    z, t = sp.symbols(f"z_:{N}"), sp.symbols(f"t_:{N}")
    value = LOSSES[loss](z, t)
    a = sp.count_ops(ACTIVATIONS[activation](z[0]))
    return int(a), int(sp.count_ops(value)), value.count(z[0])


def forward_ops(net: Network) -> float:
    """Operations of one forward pass with each piece computed once, per sample:
    L·N·(2N − 1 + bias) for the layers (N products and N − 1 sums per neuron, + bias),
    (L − 1)·N activations, and the loss."""
    a, loss, _ = _pieces(net.activation, net.loss, net.N)
    N, L, b = net.N, net.L, int(net.bias)
    return L * N * (2 * N - 1 + b) + (L - 1) * N * a + loss


def logit_tree_ops(net: Network) -> float:
    """Size of one logit written out as a tree, S_L: S_1 = 2N − 1 + bias, and
    S_k = N·(S_{k−1} + a + 1) + N − 1 + bias (N products of a weight and an activation of a
    layer-(k−1) pre-activation, N − 1 sums, + bias). It grows like N^L."""
    a, _, _ = _pieces(net.activation, net.loss, net.N)
    N, b = net.N, int(net.bias)
    S = 2 * N - 1 + b
    for _ in range(net.L - 1):
        S = N * (S + a + 1) + N - 1 + b
    return float(S)


def tree_ops(net: Network) -> float:
    """``sympy.count_ops`` of the loss expression: the loss with every use of each of the
    N logits written out (exact where the activation does not distribute a constant over
    its argument, as sigmoid's z/2 does)."""
    _, loss, uses = _pieces(net.activation, net.loss, net.N)
    return uses * net.N * logit_tree_ops(net) + loss


def derivative_ops(net: Network) -> float:
    """Predicted ``count_ops`` of all P raw derivatives: (0.5 + 0.7/N)·P·(L + 1)/2 ·
    tree_ops. A weight of layer l sits in every path to the loss below it, and its
    derivative writes out the loss tree about (L − l + 1) times; fitted to measured counts
    (tanh, cross-entropy, bias; N ≤ 8, L ≤ 4) within ±10 %."""
    return (0.5 + 0.7 / net.N) * net.P * (net.L + 1) / 2 * tree_ops(net)


def cse_ops(net: Network) -> float:
    """Predicted ops after CSE: (2.4 + 0.85·(L − 1)·N) forward passes. Not reverse mode's
    ~3: SymPy writes each first-layer derivative with x_i inside every term of its sum
    over downstream units, so that sum is not shared across i (measured, ±15 %)."""
    return (2.4 + 0.85 * (net.L - 1) * net.N) * forward_ops(net)


def cse_temporaries(net: Network) -> float:
    """Predicted number of CSE replacements (arrays of B, all alive until the return):
    3N²·L(L − 1)/2 + 2N·L + 3, fitted to measured counts (exact for N ≤ 8, L ≤ 2 and
    N = 2, L ≤ 4; 15 % low at N = L = 3)."""
    N, L = net.N, net.L
    return 3 * N * N * L * (L - 1) / 2 + 2 * N * L + 3


PREPARE_EXPONENT = 0.76  # set-up CPU time ∝ (raw derivative ops)^0.76, measured


class Symbolic(Method):
    name = "symbolic"
    kind = "exact"
    description = (
        "sympy.diff of the whole network's loss by every weight, lambdified to numpy; "
        "derivatives evaluated as written (shared pieces recomputed)."
    )
    cse: ClassVar[bool] = False

    def evaluated_ops(self, net: Network) -> float:
        """Ops the compiled function performs per sample: the loss, the P derivatives and,
        for cross-entropy, the N logits that give the shift m."""
        shift = net.N * logit_tree_ops(net) if net.loss == "cross_entropy" else 0.0
        return tree_ops(net) + derivative_ops(net) + shift

    def cost(self, net: Network) -> float:
        """Operations per sample of the compiled function ÷ those of one forward pass. Each
        operation is a numpy call on a length-B array, so the measured time ratio is larger
        than this count: numpy's per-call overhead against one BLAS product per layer."""
        return self.evaluated_ops(net) / forward_ops(net)

    def prepare_cost(self, net: Network) -> float:
        """Derivation, CSE and compilation all walk the raw derivative trees. Their CPU time,
        measured in fresh processes for 4.5 k to 307 k raw ops (9 networks up to N = 16,
        L = 4), is ∝ ops^(0.76 ± 0.014) (log–log fit, residuals ≤ 9 %); below ~3 k ops a
        fixed ~0.3 s dominates."""
        return derivative_ops(net) ** PREPARE_EXPONENT

    def temporaries(self, net: Network) -> float:
        return 0.0

    def memory(self, net: Network, B: int) -> float:
        """Bytes: the P + 1 per-sample outputs, their stacked copy, the CSE temporaries
        (each of B), the one-hot targets (N·B) and the gradient."""
        item = np.dtype(net.dtype).itemsize
        return item * (B * (2 * (net.P + 1) + self.temporaries(net) + net.N) + net.P)

    def prepare(self, problem: Problem) -> GradFn:
        d = derivation(problem.net)
        f, compile_s = compiled(problem.net, self.cse)
        inputs, targets = problem.X.T, batch_targets(problem).T
        ones = np.ones(problem.B, dtype=problem.net.dtype)

        def grad_fn(theta: Array) -> tuple[float, Array]:
            """(1/B)·Σ_b [ℓ, ∇ℓ](x_b, t_b): a derivative without x in it is a scalar,
            broadcast against the batch."""
            means = np.mean(np.broadcast_arrays(ones, *f(inputs, targets, theta))[1:], axis=1)
            return float(means[0]), means[1:].astype(theta.dtype)

        grad_fn.stats = {
            "ops_forward": d.ops_forward,
            "ops_derivatives": d.ops_derivatives,
            "ops_cse": d.ops_cse,
            # set-up without the caches: what this cell costs on its own
            "prepare_s": d.derive_s + d.cse_s + compile_s,
        }
        return grad_fn


class SymbolicCSE(Symbolic):
    name = "symbolic-cse"
    description = (
        "symbolic's derivatives after sympy.cse across the loss and all P derivatives: "
        "each shared piece computed once."
    )
    cse = True

    def evaluated_ops(self, net: Network) -> float:
        return cse_ops(net)

    def temporaries(self, net: Network) -> float:
        return cse_temporaries(net)
