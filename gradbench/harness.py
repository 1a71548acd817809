"""Runs a sweep through pytest-benchmark: the benchmarks/ suite is parametrized with the
sweep's cells by a small pytest plugin, so that pytest-benchmark does the timing and
writes its own JSON, while :mod:`gradbench.sweep` decides and records around it."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from gradbench import environment
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
        if "cell" in metafunc.fixturenames:
            metafunc.parametrize("cell", self.sweep.cells, ids=str)

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


def raw_json(sweep: Sweep, worker: int = 1) -> Path:
    """Where worker ``worker`` of a run writes pytest-benchmark's JSON (each its own)."""
    suffix = "" if worker == 1 else f"-w{worker}"
    return sweep.out / "raw" / f"{sweep.run_id}{suffix}.json"


def unit(sweep: Sweep):
    """What the in-flight marker names for a test: the cell and its key (None for a test
    that is not a cell)."""

    def of(item) -> tuple[str, list] | None:
        cell = getattr(getattr(item, "callspec", None), "params", {}).get("cell")
        return None if cell is None else (str(cell), list(sweep._id(cell)))

    return of


def settle(sweep: Sweep, retry_crashed: bool = False) -> None:
    """Record the cell a dead process left in flight as ``crashed``; with
    ``retry_crashed``, forget this sweep's crashed cells so that they run again."""
    if (marker := InFlight(sweep.out).take()) is not None:
        cell = Cell(*marker["key"][:3])
        if cell in sweep.cells and list(sweep._id(cell)) == marker["key"]:
            sweep.record(cell, status="crashed", reason=marker["reason"])
            sweep.finished -= 1  # counted again when the sweep passes it
        else:
            sweep.echo(f"gradbench: {marker['what']} of a run with other settings crashed")
    if retry_crashed:
        mine = {sweep._id(cell) for cell in sweep.cells}
        for key in [k for k, row in sweep.rows.items() if row["status"] == "crashed"]:
            if key in mine:
                del sweep.rows[key]


def run(
    sweep: Sweep, threads: int | None = None, worker: int = 1, retry_crashed: bool = False
) -> int:
    """Run every cell of ``sweep`` in this process (worker number ``worker`` of the run;
    the first may retry crashed cells); returns pytest's exit status."""
    if not SUITE.is_file():
        raise GradbenchError(f"benchmark suite not found at {SUITE} (install gradbench editable)")
    settle(sweep, retry_crashed and worker == 1)
    json_path = raw_json(sweep, worker)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(sweep.out, json_path, unit(sweep))
    threads = threads or os.cpu_count() or 1
    with threadpool_limits(limits=threads, user_api="blas"):
        sweep.env.update(environment.blas(), threads_requested=threads)
        write_text_atomic(
            json.dumps(sweep.environment_record(), indent=2, default=str),
            sweep.out / "environment.json",
        )
        write_line(
            f"gradbench: {len(sweep.cells)} cells, budget {sweep.settings.budget_s:g} s per "
            f"gradient, BLAS threads {sweep.env['blas_threads']}; results in {sweep.out}/"
        )
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
                f"--benchmark-json={json_path}",
                "--benchmark-save-data",
                f"--benchmark-max-time={sweep.settings.max_time_s}",
                "--benchmark-columns=median,iqr,rounds",
                "--benchmark-sort=name",
            ],
            plugins=[SweepPlugin(sweep), journal],
        )
    journal.close()
    return status
