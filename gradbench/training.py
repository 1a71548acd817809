"""Training the same Problem from the same θ₀ with and without gradients, at equal
evaluation budgets.

Every run gets the same budget E in forward-pass equivalents: a loss is 1, a gradient is
its method's cost model (backprop ≈ 3, central differences 2P + 1, …). A :class:`Tracker`
stands between each optimizer (gradbench.optimizers) and the problem, and

* charges every evaluation *before* making it, refusing (:class:`BudgetSpent`) one that
  would cross E: a population is cut at the budget, a gradient that does not fit is not
  computed, and scipy's optimizers end when the exception leaves their objective. No run
  ever evaluates past E, so every run is deterministic: the same seeds give the same
  losses on every run; only the wall-clock columns differ;
* records the best loss so far and its training accuracy at geometrically spaced
  evaluation counts (each 1.5× the last) and whenever the best loss first reaches a
  rung 10^(−k/4) of the initial loss, down to 10⁻⁴ of it (so "evaluations to reach a
  tenth of the initial loss" is exact), and at the end the held-out loss and accuracy at
  the best θ.

The starting point's loss is given to every optimizer (not counted). Recording (accuracy,
held-out metrics, the layer-wise cosine) is neither counted nor timed.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import gradbench
from gradbench import environment, lock, optimizers
from gradbench.config import Settings
from gradbench.errors import one_line
from gradbench.methods.base import GradFn, Method
from gradbench.model import Array
from gradbench.problem import Problem, make_problem
from gradbench.results import TRAINING_COLUMNS
from gradbench.store import Store
from gradbench.supervisor import InFlight
from gradbench.training_analysis import label

RECORD_GROWTH = 1.5  # a point each time the evaluation count grows by half
RUNGS_PER_DECADE = 4  # and each time the best loss falls below L₀·10^(−k/4) …
LAST_RUNG = 16  # … down to L₀·10⁻⁴
TUNE_SEED = 10**6  # learning rates are tuned on a problem no reported run uses
RECORD = [RECORD_GROWTH, RUNGS_PER_DECADE, LAST_RUNG, TUNE_SEED]  # part of the configuration
# What varies within a run: a run is one optimizer at one size and seed (several rows, its
# trajectory); see config_of for the rest of a row's key.
CELL = ["optimizer", "gradient_method", "N", "L", "seed"]


class BudgetSpent(Exception):
    """The run used its evaluation budget: a normal end, not an error."""


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass
class Tracker:
    """Counts, caps and records every evaluation an optimizer makes (the optimizers'
    :class:`~gradbench.optimizers.Oracle`)."""

    problem: Problem
    budget: float
    evals: float = 0.0
    points: list[dict] = field(default_factory=list)
    clock: Callable[[], float] = time.perf_counter  # seconds; a test passes its own

    def __post_init__(self) -> None:
        self.best_theta = self.problem.theta0.copy()
        self.initial = self.best = self.problem.loss(self.best_theta)
        self._next_evals, self._rung, self._notes = 1.0, 0, {}
        self._paused, self._start = 0.0, self.clock()
        self.record()

    # -- counting and capping ---------------------------------------------------------------

    def charge(self, cost: float) -> None:
        """Count ``cost`` evaluations about to be made, or refuse them if they would
        cross the budget."""
        if self.evals + cost > self.budget * (1 + 1e-12):
            raise BudgetSpent
        self.evals += cost

    def loss(self, theta: Array) -> float:
        self.charge(1.0)
        return self.seen(theta, self.problem.loss(theta))

    def losses(self, thetas: Array) -> Array:
        """The loss at each row of ``thetas (K, P)`` in one batched call, each counted;
        a population that would cross the budget is cut there (and the run ends)."""
        room = int(self.budget * (1 + 1e-12) - self.evals)
        if room < 1:
            raise BudgetSpent
        taken = thetas[:room]
        values = self.problem.losses(taken)
        for theta, value in zip(taken, values, strict=True):
            self.charge(1.0)
            self.seen(theta, float(value))
        if len(taken) < len(thetas):
            raise BudgetSpent
        return values

    def gradient(self, grad_fn: GradFn, cost: float) -> Callable[[Array], tuple[float, Array]]:
        """``θ ↦ (loss, gradient)`` through ``grad_fn``, each call charged ``cost``."""

        def value_and_grad(theta: Array) -> tuple[float, Array]:
            self.charge(cost)
            loss, grad = grad_fn(theta)
            return self.seen(theta, float(loss)), grad

        return value_and_grad

    # -- recording ----------------------------------------------------------------------------

    @property
    def wall_s(self) -> float:
        """Seconds spent by the optimizer, not counting the tracker's own recording."""
        return self.clock() - self._start - self._paused

    @property
    def due(self) -> bool:
        """Whether the evaluation being made now will be recorded (by the count rule)."""
        return self.evals >= self._next_evals

    def seen(self, theta: Array, loss: float) -> float:
        """An evaluation already charged: keep the best, record when a rule says so."""
        if not math.isfinite(loss):
            raise Diverged(f"loss became {loss} after {self.evals:g} evaluations")
        if loss < self.best:
            self.best, self.best_theta = loss, np.array(theta, copy=True)
        if self.due or (self._rung < LAST_RUNG and self.best <= self._rung_loss(self._rung + 1)):
            self.record()
        return loss

    def _rung_loss(self, k: int) -> float:
        return self.initial * 10.0 ** (-k / RUNGS_PER_DECADE)

    def note(self, **values: float) -> None:
        """Values to put on the next recorded point (e.g. the layer-wise cosine)."""
        self._notes.update(values)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Work that is neither the optimizer's nor counted: not in wall_s either."""
        t0 = self.clock()
        try:
            yield
        finally:
            self._paused += self.clock() - t0

    def diagnose(self, grad_fn: GradFn, theta: Array) -> Array:
        """A gradient for a diagnostic (not counted, not timed)."""
        with self.paused():
            return grad_fn(theta)[1]

    def record(self) -> None:
        """A trajectory point: evaluations, time, best loss so far and its accuracy."""
        with self.paused():
            point = {"evals": self.evals, "wall_s": self.wall_s, "loss": self.best}
            self.points.append(point | {"accuracy": self.problem.accuracy(self.best_theta)})
            self.points[-1].update(self._notes)
            self._notes = {}
            if self.due:
                self._next_evals = self.evals * RECORD_GROWTH
            while self._rung < LAST_RUNG and self.best <= self._rung_loss(self._rung + 1):
                self._rung += 1

    def finish(self) -> None:
        """The last point, with the held-out loss and accuracy at the best θ (not timed)."""
        theta = self.best_theta
        with self.paused():
            self.note(test_loss=self.problem.test_loss(theta))
            self.note(test_accuracy=self.problem.test_accuracy(theta))
        self.record()


