"""`gradbench run --cluster`: the bookkeeping rules one by one, then real LocalClusters
(worker processes on the loopback) against a local run, a killed worker and an
interrupted client."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from gradbench import config
from gradbench.cli import main
from gradbench.cluster import (
    COLUMNS,
    INSTALL,
    ClusterSweep,
    cell_row,
    finished,
    layout_warnings,
    machine_fingerprint,
    parse_address,
    ready,
    ruled_out,
    settings_toml,
    sizes_by_P,
)
from gradbench.config import Settings
from gradbench.errors import GradbenchError
from gradbench.registry import discover

FAKES = str(Path(__file__).with_name("fake_methods.py"))
# Two sizes, (2, 1) then (2, 2): as small as a grid can be and still show projection across
# sizes, a unit in flight and a resume. fake-sleeps times out at (2, 1); fake-slow takes
# 0.05 s at P = 6, so its projection to P = 12 (0.1 s) is over the budget of 0.08 s.
TINY = """[tiny]
N = [2]
L = [1, 2]
budget_s = 0.08
hard_limit_s = 0.3
max_time_s = 0.01
cell_time_s = 0.05
methods = ["backprop", "fake-sleeps", "fake-slow"]
"""
CELLS = {"forward", "matmul-floor", "backprop", "fake-sleeps", "fake-slow"}
SIZES = 2
SETTINGS = Settings(N=(2, 3), L=(1, 2), budget_s=0.2, hard_limit_s=0.3)


# -- the rules, one by one ---------------------------------------------------------------


def test_local_k_is_a_local_cluster_anything_else_a_scheduler_address():
    assert parse_address("local:3") == 3
    assert parse_address("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    for bad in ("local:0", "local:x", "local:"):
        with pytest.raises(GradbenchError, match="local:K"):
            parse_address(bad)


def test_sizes_go_out_by_growing_P():
    # P = L (N² + N): (2,1) 6, (2,2) 12, (3,1) 12, (3,2) 24; ties by (N, L)
    assert sizes_by_P(SETTINGS) == [(2, 1), (2, 2), (3, 1), (3, 2)]


def test_a_size_waits_for_every_size_it_dominates():
    grid = [(2, 1), (2, 2), (3, 1), (3, 2)]
    assert ready((2, 1), grid, set())
    assert ready((2, 2), grid, {(2, 1)}) and ready((3, 1), grid, {(2, 1)})
    assert not ready((3, 2), grid, {(2, 1), (2, 2)})  # (3, 1) is smaller in both N and L
    assert ready((3, 2), grid, {(2, 1), (2, 2), (3, 1)})


def _rows(*cells):
    """Rows at SETTINGS' configuration: (method, N, L, status, projected_s)."""
    return pd.DataFrame([cell_row(SETTINGS, {}, m, (N, L), status=s, projected_s=p)
                         for m, N, L, s, p in cells])  # fmt: skip


def test_a_method_skipped_or_timed_out_over_budget_is_not_sent_to_larger_sizes():
    table = _rows(("fd", 2, 1, "timeout", 0.3), ("fd", 2, 2, "skipped", 5.0))
    why = ruled_out(table, SETTINGS, "fd", (3, 2))  # the largest dominated size speaks
    assert why == {
        "status": "skipped",
        "reason": "skipped at smaller N=2, L=2: larger cells are slower",
        "projected_s": 5.0,
    }
    assert ruled_out(table, SETTINGS, "fd", (3, 1))["reason"].startswith("timeout at smaller N=2")
    assert ruled_out(table, SETTINGS, "other", (3, 2)) is None


def test_a_skip_without_a_projection_over_budget_rules_nothing_out():
    # unavailable / declined rows are skipped with no projection: larger sizes still run
    table = _rows(("torch", 2, 1, "skipped", float("nan")), ("fd", 3, 1, "timeout", 0.3))
    assert ruled_out(table, SETTINGS, "torch", (3, 2)) is None
    assert ruled_out(table, SETTINGS, "fd", (2, 2)) is None  # (3, 1) is not smaller than (2, 2)
    other = Settings(N=(2, 3), L=(1, 2), budget_s=1.0)  # another configuration's rows
    assert ruled_out(table, other, "fd", (3, 2)) is None


def test_a_size_is_finished_when_every_cell_has_a_row():
    cells = [(m, 2, 1, "ok", 0.0) for m in ("forward", "matmul-floor", "backprop")]
    table = _rows(*cells, ("forward", 2, 2, "ok", 0.0))
    assert finished(table, SETTINGS, ["backprop"]) == {(2, 1)}
    assert finished(table, SETTINGS, ["backprop", "fd-central"]) == set()


