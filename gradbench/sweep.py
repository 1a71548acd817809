"""The sweep: which cells to run, in what order, and what each one records.

A cell is one method at one (N, L). Timing is pytest-benchmark's job; this module decides
around it:

* **order** — cells run by growing P, and at each (N, L) the shared reference forward pass
  runs first, so every later cell has a forward time to project from;
* **projection** — before a cell runs, its time per gradient and its set-up time are
  projected (:mod:`gradbench.projection`); a cell over budget is recorded as ``skipped``
  with its projections and not run;
* **limits** — every call runs under a hard time limit (an alarm the harness owns); past
  it the cell is ``timeout``, and the sweep goes on;
* **validation** — one untimed call first, under tracemalloc, gives the peak memory, the
  gradient's error against backprop, and any contract breach (``error``); a gradient
  outside the method's tolerance is ``wrong`` (and still timed);
* **paired ratios** — each timed round of the method alternates with the denominators it
  is compared with (:mod:`gradbench.pairing`): the forward pass for every cell, backprop for
  every other method, backprop's bare matrix products for backprop; a fast method's
  round follows one untimed call of it, as each bracket does; no ratio is ever formed
  across cells;
* **passes** — with ``passes`` = K > 1 the grid is timed K times over, each pass a K-th of
  every cell's rounds (a fast cell has at least K), and a cell's row pools its passes.
  The first pass prepares, validates and records each cell (a run stopped later keeps
  it); the later ones only time again the cells the first pass timed, minutes apart, so
  that a cell's ratio holds the whole run's conditions rather than one moment's
  (:mod:`gradbench.pairing`);
* **nothing lost, nothing mixed** — rows live in a :class:`~gradbench.store.Store`: each
  finished cell is written at once, atomically, under this machine's fingerprint and
  this run's id; what resumes and what is archived is the store's rule.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pytest_benchmark.stats import Stats
from threadpoolctl import threadpool_limits

from gradbench import __version__, environment, memory
from gradbench.config import Settings
from gradbench.errors import one_line
from gradbench.methods.backprop import matmul_floor
from gradbench.methods.base import ask
from gradbench.pairing import Pairs, burst_size
from gradbench.problem import Problem, read_only
from gradbench.projection import Budgets, project_prepare, project_time, skip_reason
from gradbench.registry import Entry
from gradbench.results import GRADIENT_COLUMNS
from gradbench.store import Store
from gradbench.testing import check_grads, reference_gradient

FORWARD = "forward"  # the shared reference forward pass, one row per (N, L)
FLOOR = "matmul-floor"  # backprop's bare matrix products, one row per (N, L)
REFERENCE = "backprop"  # the exact gradient every other one is compared with
# Reference cells timed at every size: what each times, and its cost in forward passes.
REFERENCES = {
    FORWARD: (lambda problem: lambda: problem.loss(problem.theta0), 1.0),
    FLOOR: (matmul_floor, math.nan),
}
# What the reference cells need beyond θ and the data, in bytes (gradbench.memory).
REFERENCE_MEMORY = {FORWARD: memory.forward_bytes, FLOOR: memory.floor_bytes}
# Cells faster than FAST_S fill max_time_s, slower ones cell_time_s; a fast cell's round
# follows one untimed call of its method (Pending.setup; why: gradbench.pairing).
FAST_S = 0.02
# The first (validation) call is cold and checked, so it overstates a fast call's time
# (measured: 30 ms for a 0.4 ms gradient, hence 7 rounds instead of hundreds), and one
# call on a busy machine can be 20× slow: a call faster than PROBE_BELOW_S is probed up
# to PROBES more times, with its denominators, and the fastest of each sets the rounds.
PROBE_BELOW_S = 0.2
PROBES = 3
MIN_ROUNDS = 6  # the fewest pairs that give a 95 % interval for the median ratio
MAX_ROUNDS = 500  # enough pairs for a tight interval; keeps the raw JSON small
# A resumed run keeps a row of these statuses; ``error`` is tried again, ``crashed`` only
# when asked (a cell that killed its process would kill it again).
FINAL = ("ok", "wrong", "skipped", "timeout")
CELL = ["method", "N", "L"]
# Settings that are not part of a row's key: the grid itself, the method list, training.
NOT_CONFIG = ("N", "L", "methods", "train")
CONFIG = [f.name for f in fields(Settings) if f.name not in NOT_CONFIG]
# What identifies a row in any table, one machine's or several: cell, configuration, machine.
KEY = [*CELL, *CONFIG, "fingerprint"]


def kept_on_resume(status: str, *, retry_crashed: bool = False) -> bool:
    """Whether a resumed run keeps a cell's row (else the cell is measured again)."""
    return status in FINAL or (status == "crashed" and not retry_crashed)


