"""The sweep: which cells to run, in what order, and what each one records.

A cell is one method at one (N, L). Timing is pytest-benchmark's job; this module decides
around it:

* **order** — cells run by growing P, and at each (N, L) the shared reference forward pass
  runs first, so every later cell has a forward time to project from;
* **projection** — before a cell runs, its time is projected from the method's largest
  cell so far, scaled by the larger of two growths: the measured forward time × cost
  model, and the operation count P × cost (small sizes are overhead-bound, so the measured
  forward time alone understates growth); a cell projected over the budget, or larger
  than a cell of the same method that was, is recorded as ``skipped`` with
  ``projected_s`` and not run;
* **limits** — every call runs under a hard time limit (an alarm the harness owns); past
  it the cell is ``timeout``, and the sweep goes on;
* **validation** — one untimed call first, under tracemalloc, gives the peak memory, the
  gradient's error against backprop, and any contract breach (``error``);
* **nothing lost** — each finished cell is written to the CSV at once, atomically; a cell
  already measured with the same configuration is not measured again.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gradbench import environment, memory
from gradbench.config import Settings
from gradbench.errors import one_line
from gradbench.methods.backprop import matmul_floor
from gradbench.methods.base import check_result, rho
from gradbench.problem import Problem
from gradbench.registry import Entry
from gradbench.results import GRADIENT_COLUMNS, read_table, write_atomic

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
FAST_S = 0.02  # cells faster than this get pytest-benchmark's auto-calibrated rounds
MIN_ROUNDS = 3
DONE = ("ok", "skipped", "timeout", "crashed")  # statuses that resume does not redo

# What makes two cells "the same measurement": resume skips a cell whose key is on file.
KEY = ["method", "N", "L", "B", "dtype", "activation", "loss", "bias", "seed", "budget_s"]


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


class Sweep:
    """One run over a grid: owns the cells, the table on disk and the projections."""

    def __init__(
        self,
        settings: Settings,
        entries: list[Entry],
        out: Path,
        *,
        fresh: bool = False,
        memory_budget: float | None = None,
    ) -> None:
        self.settings = settings
        self.memory_budget = memory_budget or memory.default_budget()
        self.entries = {e.name: e for e in entries}
        self.out = Path(out)
        self.csv = self.out / "gradients.csv"
        # every worker process of one run shares the supervisor's run id
        self.run_id = os.environ.get("GRADBENCH_RUN_ID") or run_id()
        self.env = environment.describe() | {"malloc_keeps_freed": environment.keep_freed_memory()}
        on_disk = (
            []
            if fresh
            else read_table(self.csv, GRADIENT_COLUMNS, missing_ok=True).to_dict("records")
        )
        # every row on file, by its KEY values: rows of other configurations are kept as they are
        self.rows: dict[tuple, dict] = {tuple(r[k] for k in KEY): r for r in on_disk}
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
        self._reference: np.ndarray | None = None

    # -- the table ---------------------------------------------------------------------

    def _id(self, cell: Cell) -> tuple:
        """The cell's KEY values: method, N, L, then this sweep's configuration."""
        s = self.settings
        return (cell.method, cell.N, cell.L, s.B, s.dtype, s.activation, s.loss, s.bias, s.seed,
                s.budget_s)  # fmt: skip

    def _key(self, cell: Cell) -> dict:
        return dict(zip(KEY, self._id(cell), strict=True))

    def _of_method(self, method: str) -> list[dict]:
        """This method's rows at this sweep's configuration, any size."""
        config = self._id(Cell(method, 0, 0))[3:]
        return [
            row for (m, _, _, *c), row in self.rows.items() if m == method and tuple(c) == config
        ]

    def on_file(self, cell: Cell) -> dict | None:
        """The finished row for this cell and configuration, if one is on file."""
        row = self.rows.get(self._id(cell))
        done = row is not None and row["status"] in DONE and not memory.skipped(row)
        return row if done else None

    def record(self, cell: Cell, **fields) -> dict:
        """Add (or replace) this cell's row and rewrite the CSV atomically."""
        key = self._key(cell)
        P = self.settings.network(cell.N, cell.L).P
        kind = "reference" if cell.method in REFERENCES else self._kind(cell.method)
        row = {
            **key,
            "kind": kind,
            "P": P,
            "loss_evals": self._cost(cell),
            "reason": "",
            "note": "",
            "run_id": self.run_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "machine": self.env["machine"],
            "numpy": self.env["numpy"],
            "blas_threads": self.env["blas_threads"],
            **fields,
        }
        self.rows[self._id(cell)] = row
        write_atomic(tidy(pd.DataFrame(self.rows.values())), self.csv)
        self.finished += 1
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

    def forward_time(self, N: int, L: int) -> float:
        row = self.on_file(Cell(FORWARD, N, L))
        return float(row["time_median_s"]) if row and row["status"] == "ok" else math.nan

    def project(self, cell: Cell) -> tuple[float, str]:
        """Projected seconds per gradient, and a reason to skip (empty to run)."""
        base = self.forward_time(cell.N, cell.L) * self._cost(cell)
        P = self.settings.network(cell.N, cell.L).P
        mine = self._of_method(cell.method)
        measured = [r for r in mine if r["status"] in ("ok", "timeout") and r["P"] <= P]
        projected = base
        if measured:
            last = max(measured, key=lambda r: r["P"])
            seconds = last["time_median_s"] if last["status"] == "ok" else last["projected_s"]
            # two views, the larger wins: the forward pass's measured growth (which small,
            # overhead-bound sizes understate) and the growth of the operation count P × cost
            by_forward = (
                base * seconds / (self.forward_time(last["N"], last["L"]) * last["loss_evals"])
            )
            by_operations = seconds * (P * self._cost(cell)) / (last["P"] * last["loss_evals"])
            projected = max(by_forward, by_operations)
        budget = self.settings.budget_s
        if projected > budget:
            return projected, f"projected {projected:.3g} s > budget {budget:g} s"
        for r in mine:
            smaller = r["N"] <= cell.N and r["L"] <= cell.L
            too_slow = r["status"] in ("skipped", "timeout") and r.get("projected_s", 0) > budget
            if smaller and too_slow:
                return max(projected, r["projected_s"]), (
                    f"{r['status']} at smaller N={r['N']}, L={r['L']}: larger cells are slower"
                )
        return projected, ""

    # -- one cell ------------------------------------------------------------------------

    def problem(self, N: int, L: int) -> Problem:
        s = self.settings
        if self._problem is None or (self._problem.net.N, self._problem.net.L) != (N, L):
            self._problem = s.problem(N, L)
            ref = self.entries.get(REFERENCE)
            self._reference = (
                ref.method.prepare(self._problem)(self._problem.theta0)[1]
                if ref and ref.available
                else None
            )
        return self._problem

    def measure(self, benchmark, cell: Cell) -> dict:
        """Run (or skip, or resume) one cell, record it and report progress.
        ``benchmark`` is pytest-benchmark's fixture."""
        row = self._measure(benchmark, cell)
        if self.echo_resumed or not row.get("resumed"):
            self.echo(self.progress(cell, row))
        return row

    def _measure(self, benchmark, cell: Cell) -> dict:
        if (row := self.on_file(cell)) is not None:
            self.finished += 1
            return {**row, "resumed": True}
        sizes = self._memory(cell)
        if reason := memory.over_budget(sizes["projected_bytes"], self.memory_budget):
            return self.record(cell, status="skipped", reason=reason, **sizes)
        problem = self.problem(cell.N, cell.L)
        if cell.method in REFERENCES:
            return self._time(benchmark, cell, REFERENCES[cell.method][0](problem), 0.0, sizes)
        entry = self.entries[cell.method]
        if not entry.available:
            return self.record(cell, status="skipped", reason=f"unavailable: {entry.reason}")
        if reason := entry.method.supports(problem):
            return self.record(cell, status="skipped", reason=f"declined: {reason}")
        projected, reason = self.project(cell)
        if reason:
            return self.record(cell, status="skipped", reason=reason, projected_s=projected)
        note = entry.method.note(problem)
        limit = self.settings.hard_limit_s
        try:
            with deadline(limit):
                grad_fn = entry.method.prepare(problem)
            theta = problem.theta0
            with deadline(limit), _peak_memory() as peak, memory.peak_rss() as rss:
                t0 = time.perf_counter()
                result = grad_fn(theta)
                first = time.perf_counter() - t0
            loss, grad = check_result(result, problem)
        except CellTimeout as exc:
            return self.record(
                cell,
                status="timeout",
                reason=str(exc),
                projected_s=max(projected, limit),
                note=note,
                **sizes,
            )
        except Exception as exc:
            return self.record(
                cell, status="error", reason=one_line(exc), projected_s=projected, note=note,
                **sizes,
            )  # fmt: skip
        extra = {
            "projected_s": projected,
            "peak_mem_bytes": peak[0],
            "peak_rss_bytes": rss[0],
            **sizes,
            "note": note,
            **self._errors(grad),
        }
        return self._time(benchmark, cell, lambda: grad_fn(theta), max(first, projected), extra)

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

    def _errors(self, grad: np.ndarray) -> dict:
        if self._reference is None:
            return {}
        err, ref = rho(grad, self._reference), self._reference
        norms = np.linalg.norm(grad) * np.linalg.norm(ref)
        cosine = float(grad @ ref / norms) if norms > 0 else math.nan
        return {
            "grad_error": float(err.max()),
            "grad_error_mean": float(err.mean()),
            "cosine": cosine,
        }

    def _time(self, benchmark, cell: Cell, call, expected: float, extra: dict) -> dict:
        """Time ``call`` with pytest-benchmark: auto-calibrated when fast, a few pedantic
        rounds when slow; under the hard limit either way."""
        s = self.settings
        rounds = max(MIN_ROUNDS, int(s.cell_time_s / expected)) if expected >= FAST_S else 0
        try:
            with deadline(s.hard_limit_s * max(rounds, 1) + s.max_time_s * 10):
                if rounds:
                    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)
                else:
                    benchmark(call)
        except CellTimeout as exc:
            benchmark.has_error = True
            return self.record(cell, status="timeout", reason=str(exc), **extra)
        except Exception as exc:
            return self.record(cell, status="error", reason=one_line(exc), **extra)
        stats = benchmark.stats.stats
        row = self.record(
            cell,
            status="ok",
            time_median_s=stats.median,
            time_min_s=stats.min,
            time_iqr_s=stats.iqr,
            rounds=stats.rounds,
            **extra,
        )
        benchmark.extra_info.update({k: _plain(v) for k, v in row.items()})
        return row

    # -- progress ------------------------------------------------------------------------

    def progress(self, cell: Cell, row: dict) -> str:
        """One line: which cell, what happened, how many are left and the time left."""
        done, total = self.finished, len(self.cells)
        elapsed = time.perf_counter() - self.started
        left = self._seconds_left()
        if row.get("status") == "ok":
            what = f"{row['time_median_s']:.3g} s"
        else:
            what = f"{row.get('status')}: {row.get('reason', '')}"
        if row.get("resumed"):
            what = f"on file ({what})"
        return (
            f"[{done}/{total}] {cell.method:<16} N={cell.N:<4} L={cell.L:<2} {what} "
            f"| {_clock(elapsed)} elapsed, ~{_clock(left)} left"
        )

    def _seconds_left(self) -> float:
        """Projected cost of the cells still to run: a cell projected over budget costs
        nothing, a slow one its rounds plus two calls, a fast one pytest-benchmark's time."""
        s, total = self.settings, 0.0
        for cell in self.cells[self.finished :]:
            if self.on_file(cell):
                continue
            if cell.method in REFERENCES:
                total += s.max_time_s + 0.05
                continue
            seconds, reason = self.project(cell)
            if reason or math.isnan(seconds):
                total += 0.0 if reason else s.max_time_s
            elif seconds < FAST_S:
                total += s.max_time_s + 0.05
            else:
                total += seconds * (max(MIN_ROUNDS, int(s.cell_time_s / seconds)) + 2)
        return total

    def environment_record(self) -> dict:
        return {"run_id": self.run_id, **self.env, "settings": _plain(asdict(self.settings))}


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


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """The schema's columns in order, with the derived ratios filled in: each cell's time
    over the shared forward pass, over backprop and over backprop's bare matrix products,
    at the same configuration."""
    frame = frame.reindex(columns=GRADIENT_COLUMNS)
    same = ["N", "L", "B", "dtype", "activation", "loss", "bias", "seed"]
    for method, ratio in (
        (FORWARD, "ratio_to_forward"),
        (REFERENCE, "ratio_to_backprop"),
        (FLOOR, "ratio_to_floor"),
    ):
        ok = frame[(frame["method"] == method) & (frame["status"] == "ok")]
        times = ok.drop_duplicates(same, keep="last").set_index(same)["time_median_s"]
        denominator = frame.join(times.rename("_t"), on=same)["_t"]
        frame[ratio] = frame["time_median_s"] / denominator
        if method == FORWARD:
            frame["forward_time_s"] = denominator
    return frame.sort_values(["P", "N", "method"], kind="stable").reset_index(drop=True)


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


def run_id() -> str:
    """A new run's id: the UTC time it started."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def write_line(text: str) -> None:
    print(text, file=sys.__stderr__, flush=True)
