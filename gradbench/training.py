"""Training the same Problem from the same θ₀ with and without gradients, at equal budgets.

Every optimizer sees the loss (and, for gradient-based ones, a registered gradient
method) only through a :class:`Tracker`, which

* counts evaluations in forward-pass equivalents: a loss is 1, a gradient is its method's
  cost model (backprop 3, central differences 2P, …);
* records the best loss so far (and its accuracy) at geometrically spaced points;
* ends the run by raising :class:`BudgetSpent` once the wall-clock budget is used up,
  which works for every scipy optimizer without touching its internals.

The gradient-free optimizers are scipy's own, really gradient-free: differential
evolution runs with ``polish=False`` (its default polishes with L-BFGS-B) and dual
annealing with ``no_local_search=True``; Nelder–Mead uses ``adaptive=True``, scipy's
variant for higher dimensions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from gradbench.config import Settings
from gradbench.methods.base import GradFn, Method
from gradbench.model import Array
from gradbench.problem import Problem
from gradbench.results import TRAINING_COLUMNS, read_table, write_atomic

UNLIMITED = 10**9  # scipy's iteration caps, lifted: the wall-clock budget ends each run
RECORD_GROWTH = 1.15  # record a point each time the evaluation count grows by 15 %
SEARCH_BOX = 2.0  # bounded optimizers search θ₀ ± this in every coordinate


class BudgetSpent(Exception):
    """The run used its wall-clock budget: a normal end, not an error."""


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass
class Tracker:
    """Counts, records and times every evaluation an optimizer makes."""

    problem: Problem
    budget_s: float
    evals: float = 0.0
    best: float = math.inf
    points: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.best_theta = self.problem.theta0.copy()
        self._next_record = 1.0
        self._paused = 0.0
        self._start = time.perf_counter()

    @property
    def wall_s(self) -> float:
        """Seconds spent by the optimizer, not counting the tracker's own recording."""
        return time.perf_counter() - self._start - self._paused

    def loss(self, theta: Array) -> float:
        return self._seen(theta, self.problem.loss(theta), 1.0)

    def losses(self, thetas: Array) -> Array:
        """Vectorized: the loss at each row of ``thetas (K, P)``, each counted."""
        values = self.problem.losses(thetas)
        for theta, value in zip(thetas, values, strict=True):
            self._seen(theta, float(value), 1.0, check=False)
        self._check()
        return values

    def gradient(self, grad_fn: GradFn, cost: float) -> Callable[[Array], tuple[float, Array]]:
        """``θ ↦ (loss, gradient)`` through ``grad_fn``, each call counted as ``cost``."""

        def value_and_grad(theta: Array) -> tuple[float, Array]:
            loss, grad = grad_fn(theta)
            return self._seen(theta, loss, cost), grad

        return value_and_grad

    def _seen(self, theta: Array, loss: float, cost: float, check: bool = True) -> float:
        self.evals += cost
        if not math.isfinite(loss):
            raise Diverged(f"loss became {loss} after {self.evals:g} evaluations")
        if loss < self.best:
            self.best, self.best_theta = loss, np.array(theta, copy=True)
        if self.evals >= self._next_record:
            self.record()
            self._next_record = self.evals * RECORD_GROWTH
        if check:
            self._check()
        return loss

    def _check(self) -> None:
        if self.wall_s > self.budget_s:
            raise BudgetSpent

    def record(self) -> None:
        """Add a trajectory point: best loss so far and its accuracy (time not counted)."""
        t0 = time.perf_counter()
        wall = self.wall_s
        accuracy = self.problem.accuracy(self.best_theta) if math.isfinite(self.best) else math.nan
        self.points.append(
            {"evals": self.evals, "wall_s": wall, "loss": self.best, "accuracy": accuracy}
        )
        self._paused += time.perf_counter() - t0


# -- the optimizers: each runs until the tracker ends it (or it converges) ------------------