def config_of(settings: Settings) -> dict:
    """Every setting that changes a measurement (B, dtype, …, budgets): the row key's
    configuration part."""
    return {name: getattr(settings, name) for name in CONFIG}


def rounds_for(expected_s: float, per_round_s: float, settings: Settings) -> int:
    """Rounds of one cell: enough to fill ``max_time_s`` (a fast cell) or ``cell_time_s``
    (one whose gradient takes ``FAST_S`` or more), each round costing ``per_round_s``
    with its denominators; at least MIN_ROUNDS, and a fast cell one in every pass; at most
    MAX_ROUNDS. Every pass: this host's speed shifts by up to 2× for a second or more at a
    time (a small forward pass; a large product 1.25×), so a median ratio needs rounds
    from many such moments, not the 6 of a 15 ms gradient filling ``max_time_s`` (the
    rounds of one pass run back to back, in one moment)."""
    fast = expected_s < FAST_S
    target = settings.max_time_s if fast else settings.cell_time_s
    fewest = max(MIN_ROUNDS, settings.passes if fast else 0)
    return int(min(MAX_ROUNDS, max(fewest, target / max(per_round_s, 1e-9))))


class CellTimeout(BaseException):
    """Raised by the harness's alarm. A BaseException, so a method's ``except Exception``
    cannot swallow it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise CellTimeout in the main thread after ``seconds`` (no limit where the
    platform has no SIGALRM)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise CellTimeout(f"stopped after {seconds:g} s (hard limit)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Cell:
    method: str
    N: int
    L: int

    def __str__(self) -> str:
        return f"{self.method}-N{self.N}-L{self.L}"


@dataclass
class Pending:
    """A cell being timed pass by pass: its call, its rounds in all and the passes they
    are spread over, the pairs so far, the row's other fields (validation, memory) and
    status, one pass's seconds, the passes done, and whether each round is warmed."""

    call: Callable[[], object]
    rounds: int
    passes: int
    pairs: Pairs
    fields: dict
    outcome: dict
    seconds: float = 0.0
    passes_done: int = 0
    warm: bool = False

    def setup(self) -> None:
        """Before each timed round, untimed: the brackets, then (a fast cell) one call of
        the method, so the round times a warm call as the brackets do."""
        self.pairs.tick()
        if self.warm:
            self.call()

    def share(self, timing_pass: int) -> int:
        """Rounds of one pass: the rounds dealt out one by one over the passes (a pass past
        the rounds gets none)."""
        if timing_pass >= self.passes:
            return 0
        return self.rounds // self.passes + (timing_pass < self.rounds % self.passes)

    def last(self, timing_pass: int) -> bool:
        """Whether no pass after this one has rounds."""
        return self.share(timing_pass + 1) == 0

    def seconds_left(self) -> float:
        """The passes with rounds still to come, at the seconds of the last one."""
        return (min(self.passes, self.rounds) - self.passes_done) * self.seconds