def test_a_row_the_client_writes_has_the_cells_key_and_cost_model():
    entries = discover()
    row = cell_row(SETTINGS, entries, "fd-central", (3, 2), status="crashed", reason="gone")
    assert (row["method"], row["N"], row["L"], row["P"]) == ("fd-central", 3, 2, 2 * (9 + 3))
    cost = entries["fd-central"].method.cost(SETTINGS.network(3, 2))  # the row copies it
    assert row["kind"] == "approximate" and row["loss_evals"] == cost
    assert (row["B"], row["budget_s"], row["status"]) == (64, 0.2, "crashed")
    assert cell_row(SETTINGS, entries, "forward", (2, 1))["loss_evals"] == 1.0


class _Lost:
    """A Dask future whose unit was lost for good."""

    def result(self):
        raise RuntimeError("Attempted to run task on 3 different workers, all died")


def test_a_unit_lost_for_good_is_recorded_crashed_cell_by_cell(tmp_path):
    entries = discover()
    sweep = ClusterSweep(SETTINGS, [entries["backprop"], entries["fd-central"]], tmp_path)
    skip = {"fd-central": {"status": "skipped", "reason": "timeout at smaller", "projected_s": 9}}
    rows = sweep.collect(_Lost(), (3, 2), skip)
    table = pd.read_csv(tmp_path / "gradients.csv").set_index("method")
    assert set(table.index) == {"forward", "matmul-floor", "backprop", "fd-central"}
    assert table.status.to_dict() == {r["method"]: r["status"] for r in rows}  # all on file
    crashed = table.drop(index="fd-central")
    assert (crashed.status == "crashed").all() and (crashed.P == 24).all()
    assert (crashed.reason == "unit lost: RuntimeError: Attempted to run task on 3 different "
            "workers, all died").all()  # fmt: skip
    assert table.loc["fd-central", "status"] == "skipped"
    assert table.run_id.nunique() == 1 and (3, 2) in sweep.done


def test_a_workers_settings_file_reads_back_as_the_same_settings_at_one_size(tmp_path):
    settings = Settings(N=(2, 8), L=(1, 4), activation="relu", bias=False, budget_s=0.25)
    path = tmp_path / "unit.toml"
    path.write_text(settings_toml(settings, (8, 1), ["backprop", "fd-central"]))
    back = config.load("unit", path)
    assert back.N == (8,) and back.L == (1,)
    assert back.methods == ("backprop", "fd-central")
    assert (back.activation, back.bias, back.budget_s) == ("relu", False, 0.25)
    assert (back.B, back.hard_limit_s, back.dtype) == (64, 20.0, "float64")


def test_layouts_that_spoil_timings_are_named():
    one_each = {
        "tcp://a:1": {"nthreads": 1, "host": "a"},
        "tcp://b:1": {"nthreads": 1, "host": "b"},
    }
    assert layout_warnings(one_each) == []
    (note,) = layout_warnings({"tcp://a:1": {"nthreads": 4, "host": "a"}})
    assert "4 threads" in note and "--nthreads 1" in note
    (note,) = layout_warnings({"tcp://a:1": {"nthreads": 1, "host": "a"},
                               "tcp://a:2": {"nthreads": 1, "host": "a"}})  # fmt: skip
    assert "2 workers share host a" in note


def test_the_fingerprint_names_the_blas_threads_and_can_be_forced(monkeypatch):
    one, two = machine_fingerprint(1), machine_fingerprint(2)
    assert len(one) == 12 and one != two  # timings at 1 and 2 BLAS threads do not compare
    assert machine_fingerprint(1) == one
    monkeypatch.setenv("GRADBENCH_FINGERPRINT", "laptop")
    assert machine_fingerprint(1) == "laptop"


def test_without_the_extra_cluster_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    assert main(["run", "--out", str(tmp_path), "--cluster", "local:1"]) == 2
    err = capsys.readouterr().err
    assert err == f"gradbench: error: {INSTALL}\n"
    assert INSTALL == "--cluster needs Dask distributed: pip install 'gradbench[cluster]'"


