from pathlib import Path

import pandas as pd
import pytest
from conftest import gradbench

from gradbench.cli import main, summary_line

FAKES = str(Path(__file__).with_name("fake_methods.py"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--N", "0"], "expected a positive integer, got 0"),
        (["check", "--N", "-3"], "expected a positive integer, got -3"),
        (["check", "--N", "abc"], "expected a positive integer, got 'abc'"),
        (["check", "--L", "0"], "expected a positive integer, got 0"),
        (["check", "--B", "0"], "expected a positive integer, got 0"),
        (["check", "--methods", "nope"], "unknown method 'nope'"),
        (["check", "--plugin", "/no/such/file.py"], "plugin file not found"),
        (["list", "--plugin", "SYNTAX"], "syntax error"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(argv, message, capsys, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    argv = [str(bad) if a == "SYNTAX" else a for a in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_list_shows_every_method_and_the_timed_references_in_100_columns(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["backprop", "fd-central", "forward-mode", "complex-step", "spsa"]:
        assert name in out
    assert "forward " in out and "matmul-floor" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_list_shows_the_cost_and_memory_models(capsys):
    assert main(["list"]) == 0
    backprop = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("backprop"))
    # (3L−1)/L forward passes at L = 2 and L = 4; (L+3)·B·N + P float64 numbers at N=64,
    # L=4, B=64: 8·(7·4096 + 16640) bytes = 362 496 bytes = 354 KiB
    assert backprop.split()[2:6] == ["2.5", "2.75", "354", "KiB"]


def test_check_compares_methods_with_backprop(capsys):
    assert main(["check", "--N", "4", "--L", "2", "--methods", "backprop,fd-central"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fd = next(line for line in lines if line.strip().startswith("fd-central"))
    grad_error = float(fd.split()[2])
    assert 0 < grad_error < 1e-6 and fd.rstrip().endswith("ok")


def test_check_says_wrong_with_the_tolerance(capsys):
    argv = ["check", "--N", "4", "--L", "2", "--plugin", FAKES, "--methods"]
    assert main([*argv, "fake-off-by-ten-percent"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert "wrong: grad_error" in line and "> tolerance 1e-08" in line


# -- every bad input is one line and exit 2 (survive) -------------------------------------

MISTYPED = "[default]\nB = 'many'\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--methods", ""], "expected comma-separated method names, got ''"),
        (["check", "--methods", " , "], "expected comma-separated method names"),
        (["run", "--out", "/proc/x/y"], "cannot create the results folder /proc/x/y"),
        (["run", "--out", "FILE"], "cannot create the results folder"),
        (["run", "--out", "/proc/self"], "cannot write to the results folder /proc/self"),
        (["run", "--config", "MISTYPED"], "B = 'many' has the wrong type"),
        (["run", "--config", "DIR"], "cannot read config file"),
        (["check", "--N", "100000", "--L", "100"], "needs 7.28 TiB for θ, the data and one"),
        (["check", "--memory-budget", "lots"], "expected a size such as 512M"),
        (["run", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["run", "--activation", "gelu"], "invalid choice: 'gelu'"),
    ],
)
def test_more_bad_input_gives_one_line_and_exit_2(argv, message, capsys, tmp_path):
    (tmp_path / "mistyped.toml").write_text(MISTYPED)
    (tmp_path / "file").write_text("")
    paths = {"MISTYPED": tmp_path / "mistyped.toml", "DIR": tmp_path, "FILE": tmp_path / "file"}
    argv = [str(paths.get(a, a)) for a in argv]
    assert main(argv) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == "gradbench 0.1.0"


BROKEN = """from gradbench import Method
class Broken(Method):
    name, kind, description = "broken-cost", "exact", "its cost model raises"
    def cost(self, net):
        return {}["no such key"]
    def prepare(self, problem):
        return None
"""


def test_an_internal_error_is_one_line_with_the_way_to_its_traceback(tmp_path, monkeypatch):
    plugin = tmp_path / "broken.py"
    plugin.write_text(BROKEN)
    result = gradbench("list", "--plugin", str(plugin))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "internal error: KeyError: 'no such key'" in result.stderr
    assert "--debug or GRADBENCH_DEBUG=1" in result.stderr
    debug = gradbench("--debug", "list", "--plugin", str(plugin))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_the_same_plugin_file_twice_is_one_plugin(capsys):
    fakes = str(Path(__file__).with_name("fake_methods.py"))
    assert main(["list", "--plugin", fakes, "--plugin", fakes]) == 0
    assert capsys.readouterr().out.count("fake-raises ") == 1


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        ({"ok": 5, "skipped": 2}, "gradbench: 7 cells: 5 ok, 2 skipped"),
        ({"ok": 3, "crashed": 1, "timeout": 2},
         "gradbench: 6 cells: 1 crashed, 3 ok, 2 timeout — 3 need a look (see reason column)"),
        ({"ok": 1, "wrong": 1, "error": 0},
         "gradbench: 2 cells: 1 ok, 1 wrong — 1 need a look (see reason column)"),
    ],
)  # fmt: skip
def test_summary_line_counts_cells_by_status(counts, line):
    assert summary_line(counts) == line


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[default]\nN = []\n", "N needs at least one value"),
        ("[default]\nmethods = []\n", "methods is empty"),
        ("[default]\ndtype = 'float16'\n", "float16"),
        ("[default]\nbudget_s = -1.0\n", "budget_s must be positive"),
    ],
)
def test_impossible_config_values_are_one_line(toml, message, tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(toml)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_results_file_that_cannot_be_read_is_one_line(tmp_path, capsys):
    (tmp_path / "gradients.csv").mkdir()
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err, err


def test_run_takes_the_network_options_of_check(tmp_path):
    out = tmp_path / "r"
    options = ["--activation", "relu", "--loss", "mse", "--dtype", "float32", "--no-bias",
               "--seed", "7"]  # fmt: skip
    result = gradbench("run", "--out", str(out), "--N", "3", "--L", "1", "--threads", "1",
                       "--methods", "backprop", "--budget", "0.2", *options)  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "gradients.csv")
    assert len(table) == 3 and (table.status == "ok").all()
    assert set(zip(table.activation, table.loss, table.dtype, table.bias, table.seed,
                   strict=True)) == {("relu", "mse", "float32", False, 7)}  # fmt: skip
    assert (table.P == 9).all()  # N² · L without bias


def test_train_refuses_an_unknown_gradient_method_before_running_anything(capsys, tmp_path):
    """Issue 18's planted bug: without train's upfront name check, ``gd/nope`` surfaced as
    a KeyError traceback after the valid runs had already spent their budgets."""
    grids = tmp_path / "grids.toml"
    grids.write_text(
        "[tiny.train]\nsizes = [[2, 1]]\nseeds = 1\nbudget_evals = 50\n"
        'optimizers = ["gd/backprop", "gd/nope"]\n'
    )
    out = tmp_path / "results"
    assert main(["train", "--config", str(grids), "--profile", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown method 'nope'" in err and "Traceback" not in err
    assert not (out / "training.csv").exists()