class Sweep:
    """One run over a grid: owns the cells, the results store and the projections."""

    def __init__(
        self,
        settings: Settings,
        entries: list[Entry],
        out: Path,
        *,
        fresh: bool = False,
        extend: bool = False,
        threads: int | None = None,
        retry_crashed: bool = False,
        memory_budget: float | None = None,
    ) -> None:
        self.settings = settings
        self.memory_budget = memory_budget or memory.default_budget()
        self.retry_crashed = retry_crashed
        self.entries = {e.name: e for e in entries}
        self.out = Path(out)
        self.threads = threads
        with self.thread_limit():  # the fingerprint names the thread count measured with
            self.env = environment.describe()
        self.env["malloc_keeps_freed"] = environment.keep_freed_memory()
        self.store = Store(
            self.out,
            "gradients",
            GRADIENT_COLUMNS,
            cell=CELL,
            config=config_of(settings),
            settings=self.run_settings(),
            fingerprint=self.env["fingerprint"],
            fresh=fresh,
            extend=extend,
            echo=write_line,
        )
        self.csv = self.store.path
        self.run_id = self.store.run_id
        sizes = sorted(
            ((N, L) for N in settings.N for L in settings.L),
            key=lambda s: (settings.network(*s).P, s),
        )
        self.cells = [Cell(m, N, L) for N, L in sizes for m in [*REFERENCES, *self.entries]]
        self.started = time.perf_counter()
        self.finished = 0
        self.echo = write_line  # the harness points this past pytest's capture
        self.echo_resumed = True  # a worker restarted after a crash does not list them again
        self._problem: Problem | None = None
        self._backprop: Callable | None = None
        self._reference: np.ndarray | None = None
        self.pending: dict[Cell, Pending] = {}  # timed cells awaiting their later passes

    def thread_limit(self):
        """The BLAS thread limit every measurement of this sweep runs under."""
        return threadpool_limits(limits=self.threads, user_api="blas")

    def run_settings(self) -> dict:
        """What a resumed run must share with the run on file: the settings, the methods
        and the BLAS threads."""
        plain = {k: v for k, v in asdict(self.settings).items() if k != "train"}
        return plain | {"methods": list(self.entries), "threads": self.threads}

    # -- the table ---------------------------------------------------------------------

    def row(self, cell: Cell) -> dict | None:
        rows = self.store.get(method=cell.method, N=cell.N, L=cell.L)
        return rows[0] if rows else None

    def _of_method(self, method: str) -> list[dict]:
        """This run's rows of one method, any size."""
        return [r for r in self.store.rows() if r["method"] == method]

    def on_file(self, cell: Cell) -> dict | None:
        """The finished row for this cell, if this run (or the one it resumes) has one."""
        row = self.row(cell)
        keep = row is not None and kept_on_resume(row["status"], retry_crashed=self.retry_crashed)
        return row if keep and not memory.skipped(row) else None

    def record(self, cell: Cell, write: bool = True, **fields) -> dict:
        """Add (or replace) this cell's row; the store rewrites the CSV atomically (unless
        not ``write``: then with the next row written)."""
        net = self.settings.network(cell.N, cell.L)
        cost = self._cost(cell)
        kind = "reference" if cell.method in REFERENCES else self._kind(cell.method)
        row = {
            "method": cell.method,
            "N": cell.N,
            "L": cell.L,
            "kind": kind,
            "P": net.P,
            "loss_evals": cost,
            "layer_steps": cost * net.L,
            "reason": "",
            "note": "",
            "timestamp": datetime.now(UTC).isoformat(),
            "machine": self.env["machine"],
            "numpy": self.env["numpy"],
            "blas_threads": self.env["blas_threads"],
            "gradbench": __version__,
            **fields,
        }
        (row,) = self.store.put([row], write=write)
        return row

    def _kind(self, name: str) -> str:
        entry = self.entries.get(name)
        return entry.method.kind if entry and entry.available else ""

    def _cost(self, cell: Cell) -> float:
        if cell.method in REFERENCES:
            return REFERENCES[cell.method][1]
        entry = self.entries[cell.method]
        return (
            entry.method.cost(self.settings.network(cell.N, cell.L))
            if entry.available
            else math.nan
        )

    # -- projection ----------------------------------------------------------------------

    @property
    def budgets(self) -> Budgets:
        return Budgets(self.settings.budget_s, self.settings.prepare_budget_s)

    def forward_time(self, N: int, L: int) -> float:
        """The forward cell's median at (N, L), this run's configuration (NaN if none)."""
        row = self.on_file(Cell(FORWARD, N, L))
        return float(row["time_median_s"]) if row and row["status"] == "ok" else math.nan

    def project(self, cell: Cell) -> tuple[float, float, str]:
        """Projected seconds per gradient and of ``prepare``, and a reason to skip
        (empty to run)."""
        net = self.settings.network(cell.N, cell.L)
        history = self._of_method(cell.method)
        seconds = project_time(net.P, self._cost(cell), self.forward_time(cell.N, cell.L), history)
        prepare = project_prepare(self._prepare_cost(cell), history)
        reason = skip_reason(cell.N, cell.L, seconds, prepare, history, self.budgets)
        return seconds, prepare, reason

    def _prepare_cost(self, cell: Cell) -> float | None:
        entry = self.entries[cell.method]
        net = self.settings.network(cell.N, cell.L)
        return ask(entry.method, "prepare_cost", net) if entry.available else None

    # -- one cell ------------------------------------------------------------------------

    def problem(self, N: int, L: int) -> Problem:
        s = self.settings
        if self._problem is None or (self._problem.net.N, self._problem.net.L) != (N, L):
            self._problem = s.problem(N, L)
            ref = self.entries.get(REFERENCE)
            self._backprop = ref.method.prepare(self._problem) if ref and ref.available else None
            self._reference = reference_gradient(self._problem, self._problem.theta0)
        return self._problem

    def measure(self, benchmark, cell: Cell, timing_pass: int = 0) -> dict | None:
        """Run (or skip, or resume) one cell in its first pass, or time it again in a later
        one; record it and report progress. ``benchmark`` is pytest-benchmark's fixture.
        None for a later pass of a cell that is not being timed."""
        pending = self.pending.get(cell)
        if timing_pass and (pending is None or pending.share(timing_pass) == 0):
            return None
        with self.thread_limit():
            if timing_pass:
                row = self._time_pass(benchmark, cell, pending, timing_pass)
            else:
                row = self._measure(benchmark, cell)
                self.finished += 1
        if self.echo_resumed or not row.get("resumed"):
            self.echo(self.progress(cell, row, timing_pass))
        return row

    def _measure(self, benchmark, cell: Cell) -> dict:
        if (row := self.on_file(cell)) is not None:
            return {**row, "resumed": True}
        sizes = self._memory(cell)
        if reason := memory.over_budget(sizes["projected_bytes"], self.memory_budget):
            return self.record(cell, status="skipped", reason=reason, **sizes)
        problem = self.problem(cell.N, cell.L)
        if cell.method in REFERENCES:
            call = REFERENCES[cell.method][0](problem)
            return self._time(benchmark, cell, call, 0.0, sizes, {"status": "ok"})
        entry = self.entries[cell.method]
        if not entry.available:
            return self.record(cell, status="skipped", reason=f"unavailable: {entry.reason}")
        if reason := entry.method.supports(problem):
            return self.record(cell, status="skipped", reason=f"declined: {reason}")
        projected, prepare, reason = self.project(cell)
        projections = sizes | {
            "projected_s": projected,
            "projected_prepare_s": prepare,
            "prepare_cost": self._prepare_cost(cell),
            "forward_time_s": self.forward_time(cell.N, cell.L),
        }
        if reason:
            return self.record(cell, status="skipped", reason=reason, **projections)
        note = entry.method.note(problem)
        limit = self.settings.hard_limit_s
        theta = read_only(problem.theta0)  # a method writing into θ fails in its own cell
        try:
            with deadline(limit):
                t0 = time.perf_counter()
                grad_fn = entry.method.prepare(problem)
                prepare_s = time.perf_counter() - t0
            with deadline(limit), _peak_memory() as peak:
                t0 = time.perf_counter()
                gauged, rss = memory.gauge(grad_fn)  # peak RSS of the gradient calls alone
                verdict = check_grads(entry.method, problem, theta, self._reference, grad_fn=gauged)
                first = time.perf_counter() - t0
            if first < memory.WARM_S:  # cheap: measure a warm call, past lazy set-up
                with deadline(limit):
                    gauged(theta)
        except CellTimeout as exc:
            return self.record(
                cell, status="timeout", reason=str(exc), note=note,
                **projections | {"projected_s": max(projected, limit)},
            )  # fmt: skip
        except Exception as exc:  # prepare raised
            return self.record(cell, status="error", reason=one_line(exc), note=note, **projections)
        checked = {
            "grad_error": verdict.grad_error,
            "grad_error_mean": verdict.grad_error_mean,
            "cosine": verdict.cosine,
            "tolerance": verdict.tolerance,
        }
        if verdict.status == "error":
            return self.record(
                cell, status="error", reason=verdict.reason, note=note, **projections, **checked
            )
        extra = {
            **projections,
            **checked,
            "prepare_s": prepare_s,
            "peak_mem_bytes": peak[0],
            "peak_rss_bytes": rss[-1],
            "note": note,
            **_stats_columns(grad_fn),
        }
        outcome = {"status": verdict.status, "reason": verdict.reason}  # ok or wrong
        return self._time(benchmark, cell, lambda: grad_fn(theta), first, extra, outcome)

    def _memory(self, cell: Cell) -> dict:
        """The cell's declared memory model and projected bytes (θ, data and the model;
        at least one forward pass's worth where the method declares no model)."""
        net, B = self.settings.network(cell.N, cell.L), self.settings.B
        if cell.method in REFERENCE_MEMORY:
            declared = REFERENCE_MEMORY[cell.method](net, B)
        else:
            entry = self.entries[cell.method]
            declared = memory.model_bytes(entry.method, net, B) if entry.available else None
        least = memory.forward_bytes(net, B) if declared is None else declared
        return {
            "memory_model_bytes": math.nan if declared is None else declared,
            "projected_bytes": memory.problem_bytes(net, B) + least,
        }

    def denominators(self, cell: Cell) -> dict[str, Callable[[], object]]:
        """What the cell's rounds alternate with: the forward pass for all but the forward
        cell itself, backprop for every method but backprop (which gets the matmul floor
        instead)."""
        problem = self._problem
        forward = REFERENCES[FORWARD][0](problem)
        if cell.method == FORWARD:
            return {}
        if cell.method == FLOOR:
            return {"forward": forward}
        if cell.method == REFERENCE:
            return {"forward": forward, "floor": REFERENCES[FLOOR][0](problem)}
        out = {"forward": forward}
        if (backprop := self._backprop) is not None:  # this size's, for the later passes too
            theta = problem.theta0
            out["backprop"] = lambda: backprop(theta)
        return out

    def _time(
        self, benchmark, cell: Cell, call, expected: float, extra: dict, outcome: dict
    ) -> dict:
        """Time ``call`` in its first pass, with the rounds its fastest probe sets (dealt out
        over the passes); ``outcome`` is the status (and reason) of a cell timed to the end."""
        s = self.settings
        probe, calls = Pairs(self.denominators(cell)), [expected] if expected > 0 else []
        while len(calls) <= PROBES and not (calls and min(calls) >= PROBE_BELOW_S):
            probe.tick()
            t0 = time.perf_counter()
            call()
            calls.append(time.perf_counter() - t0)
        if not any(probe.times.values()):  # a slow call is not probed: time its brackets once
            probe.tick()
        fastest = {name: min(times) for name, times in probe.times.items()}
        bursts = {name: burst_size(min(calls), t) for name, t in fastest.items()}
        warm = min(calls) < FAST_S and bool(fastest)  # no brackets: each round is warm
        per_round = (1 + warm) * min(calls)
        per_round += sum((1 + bursts[name]) * t for name, t in fastest.items())
        rounds = rounds_for(min(calls), per_round, s)
        pairs = Pairs(self.denominators(cell), bursts=bursts)
        pending = Pending(call, rounds, s.passes, pairs, extra, outcome, warm=warm)
        self.pending[cell] = pending
        return self._time_pass(benchmark, cell, pending, 0)

    def _time_pass(self, benchmark, cell: Cell, pending: Pending, timing_pass: int) -> dict:
        """One pass of a cell: its share of the rounds, each preceded (untimed) by a bracket of
        every denominator (one call, or a burst) and one more after the last, under the hard
        limit; then the row, which pools every pass so far. The first pass and the last write
        the row to disk, those between only update it (a rewrite of the table costs ~30 ms).
        A failure ends the cell's passes and is its status."""
        s, rounds, last = self.settings, pending.share(timing_pass), pending.last(timing_pass)
        if last:
            self.pending.pop(cell, None)
        pairs, t0 = pending.pairs, time.perf_counter()
        try:
            with deadline(s.hard_limit_s * rounds + s.max_time_s * 10):
                benchmark.pedantic(
                    pending.call, setup=pending.setup, rounds=rounds, iterations=1, warmup_rounds=0
                )
                pairs.tick()
        except CellTimeout as exc:
            benchmark.has_error = True
            self.pending.pop(cell, None)
            return self.record(cell, status="timeout", reason=str(exc), **pending.fields)
        except Exception as exc:
            self.pending.pop(cell, None)
            return self.record(cell, status="error", reason=one_line(exc), **pending.fields)
        pending.seconds, pending.passes_done = time.perf_counter() - t0, timing_pass + 1
        pairs.close(benchmark.stats.stats.data)
        stats = Stats()  # pytest-benchmark's statistics, over every pass's rounds
        for t in pairs.round_times:
            stats.update(t)
        times = {
            "time_median_s": stats.median,
            "time_min_s": stats.min,
            "time_iqr_s": stats.iqr,
            "rounds": stats.rounds,
        }
        paired = pairs.summary() | _identity(cell.method, times["time_median_s"])
        fields = pending.fields | times | paired | pending.outcome
        row = self.record(cell, write=timing_pass == 0 or last, **fields)
        info = {k: _plain(v) for k, v in row.items()} | pairs.raw()
        benchmark.extra_info.update(info | {"pass": timing_pass})
        return row

    # -- progress ------------------------------------------------------------------------

    def progress(self, cell: Cell, row: dict, timing_pass: int = 0) -> str:
        """One line: which cell, what happened, how many are left and the time left."""
        where = f"[{self.finished}/{len(self.cells)}]"
        if timing_pass:
            to_go = sum(p.passes_done <= timing_pass for p in self.pending.values())
            where = f"[pass {timing_pass + 1}/{self.settings.passes}, {to_go} to go]"
        elapsed = time.perf_counter() - self.started
        left = self._seconds_left()
        if row.get("status") in ("ok", "wrong"):
            what = f"{row['time_median_s']:.3g} s"
            if not math.isnan(ratio := row.get("ratio_to_forward", math.nan)):
                what += f", {ratio:.3g}× forward"
            if row["status"] == "wrong":
                what += f", WRONG: {row['reason']}"
        else:
            what = f"{row.get('status')}: {row.get('reason', '')}"
        if row.get("resumed"):
            what = f"on file ({what})"
        return (
            f"{where} {cell.method:<16} N={cell.N:<4} L={cell.L:<2} {what} "
            f"| {_clock(elapsed)} elapsed, ~{_clock(left)} left"
        )

    def _seconds_left(self) -> float:
        """Projected cost of the cells still to run: a cell projected over budget costs
        nothing, a slow one its rounds plus two calls, a fast one its rounds twice; and the
        passes left of the cells timed, at the seconds of their last pass."""
        s = self.settings
        total = sum(p.seconds_left() for p in self.pending.values())
        for cell in self.cells[self.finished :]:
            if self.on_file(cell):
                continue
            if cell.method in REFERENCES:
                total += s.max_time_s + 0.05
                continue
            seconds, _, reason = self.project(cell)
            if reason or math.isnan(seconds):
                total += 0.0 if reason else s.max_time_s
            elif seconds < FAST_S:  # each round after an untimed call
                total += 2 * seconds * rounds_for(seconds, 2 * seconds, s) + 0.05
            else:
                total += seconds * (rounds_for(seconds, seconds, s) + 2)
        return total

    def environment_record(self) -> dict:
        return {"run_id": self.run_id, **self.env, "settings": _plain(asdict(self.settings))}

    def finish(self) -> None:
        """Every cell has run: the next run into this folder starts afresh."""
        self.store.finish()


