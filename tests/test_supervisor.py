"""Crash isolation and one run per folder, with real processes: plugins that kill their
interpreter, a run killed with SIGKILL, two runs at once, a lock left by a dead run."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import gradbench

from gradbench import lock
from gradbench.errors import GradbenchError
from gradbench.supervisor import death

CRASHERS = str(Path(__file__).with_name("crash_methods.py"))
# a tiny, fast grid: pytest-benchmark spends milliseconds per cell
FAST = """[default]
N = [2, 3, 4]
L = [1]
budget_s = 0.5
hard_limit_s = 30.0
max_time_s = 0.002
cell_time_s = 0.01
"""


@pytest.fixture
def grid(tmp_path) -> list[str]:
    path = tmp_path / "grid.toml"
    path.write_text(FAST)
    return ["--config", str(path), "--threads", "1", "--plugin", CRASHERS]


def run(out, grid, methods, *extra, env=None):
    return subprocess.run(
        [sys.executable, "-m", "gradbench", "run", "--out", str(out), *grid,
         "--methods", methods, *extra],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def table(out) -> pd.DataFrame:
    return pd.read_csv(out / "gradients.csv").set_index(["method", "N"])


def test_a_crashing_plugin_costs_only_its_own_cells(tmp_path, grid):
    out = tmp_path / "r"
    result = run(out, grid, "backprop,crash-exit,crash-segv")
    assert result.returncode == 0, result.stderr
    t = table(out)
    assert t.loc[("crash-exit", 3), "status"] == "crashed"
    assert t.loc[("crash-exit", 3), "reason"] == "the process measuring it exited with status 3"
    assert t.loc[("crash-segv", 3), "status"] == "crashed"
    assert "signal 11 (SIGSEGV)" in t.loc[("crash-segv", 3), "reason"]
    others = t.drop([("crash-exit", 3), ("crash-segv", 3)])
    assert len(others) == 5 * 3 - 2 and (others.status == "ok").all()
    assert "Traceback" not in result.stderr and "Fatal Python error" not in result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "2 crashed" in last and "13 ok" in last
    # the per-round data of every timed cell reached a raw JSON file, sealed or not
    timed = set()
    for raw in (out / "raw").glob("*.json.gz"):
        for bench in json.loads(gzip.decompress(raw.read_bytes()))["benchmarks"]:
            assert len(bench["stats"]["data"]) == bench["stats"]["rounds"]
            timed.add((bench["extra_info"]["method"], bench["extra_info"]["N"]))
    assert len(timed) == 13 and ("crash-exit", 2) in timed  # measured by the worker that died
    assert not list((out / "raw").glob("*.jsonl")) and not (out / ".inflight.json").exists()


def test_a_run_killed_mid_cell_records_that_cell_crashed_next_time(tmp_path, grid):
    out, sleeping = tmp_path / "r", tmp_path / "sleeping"
    env = {**os.environ, "GRADBENCH_TEST_SLEEPING": str(sleeping)}
    argv = [sys.executable, "-m", "gradbench", "run", "--out", str(out), *grid,
            "--methods", "backprop,crash-sleep"]  # fmt: skip
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(sleeping)
    worker = json.loads((out / ".inflight.json").read_text())["pid"]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    _wait_gone(worker)  # the worker dies with its supervisor
    again = run(out, grid, "backprop,crash-sleep")
    assert again.returncode == 0, again.stderr
    t = table(out)
    assert t.loc[("crash-sleep", 3), "status"] == "crashed"
    assert "killed with the whole run" in t.loc[("crash-sleep", 3), "reason"]
    assert (t.drop(("crash-sleep", 3)).status == "ok").all() and len(t) == 4 * 3


def test_sigterm_is_handled_like_ctrl_c(tmp_path, grid):
    out, sleeping = tmp_path / "r", tmp_path / "sleeping"
    env = {**os.environ, "GRADBENCH_TEST_SLEEPING": str(sleeping)}
    argv = [sys.executable, "-m", "gradbench", "run", "--out", str(out), *grid,
            "--methods", "backprop,crash-sleep"]  # fmt: skip
    run_ = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    _wait_for(sleeping)
    run_.send_signal(signal.SIGTERM)
    _, err = run_.communicate(timeout=60)
    assert run_.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1] == "gradbench: interrupted; results written so far are kept"
    assert "Traceback" not in err
    t = table(out)
    assert (t.status == "ok").all() and ("crash-sleep", 3) not in t.index  # abandoned, kept out
    assert len(t.xs(2, level="N")) == 4 and not (out / ".inflight.json").exists()


def test_retry_crashed_measures_crashed_cells_again(tmp_path, grid):
    out, fixed = tmp_path / "r", {"GRADBENCH_TEST_CRASH_N": "0"}
    strict = run(out, grid, "crash-exit", "--N", "3", "--strict")
    assert strict.returncode == 1, strict.stderr  # --strict: a crashed cell fails the run
    assert "1 crashed" in strict.stdout.strip().splitlines()[-1]
    # --extend keeps the run's cells: a crashed one is not measured again unasked …
    again = run(out, grid, "crash-exit", "--N", "3", "--extend", env=fixed)
    assert again.returncode == 0 and "1 crashed" in again.stdout.strip().splitlines()[-1]
    assert table(out).loc[("crash-exit", 3), "status"] == "crashed"
    # … and is with --retry-crashed
    retry = run(out, grid, "crash-exit", "--N", "3", "--extend", "--retry-crashed", env=fixed)
    assert retry.returncode == 0, retry.stderr
    assert table(out).loc[("crash-exit", 3), "status"] == "ok"


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, grid):
    out, sleeping = tmp_path / "r", tmp_path / "sleeping"
    env = {**os.environ, "GRADBENCH_TEST_SLEEPING": str(sleeping), "GRADBENCH_TEST_SLEEP_S": "3"}
    argv = [sys.executable, "-m", "gradbench", "run", "--out", str(out), *grid,
            "--methods", "backprop,crash-sleep"]  # fmt: skip
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(sleeping)
    second = run(out, grid, "backprop")
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert f"in use by gradbench run (pid {first.pid}, run " in second.stderr
    assert first.wait(timeout=120) == 0, first.stderr.read()
    t = table(out)
    assert len(t) == 4 * 3 and (t.status == "ok").all()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from gradbench import lock\n"
         "with lock.hold(sys.argv[1], 'run', 'stale-run'):\n"
         "    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    busy = rf"in use by gradbench run \(pid {holder.pid}, run stale-run, started"
    with pytest.raises(GradbenchError, match=busy), lock.hold(tmp_path, "run", "mine"):
        pass
    holder.kill()
    holder.wait()
    said = []
    with lock.hold(tmp_path, "run", "mine", echo=said.append) as me:
        assert me["pid"] == os.getpid() and lock.read_holder(tmp_path)["run_id"] == "mine"
    assert len(said) == 1 and "stale-run" in said[0] and "no longer running" in said[0]
    assert lock.read_holder(tmp_path) is None  # released cleanly: nothing to take over


def test_training_is_refused_in_a_folder_in_use(tmp_path):
    with lock.hold(tmp_path, "run", "busy"):
        result = gradbench("train", "--out", str(tmp_path), "--profile", "quick")
    assert result.returncode == 2 and "in use by gradbench run" in result.stderr


@pytest.mark.parametrize(
    ("returncode", "words"),
    [(-11, "was killed by signal 11 (SIGSEGV)"), (-9, "signal 9 (SIGKILL — out of memory?)"),
     (3, "exited with status 3"), (0, "exited with status 0")],
)  # fmt: skip
def test_death_says_how_a_worker_ended(returncode, words):
    assert words in death(returncode)


def _wait_for(path: Path, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def _wait_gone(pid: int, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < end, f"process {pid} still running"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


# one size (N = 3, where the crashing plugins die), one seed, a tiny budget
TRAIN = """[default.train]
sizes = [[3, 1]]
seeds = 1
budget_evals = 30
per_class = 2
n_test = 10
lr_grid = [1.0]
optimizers = ["gd/backprop", "gd/crash-exit", "powell"]
"""


def train(out, grid_file, *extra, env=None):
    return subprocess.run(
        [sys.executable, "-m", "gradbench", "train", "--out", str(out), "--config",
         str(grid_file), "--plugin", CRASHERS, *extra],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def test_a_training_run_whose_process_dies_is_recorded_crashed_and_training_goes_on(tmp_path):
    grid_file, out = tmp_path / "train.toml", tmp_path / "r"
    grid_file.write_text(TRAIN)
    result = train(out, grid_file)
    assert result.returncode == 0, result.stderr
    assert "recorded as crashed, continuing in a new worker" in result.stderr
    t = pd.read_csv(out / "training.csv")
    t["name"] = t.gradient_method.fillna(t.optimizer)  # one seed: a run per name
    final = t.groupby("name").tail(1).set_index("name")
    assert final.loc["crash-exit", "status"] == "crashed"
    assert final.loc["crash-exit", "reason"] == "the process measuring it exited with status 3"
    assert (final.drop("crash-exit").status == "ok").all() and len(final) == 3
    assert t.run_id.nunique() == 1  # the next worker resumed the same run
    assert "Traceback" not in result.stderr and not (out / ".inflight.json").exists()
    assert (out / "training_summary.csv").exists()
    # --extend keeps the crashed run unasked; --retry-crashed trains it again
    fixed = {"GRADBENCH_TEST_CRASH_N": "0"}
    again = train(out, grid_file, "--extend", env=fixed)
    assert again.returncode == 0 and "crashed (--retry-crashed" in again.stdout
    retry = train(out, grid_file, "--extend", "--retry-crashed", env=fixed)
    assert retry.returncode == 0, retry.stderr
    t = pd.read_csv(out / "training.csv")
    assert (t.status == "ok").all() and set(t.gradient_method.fillna("")) == {
        "backprop", "crash-exit", ""}  # fmt: skip
