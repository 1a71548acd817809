"""The harness end to end, through the real command line and pytest-benchmark."""

import gzip
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

import fake_methods
import numpy as np
import pandas as pd
import pytest
from conftest import gradbench

from gradbench import environment
from gradbench.config import Settings
from gradbench.methods.backprop import Backprop
from gradbench.methods.checkpoint import CheckpointedBackprop
from gradbench.registry import Entry
from gradbench.results import GRADIENT_COLUMNS, STATUSES
from gradbench.sweep import (
    Cell,
    CellTimeout,
    Pending,
    Sweep,
    _clock,
    _peak_memory,
    _plain,
    config_of,
    deadline,
    kept_on_resume,
    rounds_for,
    write_line,
)

FAKES = str(Path(__file__).with_name("fake_methods.py"))


def sweep(out, *args):
    result = gradbench("run", "--out", str(out), "--threads", "1", *args)
    assert result.returncode == 0, result.stderr
    return pd.read_csv(out / "gradients.csv"), result


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    methods = (
        "backprop,fd-central,forward-mode,fake-raises,fake-nan,fake-shape,fake-sleeps,fake-huge"
    )
    args = ["--N", "2,3", "--L", "1,2", "--methods", methods, "--plugin", FAKES]
    return out, *sweep(out, *args, "--budget", "0.2", "--hard-limit", "0.3")


@pytest.mark.e2e
def test_tiny_grid_writes_the_schema_with_sane_values(tiny):
    out, table, _ = tiny
    assert list(table.columns) == GRADIENT_COLUMNS
    ok = table[table.status == "ok"]
    assert set(ok.method) == {"forward", "matmul-floor", "backprop", "fd-central", "forward-mode"}
    assert len(ok) == 5 * 4  # every (N, L) for each
    assert (ok.time_median_s > 0).all() and (ok.time_min_s <= ok.time_median_s).all()
    assert (ok.P == ok.L * (ok.N**2 + ok.N)).all()
    assert (ok[ok.method == "backprop"].ratio_to_backprop == 1).all()
    assert (ok[ok.method == "forward"].ratio_to_forward == 1).all()
    assert (ok[ok.method == "matmul-floor"].ratio_to_floor == 1).all()
    assert (ok[ok.method == "backprop"].ratio_to_floor > 0).all()
    exact = ok[ok.method.isin(["fd-central", "forward-mode"])]
    assert (exact.grad_error < 1e-6).all() and (exact.peak_mem_bytes > 0).all()
    assert (ok.blas_threads == 1).all()
    assert table.run_id.nunique() == 1 and table.fingerprint.nunique() == 1
    paired = ok[ok.method != "forward"]
    assert (paired.ratio_to_forward_lo <= paired.ratio_to_forward).all()
    assert (paired.ratio_to_forward <= paired.ratio_to_forward_hi).all()
    assert (paired.pairs == paired.rounds).all() and (paired.pairs >= 6).all()
    assert (ok[ok.method == "backprop"].ratio_to_forward > 1).all()


@pytest.mark.e2e
def test_raw_json_is_pytest_benchmarks_own_with_per_round_data(tiny):
    out, table, _ = tiny
    (raw,) = (out / "raw").glob("*.json.gz")
    data = json.loads(gzip.decompress(raw.read_bytes()))
    names = {b["extra_info"]["method"] for b in data["benchmarks"]}
    assert names == {"forward", "matmul-floor", "backprop", "fd-central", "forward-mode"}
    passes = {}  # cell → [(pass, its rounds, the row's pairs after it)]: one entry per pass
    for b in data["benchmarks"]:
        info, rounds = b["extra_info"], b["stats"]["rounds"]
        assert len(b["stats"]["data"]) == rounds >= 1
        # every denominator timed before each of the pass's rounds and once after the last
        timed = [k for k in info if k.endswith("_times_s")]
        assert all(len(info[k]) == rounds + 1 for k in timed)
        assert len(timed) == {"forward": 0, "matmul-floor": 1}.get(info["method"], 2)
        cell = (info["method"], info["N"], info["L"])
        passes.setdefault(cell, []).append((info["pass"], rounds, info["pairs"]))
    rows = table.set_index(["method", "N", "L"])
    for cell, entries in passes.items():
        assert [k for k, _, _ in entries] == list(range(len(entries)))  # pass by pass
        # the row pools every pass: its pairs are all the rounds of the cell's passes
        assert sum(r for _, r, _ in entries) == entries[-1][2] == rows.loc[cell, "pairs"]
    assert max(len(entries) for entries in passes.values()) == 16  # the default profile's
    env = json.loads((out / "environment.json").read_text())
    assert env["blas_threads"] == 1 and env["numpy"] and env["machine"]


@pytest.mark.e2e
def test_each_failure_gets_its_own_status_and_the_sweep_goes_on(tiny):
    _, table, result = tiny
    first = table[(table.N == 2) & (table.L == 1)].set_index("method")
    assert first.loc["fake-raises", "status"] == "error"
    assert "RuntimeError: boom" in first.loc["fake-raises", "reason"]
    assert "non-finite" in first.loc["fake-nan", "reason"]
    assert "shape (3,)" in first.loc["fake-shape", "reason"]
    assert first.loc["fake-sleeps", "status"] == "timeout"
    later = table[(table.method == "fake-sleeps") & (table.P > 6)]
    # skipped by projection from the timeout, not run into the limit again
    assert (later.status == "skipped").all()
    assert later.reason.str.contains("projected|timeout at smaller").all()
    assert (later.projected_s >= 0.2).all()
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_a_cell_projected_over_budget_is_skipped_not_run(tiny):
    _, table, _ = tiny
    huge = table[table.method == "fake-huge"]
    assert (huge.status == "skipped").all()  # its prepare() raises if it is ever called
    assert (huge.projected_s > 0.2).all() and huge.reason.str.startswith("projected").all()


@pytest.mark.e2e
def test_extend_measures_nothing_again(tiny, tmp_path):
    out, table, _ = tiny
    again, result = sweep(
        out,
        "--extend",
        "--N",
        "2,3",
        "--L",
        "1,2",
        "--methods",
        "backprop,fd-central",
        "--plugin",
        FAKES,
        "--budget",
        "0.2",
        "--hard-limit",
        "0.3",
    )
    done = again[again.method.isin(["backprop", "fd-central", "forward", "matmul-floor"])]
    assert set(done.run_id) == set(table.run_id)  # nothing re-measured
    assert "on file" in result.stderr