# -- one run -----------------------------------------------------------------------------------


@dataclass
class Run:
    """A finished run: its trajectory, status (ok | error | skipped, or crashed: its
    process died), reason, best θ."""

    points: list[dict]
    status: str
    reason: str
    theta: Array | None = None

    @classmethod
    def failed(cls, status: str, reason: str) -> Run:
        """A run that never started: one point with no loss."""
        return cls([{"evals": 0.0}], status, reason)


def parse(name: str) -> tuple[str, str]:
    """'gd/fd-central' → ('gd', 'fd-central'); 'powell' → ('powell', '')."""
    optimizer, _, method = name.partition("/")
    if optimizer == "gd-layerwise" and method not in optimizers.LAYERWISE_METHODS:
        raise ValueError(f"{name!r}: the layer-wise update is defined for backprop only")
    if optimizer in optimizers.WITH_GRADIENT and method:
        return optimizer, method
    if optimizer in optimizers.GRADIENT_FREE and not method:
        return optimizer, ""
    known = [f"{o}/<method>" for o in optimizers.WITH_GRADIENT] + list(optimizers.GRADIENT_FREE)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(known)}")


def layerwise_cost(net, backprop_cost: float) -> float:
    """The layer-wise step's cost: backprop's cost model × (L² + L) / (3L − 1), the ratio
    of the layer products each does (see optimizers.layerwise_steps)."""
    return backprop_cost * optimizers.layerwise_steps(net.L) / (3 * net.L - 1)


def _optimize(tracker: Tracker, optimizer: str, method: Method | None, grad_fn, lr: float):
    if method is None:
        return optimizers.GRADIENT_FREE[optimizer](tracker)
    cost = method.cost(tracker.problem.net)
    if optimizer == "gd-layerwise":
        step_cost = layerwise_cost(tracker.problem.net, cost)
        return optimizers.layerwise_descent(tracker, grad_fn, lr, step_cost)
    value_and_grad = tracker.gradient(grad_fn, cost)
    if optimizer == "gd":
        return optimizers.gradient_descent(tracker, value_and_grad, lr)
    return optimizers.lbfgs(tracker, value_and_grad)


