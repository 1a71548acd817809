"""One gradient checker for every caller (``gradbench check``, the sweep's validation
call, the generic contract test), in the spirit of HIPS autograd's ``check_grads``.

``check_grads(method, problem)`` prepares the method, calls its ``grad_fn`` once on a
read-only θ and compares the result with a reference gradient g* (by default backprop's,
computed in float64 on the same data and θ) through the elementwise error::

    ρᵢ = |gᵢ − g*ᵢ| / max(1, |gᵢ| + |g*ᵢ|)        grad_error = max ρ, grad_error_mean = mean ρ

The verdict is ``error`` when the call fails or breaks the contract (shape, dtype,
non-finite values, writing into read-only data), ``wrong`` when the returned loss is not
``problem.loss(θ)`` to rounding or ``grad_error`` exceeds the method's tolerance
(``method.tolerance(dtype)``), and ``ok`` otherwise. A method without a tolerance (the
stochastic ones) is never ``wrong`` for its gradient; its errors are still reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gradbench.errors import one_line
from gradbench.methods.backprop import Backprop
from gradbench.methods.base import GradFn, ask, check_result, rho
from gradbench.model import Array
from gradbench.problem import Problem, read_only

# The loss a method returns must be problem.loss(θ) to this relative precision: a few
# rounding errors of a forward pass summed in another order (measured ≤ 1e-14 in float64
# and ≤ 1e-6 in float32 for every built-in method, torch and jax included).
LOSS_TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


@dataclass(frozen=True)
class Verdict:
    """What :func:`check_grads` found. Numbers are NaN (and ``grad`` None) on ``error``."""

    status: str  # "ok" | "wrong" | "error"
    reason: str
    grad_error: float  # max ρ against the reference
    grad_error_mean: float  # mean ρ
    cosine: float  # cos∠(g, g*)
    tolerance: float | None  # the max ρ allowed; None: not checked
    loss: float
    grad: Array | None


def in_float64(problem: Problem) -> Problem:
    """The same problem (data, θ₀, targets) in float64, for a float32 problem's reference."""
    if problem.net.dtype == "float64":
        return problem
    target = problem.target
    return replace(
        problem,
        net=replace(problem.net, dtype="float64"),
        X=problem.X.astype(np.float64),
        target=target.astype(np.float64) if np.issubdtype(target.dtype, np.floating) else target,
        theta0=problem.theta0.astype(np.float64),
    )


def reference_gradient(problem: Problem, theta: Array) -> Array:
    """Backprop's gradient at θ, in float64 on the float64 copy of the problem."""
    exact = in_float64(problem)
    return Backprop().prepare(exact)(read_only(theta.astype(np.float64)))[1]


def cosine(g: Array, g_ref: Array) -> float:
    """cos∠(g, g*) = g·g* / (‖g‖‖g*‖), NaN when either is zero."""
    g, g_ref = np.asarray(g, np.float64), np.asarray(g_ref, np.float64)
    norms = np.linalg.norm(g) * np.linalg.norm(g_ref)
    return float(g @ g_ref / norms) if norms > 0 else math.nan


def _failure(exc: Exception) -> str:
    if isinstance(exc, ValueError) and "read-only" in str(exc):
        return f"grad_fn wrote into read-only data (θ, problem.X or problem.target): {exc}"
    return one_line(exc)


def check_grads(
    method: object,
    problem: Problem,
    theta: Array | None = None,
    reference: Array | None = None,
    *,
    grad_fn: GradFn | None = None,
) -> Verdict:
    """Check one gradient of ``method`` on ``problem`` at θ (default θ₀) against
    ``reference`` (default: :func:`reference_gradient`). Pass ``grad_fn`` to reuse an
    already prepared function (so that ``prepare`` is not run twice)."""
    dtype = problem.theta0.dtype
    theta = problem.theta0 if theta is None else read_only(np.array(theta, dtype=dtype))
    tolerance = ask(method, "tolerance", problem.net.dtype)
    try:
        grad_fn = grad_fn or method.prepare(problem)
        loss, grad = check_result(grad_fn(theta), problem)
    except Exception as exc:
        nan = math.nan
        return Verdict("error", _failure(exc), nan, nan, nan, tolerance, nan, None)
    g_ref = reference_gradient(problem, theta) if reference is None else reference
    err = rho(grad, g_ref)
    expected = problem.loss(theta)
    status, reason = "ok", ""
    if abs(loss - expected) > LOSS_TOLERANCE[problem.net.dtype] * max(1.0, abs(expected)):
        status, reason = "wrong", f"loss {loss:.12g} is not problem.loss(θ) = {expected:.12g}"
    elif tolerance is not None and err.max() > tolerance:
        status = "wrong"
        reason = f"grad_error {err.max():.1e} > tolerance {tolerance:.0e}"
    worst, mean = float(err.max()), float(err.mean())
    return Verdict(status, reason, worst, mean, cosine(grad, g_ref), tolerance, loss, grad)