@pytest.mark.e2e
def test_interrupted_run_keeps_finished_cells_and_resumes(tmp_path):
    args = [
        "--out",
        str(tmp_path),
        "--threads",
        "1",
        "--N",
        "2,3,4,5,6",
        "--L",
        "1",
        "--methods",
        "fake-slow",
        "--plugin",
        FAKES,
        "--budget",
        "5",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradbench", "run", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    csv = tmp_path / "gradients.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if csv.exists() and len(pd.read_csv(csv)) >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_csv(csv)  # parses: never half-written
    assert 5 <= len(before) < 20
    after, _ = sweep(tmp_path, *args[4:])
    assert len(after) == 20 and not after.duplicated(["method", "N", "L"]).any()
    kept = after.merge(before, on=["method", "N", "L", "status"], suffixes=("", "_before"))
    kept = kept[kept.status == "ok"]
    assert (kept.timestamp == kept.timestamp_before).all()  # finished cells not measured twice


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("method,kind,N\nbackprop,exact,2\n", "no column"),
        (",".join(GRADIENT_COLUMNS) + "\nbackprop,exact,2,1,6", "truncated"),
        ('"unterminated\n', "corrupt"),
    ],
)
def test_corrupt_csv_is_refused_not_overwritten(tmp_path, content, message):
    (tmp_path / "gradients.csv").write_text(content)
    result = gradbench(
        "run", "--out", str(tmp_path), "--N", "2", "--L", "1", "--methods", "backprop"
    )
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "gradients.csv").read_text() == content


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--config", "BAD"], "not valid TOML"),
        (["--config", "UNKNOWN_KEY"], "unknown key 'Nn'"),
        (["--config", "/no/such.toml"], "config file not found"),
        (["--N", "0"], "expected a positive integer"),
        (["--methods", "nope"], "unknown method 'nope'"),
    ],
)
def test_bad_config_gives_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "bad.toml").write_text("[default\nN = 1")
    (tmp_path / "unknown.toml").write_text("[default]\nNn = [1]\n")
    paths = {"BAD": str(tmp_path / "bad.toml"), "UNKNOWN_KEY": str(tmp_path / "unknown.toml")}
    args = [paths.get(a, a) for a in args]
    result = gradbench("run", "--out", str(tmp_path), *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and result.stderr.count("\n") == 1


# -- bookkeeping rules, on hand-made values -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_crashed", "kept"),
    [
        ("ok", False, True),
        ("wrong", False, True),  # timed: a rerun gives the same verdict
        ("skipped", False, True),  # projected under the same settings
        ("timeout", False, True),  # final: it would only hit the limit again
        ("timeout", True, True),
        ("error", False, False),  # cheap to try again
        ("crashed", False, True),  # it would kill the process again
        ("crashed", True, False),  # ... unless asked
    ],
)
def test_resume_keeps_each_status_by_its_rule(status, retry_crashed, kept):
    assert kept_on_resume(status, retry_crashed=retry_crashed) is kept


def test_a_crashed_cell_is_tried_again_only_when_asked():
    assert kept_on_resume("crashed") is True


def test_every_status_has_a_resume_rule():
    assert set(STATUSES) == {"ok", "wrong", "skipped", "timeout", "error", "crashed"}


def test_the_key_holds_every_setting_that_changes_a_measurement():
    settings = Settings(methods=("backprop",))
    assert set(config_of(settings)) == {
        "B", "dtype", "activation", "loss", "bias", "seed", "budget_s", "hard_limit_s",
        "max_time_s", "cell_time_s", "prepare_budget_s", "passes",
    }  # fmt: skip
    assert {f.name for f in fields(Settings)} - set(config_of(settings)) == {
        "N",
        "L",
        "methods",
        "train",
    }


@pytest.mark.parametrize(
    ("expected", "per_round", "passes", "rounds"),
    [
        (1e-4, 2e-4, 1, 500),  # fast: 0.2 s / 0.2 ms = 1000, capped
        (1e-3, 2e-3, 8, 100),  # fast: 0.2 s / 2 ms
        (0.01, 0.02, 16, 16),  # fast: 0.2 s / 20 ms = 10, but one in each of 16 passes
        (0.01, 0.02, 1, 10),  # the same in one pass: 0.2 s / 20 ms
        (0.02, 0.15, 16, 10),  # at FAST_S a cell is slow: 1.5 s / 0.15 s
        (0.1, 0.15, 16, 10),  # slow: 1.5 s / 0.15 s
        (1.0, 1.2, 16, 6),  # slow: at least 6 pairs (a 95 % interval), not one per pass
    ],
)
def test_rounds_fill_the_time_of_the_cell(expected, per_round, passes, rounds):
    settings = Settings(max_time_s=0.2, cell_time_s=1.5, passes=passes)
    assert rounds_for(expected, per_round, settings) == rounds


@pytest.mark.e2e
def test_wrong_gradient_is_timed_and_marked_wrong_and_writing_data_fails_alone(tmp_path):
    methods = "backprop,fake-off-by-ten-percent,fake-writes-theta,fake-writes-data,fd-central"
    table, _ = sweep(tmp_path, "--N", "2,3", "--L", "1", "--methods", methods, "--plugin", FAKES)
    by = table.set_index(["method", "N"])
    wrong = table[table.method == "fake-off-by-ten-percent"]
    assert (wrong.status == "wrong").all() and (wrong.time_median_s > 0).all()
    assert wrong.reason.str.contains("> tolerance 1e-08").all() and (wrong.tolerance == 1e-8).all()
    writes = table[table.method.isin(["fake-writes-theta", "fake-writes-data"])]
    assert len(writes) == 4 and (writes.status == "error").all()
    assert writes.reason.str.contains("read-only").all()
    assert by.loc[("fd-central", 3), "status"] == "ok"  # after it, at the same size
    assert by.loc[("fd-central", 3), "grad_error"] < 1e-6


# -- the sweep in process, on a fake benchmark ---------------------------------------------