def _identity(method: str, median: float) -> dict:
    """A reference's ratio to itself is 1 by definition (and the forward cell's median is
    its own forward time)."""
    ratio = {FORWARD: "forward", REFERENCE: "backprop", FLOOR: "floor"}.get(method)
    if ratio is None:
        return {}
    one = {f"ratio_to_{ratio}": 1.0, f"ratio_to_{ratio}_lo": 1.0, f"ratio_to_{ratio}_hi": 1.0}
    return one | ({"forward_time_s": median} if method == FORWARD else {})


def _stats_columns(grad_fn) -> dict:
    """The numbers a method attached to its ``grad_fn`` (``grad_fn.stats``) that are
    schema columns."""
    stats = getattr(grad_fn, "stats", None) or {}
    return {k: v for k, v in stats.items() if k in GRADIENT_COLUMNS}


@contextlib.contextmanager
def _peak_memory() -> Iterator[list[int]]:
    """Peak bytes allocated (tracemalloc, which numpy reports to) inside the block."""
    result = [0]
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result[0] = max(0, tracemalloc.get_traced_memory()[1] - base)
        if not already:
            tracemalloc.stop()


def _plain(value):
    """JSON-friendly values for pytest-benchmark's extra_info."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def write_line(text: str) -> None:
    print(text, file=sys.__stderr__, flush=True)
