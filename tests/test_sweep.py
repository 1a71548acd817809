"""The harness end to end, through the real command line and pytest-benchmark."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from conftest import gradbench

from gradbench.config import Settings
from gradbench.results import GRADIENT_COLUMNS, STATUSES
from gradbench.sweep import config_of, kept_on_resume, rounds_for

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


def test_raw_json_is_pytest_benchmarks_own_with_per_round_data(tiny):
    out, table, _ = tiny
    (raw,) = (out / "raw").glob("*.json.gz")
    data = json.loads(gzip.decompress(raw.read_bytes()))
    names = {b["extra_info"]["method"] for b in data["benchmarks"]}
    assert names == {"forward", "matmul-floor", "backprop", "fd-central", "forward-mode"}
    for b in data["benchmarks"]:
        rounds = b["stats"]["rounds"]
        assert len(b["stats"]["data"]) == rounds == b["extra_info"]["pairs"]
        # every denominator timed before each round and once after the last
        timed = [k for k in b["extra_info"] if k.endswith("_times_s")]
        assert all(len(b["extra_info"][k]) == rounds + 1 for k in timed)
        assert len(timed) == {"forward": 0, "matmul-floor": 1}.get(b["extra_info"]["method"], 2)
    env = json.loads((out / "environment.json").read_text())
    assert env["blas_threads"] == 1 and env["numpy"] and env["machine"]


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


def test_a_cell_projected_over_budget_is_skipped_not_run(tiny):
    _, table, _ = tiny
    huge = table[table.method == "fake-huge"]
    assert (huge.status == "skipped").all()  # its prepare() raises if it is ever called
    assert (huge.projected_s > 0.2).all() and huge.reason.str.startswith("projected").all()


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


def test_every_status_has_a_resume_rule():
    assert set(STATUSES) == {"ok", "wrong", "skipped", "timeout", "error", "crashed"}


def test_the_key_holds_every_setting_that_changes_a_measurement():
    settings = Settings(methods=("backprop",))
    assert set(config_of(settings)) == {
        "B", "dtype", "activation", "loss", "bias", "seed", "budget_s", "hard_limit_s",
        "max_time_s", "cell_time_s", "prepare_budget_s",
    }  # fmt: skip
    assert {f.name for f in fields(Settings)} - set(config_of(settings)) == {
        "N",
        "L",
        "methods",
        "train",
    }


@pytest.mark.parametrize(
    ("expected", "per_round", "rounds"),
    [
        (1e-4, 2e-4, 500),  # fast: 0.2 s / 0.2 ms = 1000, capped
        (1e-3, 2e-3, 100),  # fast: 0.2 s / 2 ms
        (0.1, 0.15, 10),  # slow: 1.5 s / 0.15 s
        (1.0, 1.2, 6),  # slow: at least 6 pairs, for a 95 % interval
    ],
)
def test_rounds_fill_the_time_of_the_cell(expected, per_round, rounds):
    settings = Settings(max_time_s=0.2, cell_time_s=1.5)
    assert rounds_for(expected, per_round, settings) == rounds


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


def test_the_fingerprint_does_not_depend_on_how_gradbench_is_started(tmp_path):
    """The console script and ``python -m`` load numpy's and scipy's BLAS in another
    order; the fingerprint must be the same."""
    code = "from gradbench.environment import fingerprint; print(fingerprint())"
    env = {k: v for k, v in os.environ.items() if k != "GRADBENCH_FINGERPRINT"}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    later = "import scipy.linalg, numpy.linalg; " + code
    second = subprocess.run([sys.executable, "-c", later], capture_output=True, text=True, env=env)
    assert first.stdout == second.stdout and len(first.stdout.strip()) == 12