# The sweep arms SIGALRM itself (sweep.deadline): pytest-timeout's signal method would be
# suspended by it, so these tests take the thread method.
in_process = pytest.mark.timeout(120, method="thread")
ROUND_TIMES = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]  # the fake benchmark's rounds: median 3.5 ms
# Rounds of 1 µs fill nothing: every cell gets the fewest rounds, 6. A hard limit far above
# any call, so that a machine pausing this process times nothing out.
FAST = Settings(N=(2,), L=(1, 2), budget_s=1e3, hard_limit_s=60.0, max_time_s=1e-6,
                cell_time_s=1e-6)  # fmt: skip


class FakeBenchmark:
    """pytest-benchmark's fixture as the sweep uses it: ``pedantic`` calls ``setup`` and
    the target once per round and reports made-up round times (ROUND_TIMES); ``fails``
    is raised from inside it instead."""

    def __init__(self, fails: BaseException | None = None):
        self.extra_info, self.has_error, self.fails, self.rounds = {}, False, fails, None
        self.limit = None

    def pedantic(self, target, setup, rounds, iterations, warmup_rounds):
        assert (iterations, warmup_rounds) == (1, 0)
        self.rounds, self.limit = rounds, signal.getitimer(signal.ITIMER_REAL)[0]
        if self.fails:
            raise self.fails
        for _ in range(rounds):
            setup()
            target()
        data = [ROUND_TIMES[i % len(ROUND_TIMES)] for i in range(rounds)]
        stats = SimpleNamespace(median=0.0035, min=1e-3, iqr=3e-3, rounds=rounds, data=data)
        self.stats = SimpleNamespace(stats=stats)


class Declines(fake_methods._Fake):
    name = "fake-declines"

    def supports(self, problem):
        return f"not at N={problem.net.N}"


class PrepareRaises(fake_methods._Fake):
    name = "fake-prepare-raises"

    def note(self, problem):
        return f"set-up at P={problem.net.P}"

    def prepare(self, problem):
        raise ValueError("no set-up today\nsecond line")


class Hoards(fake_methods._Fake):
    """Declares a petabyte per gradient: skipped for memory, never prepared."""

    name = "fake-hoards"

    def memory(self, net, B):
        return 1e15

    def prepare(self, problem):
        raise AssertionError("a cell over the memory budget was prepared")


class Counts(fake_methods._Fake):
    """A correct gradient (backprop's) with stats and a prepare cost, counting its calls."""

    name = "fake-counts"
    kind = "exact"
    calls = prepared = 0

    def __init__(self):
        self.thetas = []  # where each call was made

    def cost(self, net):
        return 4.0

    def prepare_cost(self, net):
        return float(net.P)

    def note(self, problem):
        return f"counted at P={problem.net.P}"

    def prepare(self, problem):
        self.prepared += 1
        backprop = Backprop().prepare(problem)

        def grad_fn(theta):
            self.calls += 1
            self.thetas.append(theta.copy())
            return backprop(theta)

        grad_fn.stats = {"ops_forward": 7, "not_a_column": 1}
        return grad_fn


class CountedBackprop(Backprop):
    """Backprop, counting the gradients it computes."""

    calls = 0

    def prepare(self, problem):
        grad_fn = super().prepare(problem)

        def counted(theta):
            self.calls += 1
            return grad_fn(theta)

        return counted


def numbered_gauge(fn):
    """memory.gauge, with each call's "peak" its number: 1.0, 2.0, …"""
    peaks = [math.nan]

    def gauged(*args):
        peaks.append(float(len(peaks)))
        return fn(*args)

    return gauged, peaks


