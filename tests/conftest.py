"""Shared test helpers: an independent central-difference gradient, written here from
scratch (not the project's own finite differences), so tests never grade the code with
itself."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def reference_gradient(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a black-box scalar f, one coordinate at a time."""
    g = np.zeros_like(theta, dtype=np.float64)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


def rho_max(g, g_ref) -> float:
    """max ρ = |g − g*| / max(1, |g| + |g*|), written out again, independent of gradbench."""
    g, g_ref = np.asarray(g, float), np.asarray(g_ref, float)
    return float((np.abs(g - g_ref) / np.maximum(1, np.abs(g) + np.abs(g_ref))).max())


def gradbench(*args: str) -> subprocess.CompletedProcess:
    """The command line as a user runs it, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gradbench", *args], capture_output=True, text=True
    )


def sweep_rows(out, plugin, method: str, N: str, L: str) -> pd.DataFrame:
    """Sweep one plugin method over a small grid (one BLAS thread); its rows of the CSV."""
    run = gradbench("run", "--out", str(out), "--N", N, "--L", L, "--threads", "1",
                    "--plugin", str(plugin), "--methods", method)  # fmt: skip
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out / "gradients.csv")
    return table[table.method == method]


@pytest.fixture(scope="module")
def g():
    """The report fixtures' gradients: the latest machine, its main configuration."""
    import report_fixtures as fx

    from gradbench import analysis

    return analysis.main_configuration(analysis.latest_machine(fx.gradients()))


@pytest.fixture(scope="module")
def pres():
    """The packaged families and targets (report.toml)."""
    from gradbench import analysis

    return analysis.load_presentation()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_configure(config):
    """In a pytest-xdist worker (``make test`` runs several), forget the variables that mark
    it as one: the gradbench processes the tests start inherit the environment, and
    pytest-benchmark, seeing PYTEST_XDIST_WORKER there, would turn its timing off in every
    sweep they run."""
    if hasattr(config, "workerinput"):
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            os.environ.pop(name, None)


def pytest_collection_modifyitems(items):
    """Tests that build a whole report (marked ``builds_report``, or using test_report's
    module fixture ``built``) run after the unit tests: mutmut stops a mutant at its first
    failing test, so a mutant that a unit test kills never pays for a build."""
    items.sort(
        key=lambda item: (
            bool(item.get_closest_marker("builds_report"))
            or "built" in getattr(item, "fixturenames", ())
        )
    )