def test_a_bad_cluster_address_is_one_line(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--cluster", "local:zero"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- real LocalClusters ------------------------------------------------------------------

try:
    import distributed
except ImportError:
    distributed = None
# The end-to-end tests start a Dask cluster and gradbench processes, each bounded by its
# own waits (90–150 s); on a loaded 2-core machine they outlast the suite's 120 s default.
E2E_TIMEOUT = pytest.mark.timeout(320)
needs_dask = pytest.mark.skipif(
    distributed is None, reason="the 'cluster' extra is not installed (pip install -e '.[cluster]')"
)


def _args(tmp_path, out):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    return ["run", "--config", str(cfg), "--profile", "tiny", "--out", str(out), "--threads", "1",
            "--plugin", FAKES]  # fmt: skip


def _gradbench(*args: str) -> subprocess.CompletedProcess:
    """The command line in a fresh process, bounded: a hung cluster fails the test."""
    command = [sys.executable, "-m", "gradbench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=150)


def _start(args) -> subprocess.Popen:
    command = [sys.executable, "-m", "gradbench", *args]
    return subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _cells(table: pd.DataFrame) -> set:
    return set(table[["method", "N", "L", "status"]].itertuples(index=False, name=None))


@pytest.fixture(scope="module")
def local_and_cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    local = _gradbench(*_args(tmp, tmp / "local"))
    assert local.returncode == 0, local.stderr
    run = _gradbench(*_args(tmp, tmp / "cluster"), "--cluster", "local:2")
    assert run.returncode == 0, run.stderr
    read = pd.read_csv
    return read(tmp / "local" / "gradients.csv"), read(tmp / "cluster" / "gradients.csv"), tmp


@needs_dask
@E2E_TIMEOUT
def test_the_cluster_measures_the_same_cells_with_the_same_statuses(local_and_cluster):
    local, cluster, tmp = local_and_cluster
    assert _cells(cluster) == _cells(local)
    assert set(cluster.method) == CELLS and len(cluster) == SIZES * len(CELLS)
    assert list(cluster.columns) == COLUMNS
    assert cluster.fingerprint.notna().all() and (cluster.fingerprint.str.len() > 0).all()
    assert cluster.run_id.nunique() == 1
    # projection across sizes: the timeout at the smallest size keeps the method off the rest
    sleeps = cluster[cluster.method == "fake-sleeps"].set_index("L")
    assert sleeps.loc[1, "status"] == "timeout"
    assert sleeps.loc[2, "status"] == "skipped"
    assert sleeps.loc[2, "reason"] == "timeout at smaller N=2, L=1: larger cells are slower"
    # the worker projected from the smaller size's rows, as a local sweep does
    slow = cluster[cluster.method == "fake-slow"].set_index("L")
    # timed, and "wrong": its gradient is zeros
    assert slow.loc[1, "status"] == "wrong" and slow.loc[2, "status"] == "skipped"
    assert slow.loc[2, "reason"].startswith("projected ") and slow.loc[2, "projected_s"] >= 0.1
    ok = cluster[cluster.status == "ok"]
    assert (ok.ratio_to_forward > 0).all()  # each size's forward pass reached its rows
    assert (cluster[cluster.method == "backprop"].grad_error == 0).all()
    raws = sorted(p.name.split("-")[2:4] for p in (tmp / "cluster" / "raw").glob("*.json*"))
    assert raws == [["N2", "L1"], ["N2", "L2"]]
    env = json.loads((tmp / "cluster" / "environment.json").read_text())
    assert list(env["machines"]) == list(cluster.fingerprint.unique())
    assert env["machines"][cluster.fingerprint[0]]["blas_threads"] == 1


@pytest.fixture
def scheduler():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        yield cluster.scheduler_address, client


def _wait_for(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@needs_dask
@E2E_TIMEOUT
def test_a_worker_killed_mid_unit_loses_no_finished_row_and_the_run_completes(tmp_path, scheduler):
    import psutil

    address, client = scheduler
    out = tmp_path / "out"
    run = _start([*_args(tmp_path, out), "--cluster", address])
    csv = out / "gradients.csv"
    _wait_for(csv.exists, 90, "the first size on file")
    before = pd.read_csv(csv)

    def busy():  # a worker in the middle of a unit: its address, pid and the sweep it runs
        for worker, keys in client.processing().items():
            if keys:
                pid = client.run(os.getpid, workers=[worker])[worker]
                children = [p for p in psutil.Process(pid).children() if "gradbench" in p.cmdline()]
                if children:
                    return worker, pid, children

    _worker, pid, sweeps = _wait_for(busy, 90, "a unit in flight")
    os.kill(pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(sweeps, timeout=10)
    assert not alive, "the killed worker's sweep outlived it"
    _, err = run.communicate(timeout=150)
    assert run.returncode == 0, err
    after = pd.read_csv(csv)
    assert len(after) == SIZES * len(CELLS)
    assert set(after.status) <= {"ok", "wrong", "skipped", "timeout"}  # ran again, whole
    kept = before.merge(after, on=["method", "N", "L"], suffixes=("", "_after"))
    assert len(kept) == len(before)
    assert (kept.timestamp == kept.timestamp_after).all()  # finished rows were not redone


@needs_dask
@E2E_TIMEOUT
def test_an_interrupted_client_keeps_its_rows_and_resumes(tmp_path):
    out = tmp_path / "out"
    args = [*_args(tmp_path, out), "--cluster", "local:1"]
    run = _start(args)
    csv = out / "gradients.csv"
    _wait_for(csv.exists, 90, "the first size on file")
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "results written so far are kept" in err
    first = pd.read_csv(csv)
    sizes = set(zip(first.N, first.L, strict=True))
    assert len(sizes) == 1 and len(first) == len(CELLS)
    again = _gradbench(*args)
    assert again.returncode == 0, again.stderr
    assert "2 sizes (1 on file)" in again.stderr
    final = pd.read_csv(csv)
    assert len(final) == SIZES * len(CELLS)
    kept = first.merge(final, on=["method", "N", "L"], suffixes=("", "_after"))
    assert (kept.timestamp == kept.timestamp_after).all()  # sizes on file were not resent
