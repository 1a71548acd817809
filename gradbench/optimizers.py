"""The optimizers ``gradbench train`` compares, each at its strongest and each seeded.

Every optimizer sees the problem only through an :class:`Oracle` (the training tracker),
which counts and caps what it evaluates: ``loss(θ)`` and ``losses(Θ)`` (a population, one
batched call) cost one forward pass per point; a gradient costs its method's cost model.
When the budget is spent the oracle raises, which ends every optimizer here — scipy's
included — without touching its internals, and never after evaluating past the budget.

With a gradient (``gd``, ``gd-layerwise``, ``lbfgs``):

* ``gd``: heavy-ball gradient descent, ``v ← μv + g``, ``θ ← θ − ηv`` (μ = 0.9; η tuned
  per size, see training.tune_lr);
* ``gd-layerwise``: the student's procedure (see :func:`layerwise_descent`);
* ``lbfgs``: scipy's L-BFGS-B, the quasi-Newton reference.

Gradient-free (no gradient is computed or passed anywhere):

* ``cma-es``: CMA-ES (Hansen) through the ``cma`` package, default population
  λ = 4 + ⌊3 ln P⌋, σ₀ = the spread of θ₀; full covariance up to P = 1000, the separable
  (diagonal, linear time and memory: ``CMA_diagonal=True``) variant beyond, as cma advises;
* ``es``: the antithetic evolution strategy of Salimans et al. (2017), see
  :func:`evolution_strategy`;
* scipy's ``nelder-mead`` (``adaptive=True``, its variant for many dimensions),
  ``powell``, ``cobyla`` (first step = the spread of θ₀), ``differential-evolution``
  (``polish=False``: the default polishes with L-BFGS-B) and ``dual-annealing``
  (``no_local_search=True``: the default runs L-BFGS-B), the last two searching the box
  θ₀ ± 6·spread, where spread is the standard deviation of θ₀'s entries (≈ 1/√N); 6 was
  the best of {3, 6, 10} for both on two tuning seeds at P = 6, 20 and 40 (a low loss
  needs large weights, which a narrow box forbids; a wide one spreads the population).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import cma
import numpy as np
from scipy import optimize

from gradbench.model import Array, dense
from gradbench.problem import Problem

UNLIMITED = 10**9  # scipy's iteration caps, lifted: the evaluation budget ends each run
MOMENTUM = 0.9
BOX_WIDTH = 6.0  # bounded searches: θ₀ ± this many spreads of θ₀
CMA_FULL_MAX_P = 1000  # full covariance up to here (a P×P matrix), separable beyond
DE_GENERATIONS = 20  # differential evolution's population is sized for ≥ 20 generations
ES_SIGMA = 0.1  # ES perturbation, in spreads of θ₀
ES_LR = 0.05  # ES Adam step, in spreads of θ₀


ValueAndGrad = Callable[[Array], tuple[float, Array]]


class Oracle(Protocol):
    """What an optimizer may ask: counted losses, and the budget it has."""

    problem: Problem
    budget: float

    def loss(self, theta: Array) -> float: ...

    def losses(self, thetas: Array) -> Array: ...

    # for optimizers that compute their own steps (the layer-wise update)
    due: bool  # the next evaluation seen is recorded

    def charge(self, cost: float) -> None: ...

    def seen(self, theta: Array, loss: float) -> float: ...

    def diagnose(self, grad_fn: ValueAndGrad, theta: Array) -> Array: ...

    def note(self, **values: float) -> None: ...


def spread(theta0: Array) -> float:
    """The standard deviation of θ₀'s entries: the scale every search is sized to."""
    return float(np.std(theta0)) or 1.0


# -- with a gradient ------------------------------------------------------------------------


def gradient_descent(oracle: Oracle, value_and_grad: ValueAndGrad, lr: float) -> None:
    """Heavy-ball gradient descent: v ← μv + g, θ ← θ − ηv."""
    theta = oracle.problem.theta0.copy()
    velocity = np.zeros_like(theta)
    while True:
        _, grad = value_and_grad(theta)
        velocity = MOMENTUM * velocity + grad
        theta = theta - lr * velocity


def layerwise_steps(L: int) -> int:
    """Layer products of one layer-wise step: L forward, then for layer l (from the top)
    L−1−l products forward through the updated layers above, as many back down, and one
    for its weight gradient: L + Σ_l (2(L−1−l) + 1) = L² + L. Backprop does 3L − 1."""
    return L * L + L