class SteppingClock:
    """``time`` as the sweep sees it: each ``perf_counter()`` is ``step`` seconds later, so
    every call the sweep times takes ``step``."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def perf_counter(self):
        self.now += self.step
        return self.now


def entries(*methods, unavailable=()):
    return [Entry(m.name, "test", m) for m in methods] + [
        Entry(name, "test", reason="needs x (not installed)") for name in unavailable
    ]


def run_all(sweep):
    """Every cell of ``sweep`` on a fresh fake benchmark: {(method, N, L): (row, bench)}."""
    out = {}
    for cell in sweep.cells:
        bench = FakeBenchmark()
        out[(cell.method, cell.N, cell.L)] = sweep.measure(bench, cell), bench
    return out


def swept(folder, *methods, settings=FAST, unavailable=()):
    """A sweep of ``methods`` in ``folder``, every cell measured on a fake benchmark:
    (sweep, {(method, N, L): (row, benchmark)}, its progress lines)."""
    sweep = Sweep(settings, entries(*methods, unavailable=unavailable), folder,
                  memory_budget=2**30)  # fmt: skip
    lines = []
    sweep.echo = lines.append
    return sweep, run_all(sweep), lines


ONE_LAYER = replace(FAST, L=(1,))


@in_process
def test_cells_run_by_growing_p_references_first(tmp_path):
    settings = Settings(N=(2, 3), L=(3, 1))  # P: (2,1) 6, (3,1) 12, (2,3) 18, (3,3) 36
    sweep = Sweep(settings, entries(Backprop()), tmp_path, memory_budget=2**30)
    assert [str(c) for c in sweep.cells[:4]] == [
        "forward-N2-L1", "matmul-floor-N2-L1", "backprop-N2-L1", "forward-N3-L1",
    ]  # fmt: skip
    assert [(c.N, c.L) for c in sweep.cells[::3]] == [(2, 1), (3, 1), (2, 3), (3, 3)]


@in_process
def test_a_timed_cell_records_the_benchmarks_statistics_and_its_cost_model(tmp_path):
    sweep, rows, _ = swept(tmp_path, Backprop())
    row, bench = rows[("backprop", 2, 2)]
    assert (row["status"], row["reason"], row["kind"]) == ("ok", "", "exact")
    assert (row["time_median_s"], row["time_min_s"], row["time_iqr_s"]) == (0.0035, 1e-3, 3e-3)
    assert row["rounds"] == row["pairs"] == bench.rounds == 6  # the fewest for an interval
    assert (row["P"], row["loss_evals"], row["layer_steps"]) == (12, 2.5, 5.0)  # (3L−1)/L
    assert (row["B"], row["dtype"], row["budget_s"]) == (64, "float64", 1e3)
    assert (row["fingerprint"], row["run_id"]) == (sweep.env["fingerprint"], sweep.run_id)
    assert row["grad_error"] < 1e-12 and row["tolerance"] == 1e-8 and row["prepare_s"] >= 0
    # its forward time is the median of the forward calls paired with its rounds
    assert row["forward_time_s"] == pytest.approx(np.median(bench.extra_info["forward_times_s"]))
    assert row["numpy"] == np.__version__ and row["gradbench"] == sweep.env["gradbench"]
    env = sweep.env
    assert (row["machine"], row["blas_threads"]) == (env["machine"], env["blas_threads"])
    assert row["timestamp"].endswith("+00:00")  # UTC


@in_process
def test_each_reference_is_its_own_denominator(tmp_path):
    _, rows, _ = swept(tmp_path, Backprop(), settings=ONE_LAYER)
    forward, fbench = rows[("forward", 2, 1)]
    floor, lbench = rows[("matmul-floor", 2, 1)]
    backprop, bbench = rows[("backprop", 2, 1)]
    assert (forward["kind"], forward["loss_evals"], forward["layer_steps"]) == ("reference", 1, 1)
    assert (forward["status"], forward["reason"], forward["note"]) == ("ok", "", "")
    assert math.isnan(floor["loss_evals"])
    assert (forward["ratio_to_forward"], forward["ratio_to_forward_lo"],
            forward["ratio_to_forward_hi"]) == (1.0, 1.0, 1.0)  # fmt: skip
    assert (forward["forward_time_s"], forward["pairs"]) == (0.0035, 6)
    assert (floor["ratio_to_floor"], floor["ratio_to_floor_lo"], floor["ratio_to_floor_hi"]) == (
        1.0, 1.0, 1.0,
    )  # fmt: skip
    assert (backprop["ratio_to_backprop"], backprop["ratio_to_backprop_lo"],
            backprop["ratio_to_backprop_hi"]) == (1.0, 1.0, 1.0)  # fmt: skip
    assert backprop["ratio_to_floor"] > 0 and backprop["ratio_to_forward"] > 0
    # every denominator is timed before each round and once after the last
    timed = {b.extra_info["method"]: sorted(k for k in b.extra_info if k.endswith("_times_s"))
             for b in (fbench, lbench, bbench)}  # fmt: skip
    assert timed == {"forward": [], "matmul-floor": ["forward_times_s"],
                     "backprop": ["floor_times_s", "forward_times_s"]}  # fmt: skip
    assert len(bbench.extra_info["floor_times_s"]) == 7
    assert bbench.extra_info["ratio_to_backprop"] == 1.0
    # problem: (P + B·N + B) float64s; forward 2·B·N, floor 3·B·N + 2·N² (N=2, B=64, P=6)
    problem = (6 + 128 + 64) * 8
    assert forward["projected_bytes"] == problem + 256 * 8
    assert floor["projected_bytes"] == problem + (384 + 8) * 8


@in_process
def test_a_method_is_paired_with_backprop_and_records_its_note_stats_and_projections(tmp_path):
    _, rows, _ = swept(tmp_path, Backprop(), Counts())
    first, bench = rows[("fake-counts", 2, 1)]
    assert sorted(k for k in bench.extra_info if k.endswith("_times_s")) == [
        "backprop_times_s", "forward_times_s",
    ]  # fmt: skip
    assert len(bench.extra_info["backprop_times_s"]) == 7
    assert first["ratio_to_backprop"] > 0 and first["ratio_to_forward"] > 0
    assert math.isnan(first["memory_model_bytes"])
    assert bench.extra_info["memory_model_bytes"] is None  # NaN is written as null
    row, _ = rows[("fake-counts", 2, 2)]
    assert (row["note"], row["ops_forward"], row["prepare_cost"]) == ("counted at P=12", 7, 12.0)
    assert "not_a_column" not in row
    assert first["projected_s"] == pytest.approx(4 * 0.0035)  # no history: forward × cost
    # projected from the same method's cell at P=6, 3.5 ms at cost 4, whose paired forward
    # calls took f: by operations 3.5 ms · 12/6 = 7 ms; by the forward pass (its median at
    # (2, 2) is 3.5 ms) 3.5 ms · 4 · 3.5 ms / (f · 4); the larger
    by_forward = 0.0035 * 4 * 0.0035 / (first["forward_time_s"] * 4)
    assert row["projected_s"] == pytest.approx(max(7e-3, by_forward))
    assert row["projected_prepare_s"] == pytest.approx(first["prepare_s"] * 12 / 6)
    assert row["peak_mem_bytes"] > 0


@in_process
@pytest.mark.parametrize(
    ("step", "calls"),
    [
        # the checked first call, a warm one (the first took under WARM_S), three probes
        # (PROBES: the first is fast, under PROBE_BELOW_S) and the 6 rounds, each after
        # an untimed call (faster than FAST_S)
        (2**-10, 1 + 1 + 3 + 6 * 2),
        # a slow first call, here as long as WARM_S, PROBE_BELOW_S and FAST_S: neither
        # warmed nor probed, and its rounds follow no untimed call
        (0.25, 1 + 6),
    ],
)
def test_a_method_is_validated_warmed_probed_then_timed(tmp_path, monkeypatch, step, calls):
    method = Counts()
    sweep = Sweep(replace(FAST, L=(1,)), entries(method), tmp_path, memory_budget=2**30)
    monkeypatch.setattr("gradbench.sweep.time", SteppingClock(step))
    monkeypatch.setattr("gradbench.sweep.PROBE_BELOW_S", 0.25)
    monkeypatch.setattr("gradbench.memory.WARM_S", 0.25)  # this long: not warmed
    monkeypatch.setattr("gradbench.sweep.memory.gauge", numbered_gauge)
    row = sweep.measure(FakeBenchmark(), Cell("fake-counts", 2, 1))
    assert method.calls == calls and method.prepared == 1 and row["prepare_s"] == step
    np.testing.assert_array_equal(method.thetas[0], sweep.problem(2, 1).theta0)  # checked at θ₀
    # the resident peak of the last gauged call: the warm one where there is one
    assert row["peak_rss_bytes"] == (2.0 if step < 0.25 else 1.0)


class NaNWithNote(fake_methods.ReturnsNaN):
    def note(self, problem):
        return "NaN by design"


FAILING = (fake_methods.OffByTenPercent(), fake_methods.Raises(), fake_methods.Huge(),
           Declines(), PrepareRaises(), Hoards(), fake_methods.WritesTheta(),
           NaNWithNote())  # fmt: skip


@in_process
def test_each_failure_is_recorded_with_its_reason_and_the_sweep_goes_on(tmp_path):
    _, rows, lines = swept(tmp_path, *FAILING, settings=ONE_LAYER, unavailable=["fake-missing"])
    status = {m: (r["status"], r["reason"]) for (m, _, _), (r, _) in rows.items()}
    assert status["fake-raises"] == ("error", "RuntimeError: boom")
    assert status["fake-prepare-raises"] == ("error", "ValueError: no set-up today")
    assert status["fake-declines"] == ("skipped", "declined: not at N=2")
    assert status["fake-missing"] == ("skipped", "unavailable: needs x (not installed)")
    # 1e12 forward passes of 3.5 ms
    assert status["fake-huge"] == ("skipped", "projected 3.5e+09 s > budget 1000 s")
    # 1e15 bytes + the problem's (6 + 64·2 + 64) float64s = 1584 B: 909 TiB
    assert status["fake-hoards"] == ("skipped", "memory: projected 909 TiB > budget 1 GiB")
    hoards = rows[("fake-hoards", 2, 1)][0]
    assert (hoards["memory_model_bytes"], hoards["projected_bytes"]) == (1e15, 1e15 + 1584)
    missing = rows[("fake-missing", 2, 1)][0]
    assert missing["kind"] == "" and math.isnan(missing["loss_evals"])
    raises = rows[("fake-raises", 2, 1)][0]  # no memory model: one forward pass's worth
    assert raises["kind"] == "approximate" and raises["projected_bytes"] == 1584 + 256 * 8
    assert math.isnan(raises["memory_model_bytes"])
    # a wrong gradient is still timed
    wrong, bench = rows[("fake-off-by-ten-percent", 2, 1)]
    assert (wrong["status"], wrong["time_median_s"], bench.rounds) == ("wrong", 0.0035, 6)
    assert wrong["reason"].startswith("grad_error ") and wrong["grad_error"] > 1e-8
    assert status["fake-writes-theta"][0] == "error"  # θ is handed over read-only
    assert "read-only" in status["fake-writes-theta"][1]
    # the rows not timed keep the projections they were decided with: 3.5 ms × cost 1
    for method in ("fake-raises", "fake-prepare-raises", "fake-huge"):
        assert rows[(method, 2, 1)][0]["forward_time_s"] == 0.0035
    prepare_raises = rows[("fake-prepare-raises", 2, 1)][0]
    assert (prepare_raises["projected_s"], prepare_raises["note"]) == (0.0035, "set-up at P=6")
    nan, nan_bench = rows[("fake-nan", 2, 1)]  # checked and found broken: not timed
    assert (nan["status"], nan["note"], nan_bench.rounds) == ("error", "NaN by design", None)
    assert "non-finite" in nan["reason"]
    assert (nan["projected_s"], nan["tolerance"]) == (0.0035, 1e-6)  # approximate, float64
    assert wrong["cosine"] == pytest.approx(1.0)  # backprop's gradient, 10 % longer
    assert 0 < wrong["grad_error_mean"] <= wrong["grad_error"]
    # one progress line per cell, counting them
    assert len(lines) == 11 and lines[-1].startswith("[11/11] fake-missing ")
    assert lines[4].startswith("[5/11] fake-huge        N=2    L=1  skipped: projected 3.5e+09 s")


@in_process
def test_a_resumed_sweep_keeps_final_rows_and_measures_errors_again(tmp_path):
    methods = Backprop(), PrepareRaises(), Hoards()
    sweep, _, _ = swept(tmp_path, *methods, settings=ONE_LAYER)
    again = Sweep(ONE_LAYER, entries(*methods), tmp_path, memory_budget=2**30)
    lines = []
    again.echo = lines.append
    assert again.run_id == sweep.run_id
    never = FakeBenchmark(fails=AssertionError("measured again"))
    kept = again.measure(never, Cell("backprop", 2, 1))
    assert kept["resumed"] and kept["time_median_s"] == 0.0035 and again.finished == 1
    assert lines[0].startswith("[1/5] backprop         N=2    L=1  on file (0.0035 s, ")
    redone = again.measure(FakeBenchmark(), Cell("fake-prepare-raises", 2, 1))
    assert "resumed" not in redone and redone["status"] == "error"
    hoards = again.measure(FakeBenchmark(), Cell("fake-hoards", 2, 1))  # the budget may differ
    assert "resumed" not in hoards and hoards["reason"].startswith("memory:")
    again.echo_resumed = False
    again.measure(FakeBenchmark(), Cell("forward", 2, 1))
    assert len(lines) == 3 and again.finished == 4  # resumed or measured, each counts


@in_process
def test_backprop_is_called_before_each_round_of_another_method_and_after_the_last(
    tmp_path, monkeypatch
):
    """The method's calls seem to take 0.25 s (6 rounds, not probed); backprop's really take
    microseconds, so each bracket is an untimed call and a burst of MAX_BURST (here 3),
    planned from one bracket of one call timed first: 2 + (6 + 1)·(1 + 3) calls."""
    backprop = CountedBackprop()
    sweep = Sweep(ONE_LAYER, entries(backprop, Counts()), tmp_path, memory_budget=2**30)
    monkeypatch.setattr("gradbench.sweep.time", SteppingClock(0.25))
    monkeypatch.setattr("gradbench.pairing.MAX_BURST", 3)
    bench = FakeBenchmark()
    sweep.measure(bench, Cell("fake-counts", 2, 1))
    assert backprop.calls == 2 + (6 + 1) * (1 + 3)
    assert (bench.extra_info["backprop_burst"], bench.extra_info["forward_burst"]) == (3, 3)
    assert len(bench.extra_info["backprop_times_s"]) == 6 + 1


@in_process
def test_a_crashed_cell_is_kept_unless_asked_to_retry(tmp_path):
    sweep = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30)
    cell = Cell("backprop", 2, 1)
    sweep.record(cell, status="crashed", reason="process died")
    assert sweep.on_file(cell)["reason"] == "process died"
    retry = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30, retry_crashed=True)
    assert retry.on_file(cell) is None


@in_process
def test_the_forward_time_is_the_forward_cells_median_when_ok(tmp_path):
    sweep = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30)
    assert math.isnan(sweep.forward_time(2, 1))
    sweep.record(Cell("forward", 2, 1), status="ok", time_median_s=0.25)
    sweep.record(Cell("forward", 2, 2), status="timeout", time_median_s=0.5)
    assert sweep.forward_time(2, 1) == 0.25 and math.isnan(sweep.forward_time(2, 2))


class SleepsWithNote(fake_methods.Sleeps):
    def note(self, problem):
        return "sleeps 5 s"


@in_process
def test_a_timeout_records_the_hard_limit_as_the_projection(tmp_path):
    settings = replace(FAST, L=(1,), hard_limit_s=0.2, budget_s=10.0)
    sweep = Sweep(settings, entries(SleepsWithNote()), tmp_path, memory_budget=2**30)
    sweep.record(Cell("forward", 2, 1), status="ok", time_median_s=0.0035)
    row = sweep.measure(FakeBenchmark(), Cell("fake-sleeps", 2, 1))
    assert (row["status"], row["reason"]) == ("timeout", "stopped after 0.2 s (hard limit)")
    assert row["projected_s"] == 0.2 and row["note"] == "sleeps 5 s"


@in_process
@pytest.mark.parametrize(
    ("fails", "status", "reason"),
    [
        (CellTimeout("stopped after 1 s"), "timeout", "stopped after 1 s"),
        (MemoryError("no room\nat all"), "error", "MemoryError: no room"),
    ],
)
def test_a_failure_while_timed_is_the_cells_status(tmp_path, monkeypatch, fails, status, reason):
    settings = replace(FAST, L=(1,), max_time_s=100.0)
    sweep = Sweep(settings, entries(Backprop()), tmp_path, memory_budget=2**30)
    monkeypatch.setattr("gradbench.sweep.time", SteppingClock(0.25))  # slow calls: 6 rounds
    bench = FakeBenchmark(fails=fails)
    row = sweep.measure(bench, Cell("backprop", 2, 1))
    assert (row["status"], row["reason"]) == (status, reason)
    assert bench.has_error is (status == "timeout") and bench.rounds == 6
    assert row["grad_error"] < 1e-12  # the validation's columns are kept
    # the timed rounds' own limit: the hard limit per round, and ten times max_time_s
    assert 60.0 * 6 + 1000 - 1 < bench.limit <= 60.0 * 6 + 1000


@in_process
@pytest.mark.parametrize(
    ("method", "step", "settings", "rounds"),
    [
        # the forward cell has no validation call: its first probe (250 ms) is slow, so
        # cell_time_s (1 µs) sets the fewest rounds
        ("forward", 0.25, {}, [6]),
        # fast calls of 2⁻¹⁰ s, probed four times, fill max_time_s: 0.1 · 1024 = 102.4
        ("forward", 2**-10, {}, [102]),
        # the same for backprop, each round with its forward and floor calls: fewer
        ("backprop", 2**-10, {}, range(6, 102)),
        # a slow validated call is not probed: its denominators are timed once (really:
        # microseconds), and its rounds fill cell_time_s with its own time and their bursts
        # (3 s / (0.25 s + 2 · 25 calls of microseconds))
        ("backprop", 0.25, {"cell_time_s": 3.0}, [11, 12]),
    ],
)
def test_the_rounds_come_from_the_fastest_probe_with_its_denominators(
    tmp_path, monkeypatch, method, step, settings, rounds
):
    settings = replace(FAST, L=(1,), max_time_s=0.1, **settings)
    sweep = Sweep(settings, entries(Backprop()), tmp_path, memory_budget=2**30)
    monkeypatch.setattr("gradbench.sweep.time", SteppingClock(step))
    bench = FakeBenchmark()
    sweep.measure(bench, Cell(method, 2, 1))
    assert bench.rounds in rounds


def test_write_line_goes_to_the_terminals_stderr(capfd):
    write_line("[1/2] backprop")
    assert capfd.readouterr() == ("", "[1/2] backprop\n")


@in_process
def test_deadline_stops_the_block_and_restores_the_alarm():
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(CellTimeout, match=r"^stopped after 0.05 s \(hard limit\)$"), deadline(0.05):
        time.sleep(5)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with deadline(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_deadline_without_sigalrm_sets_no_limit(monkeypatch):
    monkeypatch.delattr(signal, "setitimer")
    with deadline(1e-9):
        time.sleep(0.01)


@in_process
def test_progress_line_says_the_cell_what_happened_and_the_counts(tmp_path, monkeypatch):
    settings = replace(FAST, max_time_s=30.0)
    sweep = Sweep(settings, entries(Backprop()), tmp_path, memory_budget=2**30)
    monkeypatch.setattr("gradbench.sweep.time", SteppingClock(66.0))
    sweep.started, sweep.finished = 1.0, 4
    cell = Cell("backprop", 2, 1)
    line = sweep.progress(cell, {"status": "ok", "time_median_s": 0.01234, "ratio_to_forward": 2.5})
    # 65 s since the start; left: the floor at (2, 2) (30 s + 50 ms) and backprop (30 s)
    assert line == (
        "[4/6] backprop         N=2    L=1  0.0123 s, 2.5× forward | 1m05s elapsed, ~1m00s left"
    )
    wrong = {"status": "wrong", "time_median_s": 1.0, "reason": "off", "ratio_to_forward": math.nan}
    assert sweep.progress(cell, wrong).split(" | ")[0].endswith(" 1 s, WRONG: off")
    skipped = {"status": "skipped", "reason": "declined: no"}
    assert sweep.progress(cell, skipped).split(" | ")[0].endswith("L=1  skipped: declined: no")
    assert (
        sweep.progress(cell, {"status": "ok", "time_median_s": 2.0})
        .split(" | ")[0]
        .endswith("L=1  2 s")
    )
    assert sweep.progress(cell, {"status": "timeout"}).split(" | ")[0].endswith("L=1  timeout: ")


@in_process
def test_time_left_counts_what_is_still_to_run(tmp_path):
    """Fresh: two references at max_time_s + 50 ms each and backprop at max_time_s (no
    forward time yet to project from), per size."""
    settings = replace(FAST, L=(1,), max_time_s=0.5, cell_time_s=1.0, budget_s=10.0)
    sweep = Sweep(settings, entries(Backprop(), fake_methods.Huge()), tmp_path,
                  memory_budget=2**30)  # fmt: skip
    assert sweep._seconds_left() == pytest.approx(2 * 0.55 + 0.5 + 0.5)
    sweep.record(Cell("forward", 2, 1), status="ok", time_median_s=0.004)
    sweep.finished = 0
    # forward on file: nothing; backprop 2 × 4 ms < 20 ms: a fast cell, 0.5 s / 16 ms = 31
    # rounds, each after an untimed call; huge: over budget
    assert sweep._seconds_left() == pytest.approx(0.55 + (2 * 0.008 * 31 + 0.05) + 0.0)
    sweep.record(Cell("forward", 2, 1), status="ok", time_median_s=0.05)
    sweep.finished = 1  # the forward cell is behind
    # the floor, then backprop 2 × 50 ms = 0.1 s: a slow cell, its rounds (1 s / 0.1 s = 10)
    # and two calls
    assert sweep._seconds_left() == pytest.approx(0.55 + 0.1 * 12)
    sweep.record(Cell("forward", 2, 1), status="ok", time_median_s=0.01)
    sweep.finished = 1
    # 2 × 10 ms = 20 ms, FAST_S itself: a slow cell, 1 s / 20 ms = 50 rounds and two calls
    assert sweep._seconds_left() == pytest.approx(0.55 + 0.02 * 52)


@pytest.mark.parametrize(("seconds", "text"), [(5.4, "5s"), (59.6, "1m00s"), (125, "2m05s")])
def test_clock(seconds, text):
    assert _clock(seconds) == text


def test_plain_values_for_extra_info():
    value = {"a": (np.float64(1.5), math.nan), "b": [np.int64(2)], "c": "x"}
    assert _plain(value) == {"a": [1.5, None], "b": [2], "c": "x"}
    assert type(_plain(np.int64(2))) is int


def test_peak_memory_counts_what_the_block_allocates():
    with _peak_memory() as peak:
        block = np.ones(10**6)
    assert peak[0] >= block.nbytes and not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        before = np.ones(10**6)  # traced before the block: not counted in it
        with _peak_memory() as peak:
            np.ones(10**5)
        assert tracemalloc.is_tracing() and 8 * 10**5 <= peak[0] < before.nbytes
    finally:
        tracemalloc.stop()


@in_process
def test_a_run_records_its_settings_methods_and_threads(tmp_path):
    sweep = Sweep(FAST, entries(Backprop()), tmp_path, threads=1, memory_budget=2**30)
    assert sweep.env["blas_threads"] == 1
    settings = sweep.run_settings()
    assert settings["methods"] == ["backprop"] and settings["threads"] == 1
    assert "train" not in settings and settings["N"] == (2,)
    record = sweep.environment_record()
    assert record["run_id"] == sweep.run_id and record["settings"]["N"] == [2]
    assert record["machine"] == sweep.env["machine"]
    assert record["malloc_keeps_freed"] is environment.keep_freed_memory()
    sweep.record(Cell("forward", 2, 1), status="crashed")
    assert sweep.csv == tmp_path / "gradients.csv"
    assert list(pd.read_csv(sweep.csv).columns) == GRADIENT_COLUMNS
    sweep.finish()
    assert json.loads((tmp_path / ".run.json").read_text())["gradients"]["status"] == "finished"


@in_process
def test_fresh_and_extend_reach_the_store_which_says_what_it_moved_on_stderr(tmp_path, capfd):
    first = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30)
    first.record(Cell("forward", 2, 1), status="crashed")
    first.finish()
    extended = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30, extend=True)
    assert extended.store.decision.reason == "--extend: other configurations"
    again = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30)  # not finished
    assert again.store.decision.action == "resume" and again.run_id == first.run_id
    fresh = Sweep(FAST, entries(Backprop()), tmp_path, memory_budget=2**30, fresh=True)
    assert fresh.store.decision.reason == "--fresh" and fresh.store.rows() == []
    out, err = capfd.readouterr()
    assert out == "" and err.startswith("gradbench: moved 1 rows of gradients.csv")


@in_process
def test_the_problem_is_made_once_per_size(tmp_path):
    sweep = Sweep(FAST, entries(Counts()), tmp_path, memory_budget=2**30)
    first = sweep.problem(2, 1)
    assert sweep.problem(2, 1) is first and sweep.problem(2, 2).net.L == 2
    assert sweep._backprop is None  # no backprop entry: nothing to pair with
    assert list(sweep.denominators(Cell("fake-counts", 2, 2))) == ["forward"]


# -- results tied to the machine, end to end ---------------------------------------------------

REPOSITORY = Path(__file__).resolve().parent.parent
TINY = """
[default]
N = [2, 3]
L = [1]
methods = ["backprop", "fd-central"]
budget_s = 0.5
hard_limit_s = 5.0
max_time_s = 0.01
cell_time_s = 0.05