def train(
    problem: Problem, optimizer: str, method: Method | None, budget: float, lr: float = math.nan
) -> Run:
    """One run from θ₀ with ``budget`` forward-pass equivalents. A method that declines
    the problem is ``skipped``; one whose ``prepare`` raises, or an optimizer that fails
    or diverges, is an ``error`` with its reason — never an exception."""
    if method is not None:
        if reason := method.supports(problem):
            return Run.failed("skipped", f"declined: {reason}")
        try:
            grad_fn = method.prepare(problem)  # set-up is not part of the budget
        except Exception as exc:
            return Run.failed("error", f"prepare failed: {one_line(exc)}")
    else:
        grad_fn = None
    tracker = Tracker(problem, budget)
    status, reason = "ok", ""
    try:
        _optimize(tracker, optimizer, method, grad_fn, lr)
        reason = "converged before the budget"
    except BudgetSpent:
        pass
    except Exception as exc:  # a failing optimizer is recorded; the others go on
        status, reason = "error", one_line(exc)
    tracker.finish()
    return Run(tracker.points, status, reason, tracker.best_theta)


def tune_lr(problem: Problem, method: Method, budget: float, grid) -> tuple[float, dict]:
    """Gradient descent's learning rate: the rate in ``grid`` whose full-budget run
    reaches the lowest training loss on ``problem`` (ties: the smaller rate; a diverging
    rate loses). Returns it and every rate's final loss."""
    finals = {}
    for lr in sorted(grid):
        run = train(problem, "gd", method, budget, lr)
        finals[lr] = run.points[-1]["loss"] if run.status == "ok" else math.inf
    return min(finals, key=lambda lr: (finals[lr], lr)), finals


# -- the sweep over sizes, seeds and optimizers ------------------------------------------------


def training_problem(settings: Settings, N: int, L: int, seed: int) -> Problem:
    """The teacher–student problem of a training run: n_train training samples (see
    TrainSettings.n_train) and n_test held-out ones from the same teacher."""
    t, net = settings.train, settings.network(N, L)
    return make_problem(
        N, L, t.n_train(N, net.P), activation=settings.activation, loss=settings.loss,
        bias=settings.bias, dtype=settings.dtype, seed=seed, n_test=t.n_test,
    )  # fmt: skip


def config_key(settings: Settings) -> str:
    """A short name for everything that changes a training measurement besides the run's
    cell (optimizer, gradient method, N, L, seed) and the machine: network options,
    budget, data sizes (n_train's rule, n_test), the learning-rate grid and the recording
    rules. Prefixed so that a CSV never reads it back as a number."""
    t = settings.train
    measured = {
        "dtype": settings.dtype,
        "activation": settings.activation,
        "loss": settings.loss,
        "bias": settings.bias,
        "budget_evals": t.budget_evals,
        "per_class": t.per_class,
        "max_train": t.max_train,
        "n_test": t.n_test,
        "lr_grid": sorted(t.lr_grid),
        "record": RECORD,
    }
    return "c" + hashlib.sha256(json.dumps(measured, sort_keys=True).encode()).hexdigest()[:12]


def config_of(settings: Settings) -> dict:
    """The row key's configuration part (gradbench.store): the settings that change a
    training measurement, each in its own training.csv column, and ``config``
    (:func:`config_key`) for those without one (n_train's rule, the learning-rate grid,
    the recording rules). The key is CELL, these and the machine's fingerprint."""
    t = settings.train
    return {
        "dtype": settings.dtype,
        "activation": settings.activation,
        "loss_function": settings.loss,
        "bias": settings.bias,
        "budget_evals": t.budget_evals,
        "n_test": t.n_test,
        "config": config_key(settings),
    }


def run_settings(settings: Settings) -> dict:
    """What a resumed run must share with the unfinished run on file: its configuration
    and the whole training profile (sizes, seeds, optimizers, limits)."""
    return config_of(settings) | {"train": asdict(settings.train), "record": RECORD}


def plan(settings: Settings) -> list[tuple[str, str, int, int, int]]:
    """Every (optimizer, method, N, L, seed) to run: sizes × seeds × optimizers, each
    optimizer up to its max_P."""
    t = settings.train
    return [
        (*parse(name), N, L, seed)
        for N, L in t.sizes
        for seed in range(t.seeds)
        for name in t.optimizers
        if t.runs_at(name, "/" not in name, settings.network(N, L).P)
    ]


