"""The gradient-method contract, written once. Built-in methods follow it exactly as a
plugin does; the harness never learns any method's name.

A method is a small class::

    class MyMethod(Method):
        name = "my-method"            # unique, used on the command line and in the CSV
        kind = "approximate"          # "exact" | "approximate" | "stochastic"
        description = "One line a reader of `gradbench list` understands."
        requires = ("torch",)         # optional: modules that must import, else unavailable

        def cost(self, net):          # forward-pass equivalents of one gradient
            return 2 * net.P

        def prepare(self, problem):   # set-up, NOT timed: allocate, compile, precompute
            def grad_fn(theta):       # timed: one call = one gradient
                return loss, gradient # float, ndarray of shape (P,) and θ's dtype
            return grad_fn

``prepare(problem)`` may read everything on the :class:`~gradbench.problem.Problem`
(``net``, ``X``, ``target``, ``theta0``, ``loss``, ``layers``) and may allocate buffers or
compile; it must not assume θ: the returned ``grad_fn(θ)`` is called at many points. The
loss it returns is ``problem.loss(θ)`` (to rounding) and the gradient is a fresh array of
``problem.P`` finite values, laid out like θ. Stochastic methods seed themselves from
``problem.seed`` in ``prepare`` and draw fresh randomness on every call.

A method that only handles some networks declines a cell by returning a reason from
:meth:`Method.supports`; one that needs an optional package lists it in ``requires`` and
is then shown as unavailable, with the reason, until the package is installed.

The data is read-only: ``problem.X``, ``problem.target`` and ``problem.theta0`` cannot be
written, and the harness hands ``grad_fn`` a read-only θ. A method that needs scratch
space copies (``theta.copy()``); one that writes into them fails in its own cell.

Models and checks, each optional with a default on :class:`Method` (a plugin that leaves
one out still runs; :func:`ask` answers for a plugin that does not subclass Method):

``cost(net) -> float`` (required)
    Forward-pass equivalents of one gradient, counting the work actually done: *layer
    steps* ÷ L, where one layer step is one ``(B, N) @ (N, N)`` product with its
    elementwise work, and one forward pass is L of them. A method that exploits structure
    (sparse unit tangents, shared prefixes) counts what it really computes and says so in
    its description.
``memory(net, B) -> float | None``
    Bytes one gradient needs beyond θ and the data (stored activations, buffers, the
    gradient itself) at batch size B. None: no model; the sweep then cannot skip the
    cell on memory and runs it.
``prepare_cost(net) -> float | None``
    Relative cost of ``prepare`` (any unit: only ratios between sizes of one method are
    used, to project ``prepare_s``). None: negligible.
``tolerance(dtype) -> float | None``
    The largest max ρ (see :func:`rho`) against the reference gradient that still counts
    as correct; beyond it a cell is ``wrong``. Defaults to ``TOLERANCES[kind][dtype]``;
    a method overrides it from its own measured bounds. None: not checked per cell
    (stochastic estimators are tested for unbiasedness instead).
``grad_fn.stats``
    ``prepare`` may attach a dict of extra per-problem numbers to the function it
    returns, e.g. ``{"ops_forward": …, "ops_derivatives": …, "ops_cse": …}``; the sweep
    copies the keys that are columns of gradients.csv into the cell's row.

:func:`gradbench.testing.check_grads` applies all of this to one method and problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from gradbench.errors import GradbenchError
from gradbench.model import Array, Network
from gradbench.problem import Problem

GradFn = Callable[[Array], tuple[float, Array]]
KINDS = ("exact", "approximate", "stochastic")

# The default largest max ρ per kind and dtype, against float64 backprop at the same θ.
# exact: a few ε of rounding accumulated through the layers; measured worst (all
# activations, losses, bias on/off, N ≤ 256, L ≤ 8): ~1e-15 in float64 and ~4e-7 in
# float32. approximate: the bound of central differences (the accurate common case);
# forward differences override it with their own. Measured bounds beside each method.
TOLERANCES: dict[str, dict[str, float | None]] = {
    "exact": {"float64": 1e-8, "float32": 1e-5},
    "approximate": {"float64": 1e-6, "float32": 1e-2},
    "stochastic": {"float64": None, "float32": None},
}


class Method:
    """Base class of every gradient method; see the module docstring for the contract."""

    name: ClassVar[str]
    kind: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()

    def cost(self, net: Network) -> float:
        """Theoretical cost of one gradient, in forward-pass equivalents."""
        raise NotImplementedError

    def supports(self, problem: Problem) -> str | None:
        """None when the method handles this problem, else the reason it declines."""
        return None

    def note(self, problem: Problem) -> str:
        """A caveat on this problem's result worth printing beside it (empty if none)."""
        return ""

    def prepare(self, problem: Problem) -> GradFn:
        """Untimed set-up; returns ``grad_fn(θ) -> (loss, gradient)``."""
        raise NotImplementedError

    def memory(self, net: Network, B: int) -> float | None:
        """Bytes one gradient needs beyond θ and the data; None = no model."""
        return None

    def prepare_cost(self, net: Network) -> float | None:
        """Relative cost of ``prepare`` (ratios between sizes only); None = negligible."""
        return None

    def tolerance(self, dtype: str) -> float | None:
        """Largest max ρ that counts as correct; None = not checked per cell."""
        return TOLERANCES[self.kind][dtype]


def ask(method: object, hook: str, *args: object) -> object:
    """A contract hook's answer, e.g. ``ask(m, "memory", net, B)``: the method's own, or
    :class:`Method`'s default for a plugin object that does not define the hook."""
    own = getattr(method, hook, None)
    return own(*args) if callable(own) else getattr(Method, hook)(method, *args)


def check_method(method: object, origin: str) -> None:
    """Raise a GradbenchError naming the plugin and what it lacks, if it breaks the contract."""
    for attr in ("name", "kind", "description"):
        value = getattr(method, attr, None)
        if not isinstance(value, str) or not value:
            raise GradbenchError(f"plugin {origin}: missing or empty '{attr}' (a string)")
    if method.kind not in KINDS:
        raise GradbenchError(
            f"plugin {origin}: kind {method.kind!r} is not one of {', '.join(KINDS)}"
        )
    for attr in ("cost", "prepare"):
        if not callable(getattr(method, attr, None)):
            raise GradbenchError(f"plugin {origin}: '{attr}' must be a method")


def check_result(result: object, problem: Problem) -> tuple[float, Array]:
    """Validate what a ``grad_fn`` returned; raise a GradbenchError saying what is wrong."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise GradbenchError("grad_fn must return (loss, gradient)")
    loss, grad = result
    grad = np.asarray(grad)
    if grad.shape != (problem.P,):
        raise GradbenchError(f"gradient has shape {grad.shape}, expected ({problem.P},)")
    if grad.dtype != problem.theta0.dtype:
        raise GradbenchError(
            f"gradient has dtype {grad.dtype}, expected θ's dtype {problem.theta0.dtype}"
        )
    if not np.isfinite(loss):
        raise GradbenchError(f"loss is not finite ({loss})")
    bad = np.size(grad) - np.count_nonzero(np.isfinite(grad))
    if bad:
        raise GradbenchError(f"gradient has {bad} non-finite entries (NaN or inf)")
    return float(loss), grad


def rho(g: Array, g_ref: Array) -> Array:
    """Elementwise relative error ρ = |g − g*| / max(1, |g| + |g*|)."""
    g, g_ref = np.asarray(g, dtype=np.float64), np.asarray(g_ref, dtype=np.float64)
    return np.abs(g - g_ref) / np.maximum(1.0, np.abs(g) + np.abs(g_ref))