[default.train]
sizes = [[2, 1]]
seeds = 1
budget_evals = 50
optimizers = ["gd/backprop", "nelder-mead"]

[quick]
N = [2]
budget_s = 0.2
"""


def run_cli(*args, fingerprint="machine-a"):
    env = os.environ | {"GRADBENCH_FINGERPRINT": fingerprint}
    result = subprocess.run([sys.executable, "-m", "gradbench", *args], capture_output=True,
                            text=True, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.e2e
def test_rows_of_another_machine_are_archived_and_measured_again(tmp_path):
    args = ["run", "--out", str(tmp_path), "--N", "2", "--L", "1", "--methods", "backprop"]
    run_cli(*args, fingerprint="machine-a")
    before = pd.read_csv(tmp_path / "gradients.csv")
    result = run_cli(*args, fingerprint="machine-b")
    after = pd.read_csv(tmp_path / "gradients.csv")
    assert set(after.fingerprint) == {"machine-b"} and len(after) == len(before)
    assert set(after.run_id).isdisjoint(before.run_id)
    (old_run,) = set(before.run_id)
    archived = pd.read_csv(tmp_path / "archive" / old_run / "gradients.csv")
    assert archived.timestamp.tolist() == before.timestamp.tolist()
    assert "another machine (fingerprint machine-a, this one machine-b)" in result.stderr


@pytest.mark.e2e
@pytest.mark.timeout(320)  # six gradbench processes: run, train and report, twice
def test_quick_then_default_on_a_copy_of_the_committed_results(tmp_path):
    """A fresh clone's `make bench-quick` then `make bench`, on a tiny grid: both complete
    with a report; the committed rows are archived, not lost, and not mixed in."""
    out = tmp_path / "results"
    out.mkdir()
    for name in ("gradients.csv", "training.csv", "environment.json"):
        shutil.copy(REPOSITORY / "results" / name, out / name)
    committed = pd.read_csv(out / "gradients.csv")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    for profile in ("quick", "default"):
        common = ["--out", str(out), "--config", str(config), "--profile", profile]
        run_cli("run", *common, "--threads", "1")
        run_cli("train", *common)
        run_cli("report", "--out", str(out))
        table = pd.read_csv(out / "gradients.csv")
        assert table.run_id.nunique() == 1 and set(table.fingerprint) == {"machine-a"}
        assert set(table.N) == ({2} if profile == "quick" else {2, 3})
        assert (out / "REPORT.md").stat().st_size > 0
    archived = pd.concat(
        pd.read_csv(out / "archive" / run / "gradients.csv") for run in committed.run_id.unique()
    )
    assert len(archived) == len(committed)


@pytest.mark.e2e
def test_the_fingerprint_does_not_depend_on_how_gradbench_is_started(tmp_path):
    """The console script and ``python -m`` load numpy's and scipy's BLAS in another
    order; the fingerprint must be the same."""
    code = "from gradbench.environment import fingerprint; print(fingerprint())"
    env = {k: v for k, v in os.environ.items() if k != "GRADBENCH_FINGERPRINT"}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    later = "import scipy.linalg, numpy.linalg; " + code
    second = subprocess.run([sys.executable, "-c", later], capture_output=True, text=True, env=env)
    assert first.stdout == second.stdout and len(first.stdout.strip()) == 12


@in_process
def test_passes_split_the_rounds_and_the_row_pools_every_pass(tmp_path):
    """Three passes of the fewest rounds (6): 2 rounds each, the fake benchmark's first two
    round times (1 and 2 ms) every time, so the pooled median is 1.5 ms over 6 pairs. The
    row is on file after the first pass, and each later pass rewrites it."""
    settings = replace(ONE_LAYER, passes=3)
    sweep = Sweep(settings, entries(Backprop()), tmp_path, memory_budget=2**30)
    lines = []
    sweep.echo = lines.append
    cell = Cell("backprop", 2, 1)
    for timing_pass in range(3):
        for c in sweep.cells:
            bench = FakeBenchmark()
            row = sweep.measure(bench, c, timing_pass)
            assert bench.rounds == 2 and bench.extra_info["pass"] == timing_pass
            brackets = bench.extra_info.get("forward_times_s", [])  # the forward cell has none
            assert len(brackets) == (0 if c.method == "forward" else 3)  # this pass's alone
            assert row["rounds"] == row["pairs"] == 2 * (timing_pass + 1)
            assert sweep.row(c)["pairs"] == row["pairs"]
            on_disk = pd.read_csv(sweep.csv).set_index("method").loc[c.method, "pairs"]
            assert on_disk == {0: 2, 1: 2, 2: 6}[timing_pass]  # written in the first and last
        assert set(sweep.pending) == (set(sweep.cells) if timing_pass < 2 else set())
    row = sweep.row(cell)
    assert (row["time_median_s"], row["time_min_s"], row["passes"]) == (1.5e-3, 1e-3, 3)
    assert lines[0].startswith("[1/3] forward")
    assert lines[3].startswith("[pass 2/3, 2 to go] forward ")
    assert lines[-1].startswith("[pass 3/3, 0 to go] backprop ")
    assert sweep.finished == 3


@pytest.mark.parametrize(
    ("rounds", "passes", "shares"),
    [
        (6, 8, [1, 1, 1, 1, 1, 1, 0, 0]),  # fewer rounds than passes: one each while they last
        (10, 4, [3, 3, 2, 2]),  # dealt out one by one: the first passes get the rest
        (8, 8, [1] * 8),
        (500, 1, [500]),
    ],
)
def test_a_cells_rounds_are_dealt_out_over_the_passes(rounds, passes, shares):
    pending = Pending(lambda: None, rounds, passes, None, {}, {})
    assert [pending.share(k) for k in range(len(shares))] == shares
    assert pending.share(len(shares)) == 0
    timed = [k for k, n in enumerate(shares) if n]
    assert [k for k in timed if pending.last(k)] == [timed[-1]]  # the pass that ends the cell


@in_process
def test_a_later_pass_times_only_the_cells_the_first_timed_and_a_failure_ends_them(tmp_path):
    settings = replace(ONE_LAYER, passes=3)
    sweep, _, lines = swept(tmp_path, Backprop(), Declines(), settings=settings)
    declined, backprop = Cell("fake-declines", 2, 1), Cell("backprop", 2, 1)
    assert sweep.row(declined)["status"] == "skipped" and declined not in sweep.pending
    shown = len(lines)
    assert sweep.measure(FakeBenchmark(), declined, 1) is None and len(lines) == shown
    row = sweep.measure(FakeBenchmark(fails=RuntimeError("lost the core")), backprop, 1)
    assert (row["status"], row["reason"]) == ("error", "RuntimeError: lost the core")
    assert row["grad_error"] < 1e-12 and backprop not in sweep.pending
    assert sweep.measure(FakeBenchmark(), backprop, 2) is None


@in_process
def test_a_later_pass_pairs_each_cell_with_its_own_sizes_denominators(tmp_path):
    """After the first pass the sweep holds the last size's problem; a cell of the first
    size timed again must still call its own size's forward pass and backprop (a gradient
    of another size would not even fit its θ)."""
    settings = replace(FAST, N=(2, 3), L=(1,), passes=2)
    sweep, first, _ = swept(tmp_path, Backprop(), CheckpointedBackprop(), settings=settings)
    later = [sweep.measure(FakeBenchmark(), c, 1) for c in sweep.cells]
    rows = [row for row, _ in first.values()] + later
    assert [r["status"] for r in rows] == ["ok"] * len(rows)
    assert {r["pairs"] for r in later} == {6}  # 3 rounds in each pass