def gradient_descent(
    tracker: Tracker, value_and_grad, lr: float = 0.1, momentum: float = 0.9
) -> None:
    """Heavy-ball gradient descent: v ← μv + g, θ ← θ − ηv."""
    theta = tracker.problem.theta0.copy()
    velocity = np.zeros_like(theta)
    while True:
        _, grad = value_and_grad(theta)
        velocity = momentum * velocity + grad
        theta = theta - lr * velocity


def lbfgs(tracker: Tracker, value_and_grad) -> None:
    optimize.minimize(
        value_and_grad,
        tracker.problem.theta0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": UNLIMITED, "maxfun": UNLIMITED, "ftol": 0.0, "gtol": 0.0},
    )


def _minimize(method: str, **options) -> Callable[[Tracker], None]:
    def run(tracker: Tracker) -> None:
        optimize.minimize(tracker.loss, tracker.problem.theta0, method=method, options=options)

    return run


def _box(tracker: Tracker) -> list[tuple[float, float]]:
    return [(x - SEARCH_BOX, x + SEARCH_BOX) for x in tracker.problem.theta0]


def differential_evolution(tracker: Tracker) -> None:
    """Population popsize·P, vectorized through the batched loss; population kept to
    about 1500 members so that large P fits in memory."""
    P = tracker.problem.P
    optimize.differential_evolution(
        lambda X: tracker.losses(X.T),
        _box(tracker),
        x0=tracker.problem.theta0,
        popsize=max(1, min(15, 1500 // P)),
        maxiter=UNLIMITED,
        tol=0.0,
        polish=False,
        vectorized=True,
        updating="deferred",
        rng=tracker.problem.seed,
    )


def dual_annealing(tracker: Tracker) -> None:
    optimize.dual_annealing(
        tracker.loss,
        _box(tracker),
        x0=tracker.problem.theta0,
        maxiter=UNLIMITED,
        maxfun=UNLIMITED,
        no_local_search=True,
        rng=tracker.problem.seed,
    )


GRADIENT_FREE: dict[str, Callable[[Tracker], None]] = {
    "nelder-mead": _minimize(
        "Nelder-Mead", adaptive=True, maxiter=UNLIMITED, maxfev=UNLIMITED, xatol=0.0, fatol=0.0
    ),
    "powell": _minimize("Powell", maxiter=UNLIMITED, maxfev=UNLIMITED, xtol=1e-12, ftol=0.0),
    "cobyla": _minimize("COBYLA", maxiter=UNLIMITED, rhobeg=0.5, tol=1e-12),
    "differential-evolution": differential_evolution,
    "dual-annealing": dual_annealing,
}
WITH_GRADIENT = {"gd": gradient_descent, "lbfgs": lbfgs}


def label(optimizer: str, method: str) -> str:
    """A run's name as the user writes it: 'gd/backprop', or 'powell' without a gradient."""
    return f"{optimizer}/{method}" if method else optimizer


def labels(frame: pd.DataFrame) -> list[str]:
    """:func:`label` for every row of a training table (gradient_method may be NaN)."""
    return [
        label(o, m) for o, m in zip(frame.optimizer, frame.gradient_method.fillna(""), strict=True)
    ]


def parse(name: str) -> tuple[str, str]:
    """'gd/fd-central' → ('gd', 'fd-central'); 'powell' → ('powell', '')."""
    optimizer, _, method = name.partition("/")
    if optimizer in WITH_GRADIENT and method:
        return optimizer, method
    if optimizer in GRADIENT_FREE and not method:
        return optimizer, ""
    known = [f"{o}/<method>" for o in WITH_GRADIENT] + list(GRADIENT_FREE)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(known)}")


def train(
    problem: Problem, optimizer: str, method: Method | None, budget_s: float
) -> tuple[list[dict], str, str]:
    """One run: the trajectory points, a status (ok | error) and the reason."""
    if method is not None:
        grad_fn = method.prepare(problem)  # set-up is not part of the budget
    tracker = Tracker(problem, budget_s)
    status, reason = "ok", ""
    try:
        if method is None:
            GRADIENT_FREE[optimizer](tracker)
        else:
            WITH_GRADIENT[optimizer](tracker, tracker.gradient(grad_fn, method.cost(problem.net)))
        reason = "converged before the budget"
    except BudgetSpent:
        pass
    except Exception as exc:  # a failing optimizer is recorded; the others go on
        status, reason = "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
    tracker.record()
    return tracker.points, status, reason


def summarize(trajectories: pd.DataFrame, slack: float = 0.05) -> pd.DataFrame:
    """Per optimizer and size: final loss and accuracy (median over seeds), and whether and
    when each reached the loss that gradient descent with backprop reached in its budget
    (within ``slack``, relative)."""
    keys = ["optimizer", "gradient_method", "N", "L", "P", "seed"]
    # gradient-free runs have no gradient method: "" (read back from CSV as NaN, which
    # groupby would silently drop)
    trajectories = trajectories.assign(gradient_method=trajectories.gradient_method.fillna(""))
    final = trajectories.sort_values("wall_s").groupby(keys, as_index=False).last()
    gd = final[(final.optimizer == "gd") & (final.gradient_method == "backprop")]
    target = gd.set_index(["N", "L", "seed"])["loss"].rename("target_loss")
    runs = trajectories.join(target, on=["N", "L", "seed"])
    hit = runs[runs.loss <= runs.target_loss * (1 + slack)]
    first = hit.sort_values("wall_s").groupby(keys)["wall_s"].first().rename("time_to_target_s")
    final = final.join(target, on=["N", "L", "seed"]).join(first, on=keys)
    final["reached_target"] = final["time_to_target_s"].notna()
    return (
        final.groupby(["optimizer", "gradient_method", "N", "L", "P"], as_index=False)
        .agg(
            final_loss=("loss", "median"),
            final_accuracy=("accuracy", "median"),
            target_loss=("target_loss", "median"),
            reached=("reached_target", "mean"),
            time_to_target_s=("time_to_target_s", "median"),
            evals=("evals", "median"),
            seeds=("seed", "count"),
        )
        .sort_values(["P", "optimizer", "gradient_method"])
    )


def run_all(
    settings: Settings, entries: dict, out: Path, *, fresh: bool = False, echo=print
) -> pd.DataFrame:
    """Every optimizer × size × seed of ``settings.train``, each written to
    ``out/training.csv`` as it finishes; runs already on file are kept, not redone."""
    t = settings.train
    csv = Path(out) / "training.csv"
    done = (
        pd.DataFrame(columns=TRAINING_COLUMNS)
        if fresh
        else read_table(csv, TRAINING_COLUMNS, missing_ok=True)
    )
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    plan = [
        (parse(name), N, L, seed)
        for N, L in t.sizes
        for seed in range(t.seeds)
        for name in t.optimizers
    ]
    for i, ((optimizer, method), N, L, seed) in enumerate(plan, 1):
        same = (done.optimizer == optimizer) & (done.gradient_method.fillna("") == method)
        same &= (done.N == N) & (done.L == L) & (done.seed == seed) & (done.budget_s == t.budget_s)
        prefix = f"[{i}/{len(plan)}] {label(optimizer, method):<24} N={N:<3} L={L} seed={seed}"
        if same.any():
            echo(f"{prefix} on file")
            continue
        entry = entries[method] if method else None
        if entry is not None and not entry.available:
            points, status, reason = [{}], "error", f"unavailable: {entry.reason}"
        else:
            problem = settings.problem(N, L, seed)
            points, status, reason = train(
                problem, optimizer, entry.method if entry else None, t.budget_s
            )
        rows = pd.DataFrame(points).assign(
            run_id=run_id,
            optimizer=optimizer,
            gradient_method=method,
            N=N,
            L=L,
            P=settings.network(N, L).P,
            seed=seed,
            status=status,
            reason=reason,
            budget_s=t.budget_s,
        )
        done = pd.concat([done, rows.reindex(columns=TRAINING_COLUMNS)], ignore_index=True)
        write_atomic(done, csv)
        last = points[-1]
        loss, evals = last.get("loss", math.nan), last.get("evals", 0)
        echo(f"{prefix} {status}: loss {loss:.4g} after {evals:.4g} evaluations {reason}")
    return done