def layerwise_descent(oracle: Oracle, grad_fn: ValueAndGrad, lr: float, cost: float) -> None:
    """The student's update, as asked: compute the last layer's gradient and update that
    layer, then compute the previous layer's gradient through the already-updated layers
    above it, update it, and so on down to the first layer (heavy-ball momentum per
    layer, as in ``gd``).

    Each layer's gradient is exact for the network as it stands when it is taken
    (layers above updated, layers below not yet): block-coordinate descent from the top.
    It re-runs the updated layers above, so a step costs (L² + L) layer products against
    backprop's 3L − 1; ``cost`` is backprop's cost model scaled by that ratio. At L = 1 it
    is exactly ``gd``. When the step is recorded, the cosine between the layer-wise
    gradient and the whole gradient at the step's start (backprop, not counted) is noted.
    """
    p = oracle.problem
    net, X, target = p.net, p.X, p.target
    f, df, loss_fn = net.act.f, net.act.df, net.loss_fn
    theta = p.theta0.copy()
    velocity = np.zeros_like(theta)
    while True:
        oracle.charge(cost)
        start, due = theta.copy(), oracle.due
        layers = net.layers(theta)  # views: updating a layer updates θ
        hs = net.inputs(layers, X)
        Z = dense(hs[-1], layers[-1])
        step = np.empty_like(theta)
        for l in reversed(range(net.L)):
            above = [hs[l + 1]] if l + 1 < net.L else []
            for k in range(l + 1, net.L - 1):  # forward through the updated layers above
                above.append(f(dense(above[-1], layers[k])))
            out = dense(above[-1], layers[-1]) if above else Z
            dZ = loss_fn.grad(out, target)
            for k in reversed(range(l + 1, net.L)):
                dZ = (dZ @ layers[k].W.T) * df(above[k - l - 1])
            g = net.as_layer(step[net.layer_slice(l)])
            np.matmul(hs[l].T, dZ, out=g.W)
            if g.b is not None:
                dZ.sum(axis=0, out=g.b)
            block = net.layer_slice(l)
            velocity[block] = MOMENTUM * velocity[block] + step[block]
            theta[block] -= lr * velocity[block]
        if due:
            oracle.note(cosine=_cosine(step, oracle.diagnose(grad_fn, start)))
        oracle.seen(start, float(loss_fn.value(Z, target)))


def _cosine(a: Array, b: Array) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm else math.nan


def lbfgs(oracle: Oracle, value_and_grad: ValueAndGrad) -> None:
    """scipy's L-BFGS-B with every stopping tolerance off: the budget ends it."""
    optimize.minimize(
        value_and_grad,
        oracle.problem.theta0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": UNLIMITED, "maxfun": UNLIMITED, "ftol": 0.0, "gtol": 0.0},
    )


# -- gradient-free ---------------------------------------------------------------------------


def cma_es(oracle: Oracle) -> None:
    """CMA-ES by ask-and-tell; each population goes through the batched loss at once.
    Stopping rules that would end it before the budget are switched off."""
    p = oracle.problem
    options = {
        "seed": p.seed + 1,  # cma reads 0 as "seed from the clock"
        "CMA_diagonal": p.P > CMA_FULL_MAX_P,
        "verbose": -9,
        "verb_log": 0,
        "verb_disp": 0,
        "maxiter": math.inf,
        "maxfevals": math.inf,
        "tolfun": 0,
        "tolfunhist": 0,
        "tolx": 0,
        "tolstagnation": UNLIMITED,
        "tolflatfitness": UNLIMITED,
    }
    es = cma.CMAEvolutionStrategy(p.theta0, spread(p.theta0), options)
    while not es.stop():
        candidates = es.ask()
        es.tell(candidates, oracle.losses(np.asarray(candidates)).tolist())


