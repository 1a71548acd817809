"""Runs a sweep through pytest-benchmark: the benchmarks/ suite is parametrized with the
sweep's cells by a small pytest plugin, so that pytest-benchmark does the timing and
writes its own JSON, while :mod:`gradbench.sweep` decides and records around it."""

from __future__ import annotations

import gzip
import json
import shutil
from contextlib import nullcontext
from pathlib import Path

import pytest

from gradbench.errors import GradbenchError
from gradbench.results import write_text_atomic
from gradbench.supervisor import InFlight, Journal
from gradbench.sweep import Cell, Sweep, write_line

SUITE = Path(__file__).resolve().parent.parent / "benchmarks" / "test_gradients.py"


class SweepPlugin:
    """Hands the sweep's cells and the Sweep itself to the benchmark suite."""

    name = "gradbench-sweep"

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.__name__ = self.name  # the name pytest registers the plugin under

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "cell" in metafunc.fixturenames:  # pass by pass, each over every cell
            passes = range(self.sweep.settings.passes)
            units = [(cell, k) for k in passes for cell in self.sweep.cells]
            ids = [f"{cell}" if k == 0 else f"{cell}-pass{k + 1}" for cell, k in units]
            metafunc.parametrize(("cell", "timing_pass"), units, ids=ids)

    @pytest.fixture(scope="session")
    def gradbench_sweep(self) -> Sweep:
        return self.sweep

    def pytest_configure(self, config: pytest.Config) -> None:
        capture = config.pluginmanager.get_plugin("capturemanager")

        def echo(line: str) -> None:  # past pytest's output capture, straight to the user
            with capture.global_and_fixture_disabled() if capture else nullcontext():
                write_line(line)

        self.sweep.echo = echo

    def pytest_report_teststatus(self, report, config):
        # each cell prints its own progress line instead of pytest's dot
        if report.when == "call" and "test_gradient[" in report.nodeid:
            return report.outcome, "", ""
        return None


def raw_path(folder: Path, run_id: str) -> Path:
    """Where this session's raw JSON goes: ``raw/<run_id>.json.gz``, then
    ``<run_id>.2.json.gz``, … for each resumption of the run."""
    path, n = folder / f"{run_id}.json.gz", 1
    while path.exists():
        n += 1
        path = folder / f"{run_id}.{n}.json.gz"
    return path


def compress(path: Path, target: Path) -> None:
    """gzip ``path`` into ``target`` and remove it (pytest-benchmark writes plain JSON)."""
    with path.open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()


def unit(sweep: Sweep):
    """What the in-flight marker names for a test: the cell, and its key (method, N, L and
    the run id); None for a test that is not a cell."""

    def of(item) -> tuple[str, list] | None:
        cell = getattr(getattr(item, "callspec", None), "params", {}).get("cell")
        return None if cell is None else (str(cell), [cell.method, cell.N, cell.L, sweep.run_id])

    return of


def settle(sweep: Sweep) -> None:
    """Record the cell that a dead process left in flight as ``crashed`` (when it belongs
    to the run this sweep continues)."""
    if (marker := InFlight(sweep.out).take()) is None:
        return
    method, N, L, run_id = marker["key"]
    cell = Cell(method, N, L)
    if cell in sweep.cells and run_id == sweep.run_id:
        sweep.record(cell, status="crashed", reason=marker["reason"])
    else:
        sweep.echo(f"gradbench: {marker['what']} crashed in run {run_id}, not continued here")


def run(sweep: Sweep) -> int:
    """Run every cell of ``sweep`` in this process; returns pytest's exit status. The raw
    JSON ends up gzipped in ``raw/``; a sweep that ran every cell marks its run finished.
    A cell a dead process left in flight is recorded ``crashed`` first."""
    if not SUITE.is_file():
        raise GradbenchError(f"benchmark suite not found at {SUITE} (install gradbench editable)")
    settle(sweep)
    raw = sweep.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    target = raw_path(raw, sweep.run_id)
    plain = target.with_suffix("")  # <run_id>.json, compressed when pytest is done
    journal = Journal(sweep.out, plain, unit(sweep))
    write_text_atomic(
        json.dumps(sweep.environment_record(), indent=2, default=str),
        sweep.out / "environment.json",
    )
    write_line(
        f"gradbench: {len(sweep.cells)} cells in {sweep.settings.passes} timing pass(es), "
        f"budget {sweep.settings.budget_s:g} s per "
        f"gradient, BLAS threads {sweep.env['blas_threads']}, machine {sweep.env['fingerprint']}, "
        f"run {sweep.run_id}; results in {sweep.out}/"
    )
    try:
        status = pytest.main(
            [
                str(SUITE),
                "-q",
                "--no-header",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:faulthandler",  # a crashing plugin costs one line, not a stack dump
                "-W",
                "ignore",
                f"--rootdir={SUITE.parent}",
                f"--benchmark-json={plain}",
                "--benchmark-save-data",
                f"--benchmark-max-time={sweep.settings.max_time_s}",
                "--benchmark-columns=median,iqr,rounds",
                "--benchmark-sort=name",
            ],
            plugins=[SweepPlugin(sweep), journal],
        )
    finally:
        if plain.exists():
            compress(plain, target)
        journal.close()
    if status in (0, 5):
        sweep.finish()
    return status