def run_all(
    settings: Settings,
    entries: dict,
    out: Path,
    *,
    fresh: bool = False,
    extend: bool = False,
    retry_crashed: bool = False,
    echo=print,
) -> pd.DataFrame:
    """Every planned run, each written to ``out/training.csv`` as it finishes. The rows
    live in a :class:`~gradbench.store.Store` (table "training"): an unfinished run of
    this machine and settings is resumed (its runs on file are kept, not redone), any
    other is archived; ``--extend`` keeps the runs of this machine and configuration.
    Call it under the BLAS thread limit the runs use: the fingerprint records it.

    Each run is marked in flight (:class:`~gradbench.supervisor.InFlight`) while it
    trains; a run whose process died is recorded first, as ``crashed`` with how it died,
    and is kept on resume unless ``retry_crashed``."""
    t, out = settings.train, Path(out)
    store = Store(
        out, "training", TRAINING_COLUMNS, cell=CELL, config=config_of(settings),
        settings=run_settings(settings), fingerprint=environment.fingerprint(), fresh=fresh,
        extend=extend, echo=echo,
    )  # fmt: skip
    lock.note_run(out, store.run_id)  # names the run in the folder's lock, when held
    todo = plan(settings)
    inflight = InFlight(out)
    _settle(store, inflight, settings, entries, todo, echo)
    rates: dict[tuple[int, int], float] = {}
    for i, (optimizer, method, N, L, seed) in enumerate(todo, 1):
        what = f"{label(optimizer, method)} N={N} L={L} seed={seed}"
        prefix = f"[{i}/{len(todo)}] {label(optimizer, method):<24} N={N:<3} L={L} seed={seed}"
        cell = {"optimizer": optimizer, "gradient_method": method, "N": N, "L": L, "seed": seed}
        if on_file := store.get(**cell):
            if on_file[0]["status"] != "crashed":
                echo(f"{prefix} on file")
                continue
            if not retry_crashed:
                echo(f"{prefix} on file, crashed (--retry-crashed trains it again)")
                continue
        with inflight.around(what, [optimizer, method, N, L, seed, store.run_id]):
            lr = math.nan
            if optimizer.startswith("gd"):
                if (N, L) not in rates:
                    rates[N, L] = _tuned(settings, entries, N, L, echo)
                lr = rates[N, L]
            problem = training_problem(settings, N, L, seed)
            entry = entries[method] if method else None
            if entry is not None and not entry.available:
                run = Run.failed("error", f"unavailable: {entry.reason}")
            else:
                run = train(problem, optimizer, entry and entry.method, t.budget_evals, lr)
            store.put(_rows(settings, entries, cell, run, lr))
        last = run.points[-1]
        # pragma: no mutate start (progress text; the CSV holds the results)
        echo(
            f"{prefix} {run.status}: loss {last.get('loss', math.nan):.4g}, held-out accuracy "
            f"{last.get('test_accuracy', math.nan):.3f} after {last['evals']:.6g} "
            f"evaluations {run.reason}"
        )
        # pragma: no mutate end
    store.finish()
    return store.frame()


def _rows(settings: Settings, entries: dict, cell: dict, run: Run, lr: float) -> list[dict]:
    """A run's rows: one per recorded point (the store adds config, fingerprint, run id)."""
    method, N = cell["gradient_method"], cell["N"]
    P = settings.network(N, cell["L"]).P
    n_train = settings.train.n_train(N, P)
    entry = entries.get(method)  # None for a gradient-free run (method "")
    fields = cell | {
        "kind": entry.method.kind if entry is not None and entry.available else "",
        "P": P, "status": run.status, "reason": run.reason, "lr": lr, "B": n_train,
        "n_train": n_train, "gradbench": gradbench.__version__,
    }  # fmt: skip
    return [point | fields for point in run.points]


def _settle(store: Store, inflight: InFlight, settings: Settings, entries, todo, echo) -> None:
    """Record the run a dead process left in flight as ``crashed`` (when it belongs to
    the run this one continues), with how the process died."""
    if (marker := inflight.take()) is None:
        return
    *key, run_id = marker["key"]
    if run_id == store.run_id and tuple(key) in todo:
        cell = dict(zip(CELL, key, strict=True))
        store.put(_rows(settings, entries, cell, Run.failed("crashed", marker["reason"]), math.nan))
        echo(f"gradbench: {marker['what']}: {marker['reason']}; recorded as crashed")
    else:
        echo(f"gradbench: {marker['what']} crashed in run {run_id}, not continued here")


def _tuned(settings: Settings, entries: dict, N: int, L: int, echo) -> float:
    problem = training_problem(settings, N, L, TUNE_SEED)
    lr, finals = tune_lr(
        problem, entries["backprop"].method, settings.train.budget_evals, settings.train.lr_grid
    )
    # pragma: no mutate start (progress text; the rate chosen is each row's lr)
    shown = ", ".join(f"{rate:g}: {loss:.3g}" for rate, loss in finals.items())
    echo(f"learning rate for N={N} L={L}: {lr:g} (final training loss by rate: {shown})")
    # pragma: no mutate end
    return lr