def es_pairs(P: int) -> int:
    """Antithetic pairs per generation: half of CMA-ES's default population 4 + ⌊3 ln P⌋,
    rounded up, so both strategies spend the same evaluations per generation."""
    return -(-(4 + int(3 * math.log(P))) // 2)


def evolution_strategy(oracle: Oracle) -> None:
    """Salimans et al. (2017): n antithetic pairs θ ± σεᵢ, εᵢ ~ 𝒩(0, I), evaluated in one
    batch; losses replaced by centred ranks Fᵢ ∈ [−½, ½] (fitness shaping); the search
    gradient ĝ = Σᵢ (F(θ+σεᵢ) − F(θ−σεᵢ)) εᵢ / (2nσ) drives Adam (β = 0.9, 0.999).

    n = :func:`es_pairs` (P); σ = 0.1 and Adam's step α = 0.05, both in spreads of θ₀,
    chosen by a small search (σ ∈ {0.05, 0.1, 0.2}, α ∈ {0.02, 0.05, 0.1}) on seeds no
    reported run uses. Seeded from the problem's seed."""
    p = oracle.problem
    rng = np.random.default_rng(p.seed)
    s = spread(p.theta0)
    sigma, alpha, n = ES_SIGMA * s, ES_LR * s, es_pairs(p.P)
    theta = p.theta0.copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, UNLIMITED):
        eps = rng.standard_normal((n, p.P))
        values = oracle.losses(np.concatenate([theta + sigma * eps, theta - sigma * eps]))
        ranks = centred_ranks(values)
        grad = (ranks[:n] - ranks[n:]) @ eps / (2 * n * sigma)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        theta = theta - alpha * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)


def centred_ranks(values: Array) -> Array:
    """Ranks scaled to [−½, ½]: the lowest loss gets −½, the highest +½."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(1, len(values) - 1) - 0.5


def _minimize(method: str, **options) -> Callable[[Oracle], None]:
    def run(oracle: Oracle) -> None:
        optimize.minimize(oracle.loss, oracle.problem.theta0, method=method, options=options)

    run.__doc__ = f"scipy.optimize.minimize(method={method!r}) with {options}."
    return run


def _cobyla(oracle: Oracle) -> None:
    """COBYLA, its first step the spread of θ₀ (its trust region then shrinks)."""
    theta0 = oracle.problem.theta0
    options = {"maxiter": UNLIMITED, "rhobeg": spread(theta0), "tol": 1e-12}
    optimize.minimize(oracle.loss, theta0, method="COBYLA", options=options)


def search_box(theta0: Array) -> list[tuple[float, float]]:
    """θ₀ ± 6 spreads in every coordinate."""
    half = BOX_WIDTH * spread(theta0)
    return [(x - half, x + half) for x in theta0]


def differential_evolution(oracle: Oracle) -> None:
    """scipy's DE in the search box, population popsize·P with popsize the largest of
    1…15 (scipy's default) that leaves ≥ 20 generations in the budget; each generation
    goes through the batched loss at once."""
    p = oracle.problem
    popsize = int(np.clip(oracle.budget // (DE_GENERATIONS * p.P), 1, 15))
    optimize.differential_evolution(
        lambda population: oracle.losses(population.T),
        search_box(p.theta0),
        x0=p.theta0,
        popsize=popsize,
        maxiter=UNLIMITED,
        tol=0.0,
        polish=False,
        vectorized=True,
        updating="deferred",
        rng=p.seed,
    )


def dual_annealing(oracle: Oracle) -> None:
    """scipy's dual annealing in the search box, without its L-BFGS-B local search."""
    p = oracle.problem
    optimize.dual_annealing(
        oracle.loss,
        search_box(p.theta0),
        x0=p.theta0,
        maxiter=UNLIMITED,
        maxfun=UNLIMITED,
        no_local_search=True,
        rng=p.seed,
    )


GRADIENT_FREE: dict[str, Callable[[Oracle], None]] = {
    "cma-es": cma_es,
    "es": evolution_strategy,
    "nelder-mead": _minimize(
        "Nelder-Mead", adaptive=True, maxiter=UNLIMITED, maxfev=UNLIMITED, xatol=0.0, fatol=0.0
    ),
    "powell": _minimize("Powell", maxiter=UNLIMITED, maxfev=UNLIMITED, xtol=1e-12, ftol=0.0),
    "cobyla": _cobyla,
    "differential-evolution": differential_evolution,
    "dual-annealing": dual_annealing,
}
WITH_GRADIENT = ("gd", "gd-layerwise", "lbfgs")
LAYERWISE_METHODS = ("backprop",)  # the layer-wise update is backprop taken layer by layer
