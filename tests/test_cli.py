import argparse
import io
import json
import re
import signal
import sys
from pathlib import Path

import fake_methods
import pandas as pd
import pytest
from conftest import gradbench, rho_max

from gradbench import cli, config, registry, supervisor
from gradbench.cli import main, summary_line
from gradbench.errors import GradbenchError
from gradbench.methods.backprop import Backprop
from gradbench.problem import make_problem
from gradbench.results import GRADIENT_COLUMNS
from gradbench.testing import reference_gradient

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
        (["check", "--loss", "hinge"], "argument --loss: invalid choice: 'hinge'"),
        (["check", "--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
        (["check", "--activation", "gelu"], "argument --activation: invalid choice: 'gelu'"),
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


# -- the pieces of the command line, in process (issue 18: mutation testing) --------------


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (cli.positive_int, "1", 1),
        (cli.positive_int, "12", 12),
        (cli.non_negative_int, "0", 0),
        (cli.non_negative_int, " 0 ", 0),
        (cli.non_negative_int, "3", 3),
        (cli.int_list, "4,8,16", [4, 8, 16]),
        (cli.int_list, "5", [5]),
        (cli.name_list, " a, ,b ,", ["a", "b"]),
        (cli.byte_size, "2K", 2048),
        (cli.positive_float, "0.5", 0.5),
        (cli.positive_float, "1e-3", 0.001),
    ],
)
def test_argument_types_accept(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (cli.positive_int, "0", "expected a positive integer, got 0"),
        (cli.positive_int, "x", "expected a positive integer, got 'x'"),
        (cli.non_negative_int, "-1", "expected a positive integer, got -1"),
        (cli.non_negative_int, "00", "expected a positive integer, got 0"),
        (cli.int_list, "4,0", "expected a positive integer, got 0"),
        (cli.int_list, "4;8", "expected a positive integer, got '4;8'"),
        (cli.name_list, ",", "expected comma-separated method names, got ','"),
        (cli.byte_size, "0", "expected a size such as 512M"),
        (cli.positive_float, "0", "expected a positive number, got 0"),
        (cli.positive_float, "-2.5", "expected a positive number, got -2.5"),
        (cli.positive_float, "nan", "expected a positive number, got nan"),
        (cli.positive_float, "fast", "expected a positive number, got 'fast'"),
    ],
)
def test_argument_types_refuse_with_one_message(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse(text)
    assert str(caught.value).startswith(message), caught.value


def test_every_command_and_option_says_what_it_is_for_in_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {a.dest: bool(a.help) for a in sub._choices_actions} == dict.fromkeys(
        ["list", "check", "run", "compare", "train", "merge", "report", "predict"], True
    )
    for name, command in [("", parser), *sub.choices.items()]:
        for action in command._actions:
            if action.dest not in ("help", "version", "command", "worker"):
                assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


@pytest.mark.parametrize(
    ("x", "text"),
    [(None, "-"), (2.5, "2.5"), (2.75, "2.75"), (999.4, "999"), (1000, "1,000"),
     (123456.7, "123,457")],
)  # fmt: skip
def test_list_numbers(x, text):
    assert cli._number(x) == text


@pytest.mark.parametrize(
    ("x", "text"),
    [(None, "no model"), (0, "0 B"), (1023, "1.02e+03 B"), (1024, "1 KiB"),
     (362496, "354 KiB"), (3 * 2**20, "3 MiB"), (2**30, "1 GiB"), (5 * 2**40, "5.12e+03 GiB")],
)  # fmt: skip
def test_list_byte_sizes(x, text):
    assert cli._bytes(x) == text


def test_a_listing_wraps_its_description_at_100_columns_indented_by_two():
    # "  " + 97 letters + " b" is 101 characters: one too many for a line
    lines = cli._listing("m", "exact", ["1", "2"], "3 KiB", "", "a" * 97 + " b")
    assert lines[0].split() == ["m", "exact", "1", "2", "3", "KiB"]
    assert lines[0].index("exact") == 19 and lines[0].endswith("3 KiB")  # no trailing blank
    assert lines[1:] == ["  " + "a" * 97, "  b"]


UNAVAILABLE = """from gradbench import Method
class NeedsNothingThere(Method):
    name, kind, description = "needs-nothing-there", "exact", "needs a module not installed"
    requires = ("no_such_module_anywhere",)
    def cost(self, net):
        return 1.0
    def prepare(self, problem):
        return None
"""


def test_list_shows_columns_sizes_references_and_unavailable_methods(capsys, tmp_path):
    plugin = tmp_path / "unavailable_plugin.py"
    plugin.write_text(UNAVAILABLE)
    assert main(["list", "--plugin", str(plugin)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(" at N=16 L=2 and N=64 L=4;")
    assert lines[1].endswith(" at N=64 L=4 B=64")
    assert lines[2].split() == ["method", "kind", "N=16", "L=2", "N=64", "L=4", "memory"]
    assert not [line for line in lines if line.endswith(" ")]  # no trailing blanks
    rows = {
        line.split()[0]: (line.split(), after)
        for line, after in zip(lines[3:], lines[4:], strict=False)
        if not line.startswith(" ")
    }
    assert rows["backprop"][0] == ["backprop", "exact", "2.5", "2.75", "354", "KiB"]
    missing, reason = rows["needs-nothing-there"]
    assert missing == ["needs-nothing-there", "-", "-", "-", "-", "unavailable"]
    assert reason.startswith("  needs no_such_module_anywhere (not installed): /")
    assert rows["forward"][0] == ["forward", "timed", "1", "1", "-"]
    assert rows["matmul-floor"][0] == ["matmul-floor", "timed", "-", "-", "-"]
    assert lines[-1].startswith("  ") and lines[-2].startswith("matmul-floor ")


class _Counted(Backprop):
    """Backprop that counts how often it is prepared and asked for a gradient."""

    name, kind = "counted", "exact"
    prepared = calls = 0

    def prepare(self, problem):
        type(self).prepared += 1
        backprop = super().prepare(problem)

        def grad_fn(theta):
            type(self).calls += 1
            return backprop(theta)

        return grad_fn


class _Declines(Backprop):
    name = "declines"

    def supports(self, problem):
        return f"only for N ≥ 100, not {problem.net.N}"


class _PrepareFails(Backprop):
    name = "prepare-fails"

    def prepare(self, problem):
        raise MemoryError("no room\nsecond line")


class _Noted(Backprop):
    name, kind = "noted", "stochastic"  # stochastic: no tolerance checked per cell

    def note(self, problem):
        return f"seeded at P = {problem.P}"


def _row(method, problem):
    g_ref = reference_gradient(problem, problem.theta0)
    return cli._check_one(registry.Entry(method.name, "here", method), problem, g_ref)


BLANK = {"loss": "", "grad_error": "", "grad_error_mean": "", "tolerance": "", "time_s": ""}


@pytest.mark.parametrize(
    ("method", "status"),
    [
        (_Declines(), "declined: only for N ≥ 100, not 3"),
        (_PrepareFails(), "error: MemoryError: no room"),
        (fake_methods.Raises(), "error: RuntimeError: boom"),
    ],
)
def test_check_says_why_a_method_has_no_numbers(method, status):
    row = _row(method, make_problem(3, 1, 4))
    assert row == {"method": method.name, **BLANK, "status": status}


def test_check_lists_an_unavailable_method_with_its_reason():
    entry = registry.Entry("gone", "somewhere", reason="needs torch (not installed)")
    row = cli._check_one(entry, None, None)
    assert row == {"method": "gone", **BLANK, "status": "unavailable: needs torch (not installed)"}


def test_check_row_of_a_correct_method_times_three_single_calls():
    problem = make_problem(3, 1, 4)
    _Counted.prepared = _Counted.calls = 0
    row = _row(_Counted(), problem)
    assert _Counted.prepared == 1  # the checked function is the timed one
    assert _Counted.calls == 1 + 3  # one checked, three timed; the fastest is reported
    assert row["loss"] == f"{problem.loss(problem.theta0):.12g}"
    assert (row["grad_error"], row["grad_error_mean"]) == ("0.0e+00", "0.0e+00")
    assert (row["tolerance"], row["status"]) == ("1e-08", "ok")
    assert re.fullmatch(r"\d\.\d\de[-+]\d\d", row["time_s"]), row["time_s"]
    assert list(row) == ["method", "loss", "grad_error", "grad_error_mean", "tolerance",
                         "time_s", "status"]  # fmt: skip


def test_check_row_of_a_wrong_method_says_by_how_much():
    row = _row(fake_methods.OffByTenPercent(), make_problem(3, 1, 4))
    assert row["status"].startswith("wrong: grad_error ") and row["tolerance"] == "1e-08"
    assert row["status"].endswith(" > tolerance 1e-08")
    assert float(row["grad_error"]) > 1e-3 and float(row["grad_error_mean"]) > 0


def test_check_row_shows_a_missing_tolerance_and_the_methods_note():
    row = _row(_Noted(), make_problem(3, 1, 4))
    assert (row["tolerance"], row["status"]) == ("-", "ok (seeded at P = 12)")


def test_check_prints_the_problem_then_one_row_per_method(capsys):
    argv = "check --N 3 --L 2 --B 4 --activation relu --loss mse --dtype float32 --no-bias "
    assert main([*argv.split(), "--seed", "7", "--methods", "backprop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    problem = make_problem(3, 2, 4, activation="relu", loss="mse", bias=False,
                           dtype="float32", seed=7)  # fmt: skip
    loss = f"{problem.loss(problem.theta0):.12g}"
    assert lines[0] == (
        f"N=3 L=2 B=4 P=18 relu mse float32 bias=False; loss {loss}; "
        "grad_error = max ρ against float64 backprop"
    )
    assert lines[1].split() == ["method", "loss", "grad_error", "grad_error_mean", "tolerance",
                                "time_s", "status"]  # fmt: skip
    assert lines[2].split()[:2] == ["backprop", loss] and lines[2].endswith("ok")
    assert len(lines) == 3


def test_check_defaults_to_a_small_tanh_network(capsys):
    assert main(["check", "--methods", "backprop"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("N=8 L=3 B=64 P=216 tanh cross_entropy float64 bias=True; loss ")


def test_check_refuses_a_network_over_the_memory_budget(capsys):
    assert main(["check", "--N", "64", "--memory-budget", "1K", "--methods", "backprop"]) == 2
    assert "needs " in capsys.readouterr().err


def _settings(*argv: str, command: str = "run"):
    return cli._settings(cli.build_parser().parse_args([command, *argv]))


def test_run_settings_are_the_profile_without_options():
    assert _settings() == config.load("default")
    assert _settings("--profile", "quick") == config.load("quick")


def test_run_settings_take_the_grid_and_network_from_the_command_line():
    argv = "--N 4,8 --L 2 --B 16 --methods fd-central,spsa --activation relu --loss mse"
    s = _settings(*argv.split(), "--dtype", "float32", "--no-bias")
    assert (s.N, s.L, s.B, s.methods) == ((4, 8), (2,), 16, ("fd-central", "spsa"))
    assert (s.activation, s.loss, s.dtype, s.bias) == ("relu", "mse", "float32", False)
    assert s.budget_s == config.load("default").budget_s  # what no option names is kept


def test_run_settings_override_a_profile_value_with_zero_or_false(tmp_path):
    grids = tmp_path / "grids.toml"
    grids.write_text("[p]\nseed = 5\nbias = false\nB = 3\n")
    assert _settings("--config", str(grids), "--profile", "p", "--seed", "0").seed == 0
    s = _settings("--config", str(grids), "--profile", "p")
    assert (s.seed, s.bias, s.B) == (5, False, 3)  # options not given leave the profile alone


@pytest.mark.parametrize(
    ("argv", "budget_s", "hard_limit_s"),
    [
        ([], 2.0, 20.0),
        (["--budget", "0.5"], 0.5, 5.0),  # the hard limit follows: 10 × the budget
        (["--budget", "0.5", "--hard-limit", "2"], 0.5, 2.0),
        (["--hard-limit", "30"], 2.0, 30.0),
    ],
)
def test_run_settings_budget_and_hard_limit(argv, budget_s, hard_limit_s):
    s = _settings(*argv)
    assert (s.budget_s, s.hard_limit_s) == (budget_s, hard_limit_s)


def test_run_settings_are_validated_as_the_command_line():
    with pytest.raises(GradbenchError, match=r"^command line: hard_limit_s must be at least"):
        _settings("--budget", "3", "--hard-limit", "1")


def test_train_settings_ignore_the_options_of_run():
    assert _settings(command="train") == config.load("default")


@pytest.mark.parametrize(
    ("methods", "names"),
    [(None, None), (("fd-central",), ["backprop", "fd-central"]),
     (("spsa", "backprop"), ["spsa", "backprop"])],
)  # fmt: skip
def test_every_cell_is_compared_with_backprop_so_it_is_always_run(methods, names):
    assert cli._method_names(config.Settings(methods=methods)) == names


# -- run and train as supervisors and workers, with the processes faked -------------------


def _rows(*cells):
    """A gradients.csv of (method, N, L, status) cells; other columns empty."""
    return pd.DataFrame(
        [dict(zip(("method", "N", "L", "status"), c, strict=True)) for c in cells],
        columns=GRADIENT_COLUMNS,
    )


# the lock's note of a run that was killed: the next run takes the lock over and says so
STALE = {"pid": 999999999, "command": "run", "run_id": "old", "started": "2026-01-01"}


class FakeSupervisor:
    """Stands in for supervisor.supervise: notes the worker command lines and the lock,
    writes the rows the workers would have written, returns their exit status."""

    def __init__(self, rows=None, status=0):
        self.rows, self.status = rows, status

    def __call__(self, worker, out, echo):
        echo("gradbench: a line from the supervisor")
        self.workers = [worker(1), worker(2)]
        self.holder = json.loads((out / ".lock.json").read_text())
        if self.rows is not None:
            self.rows.to_csv(out / "gradients.csv", index=False)
        return self.status


RUN = ["--N", "2,4", "--L", "1", "--methods", "fd-central", "--memory-budget", "1G"]
# the last three are not this sweep's: another N, L or method
CELLS = [
    ("forward", 2, 1, "ok"), ("matmul-floor", 2, 1, "ok"), ("backprop", 2, 1, "ok"),
    ("fd-central", 2, 1, "wrong"), ("fd-central", 4, 1, "skipped"),
    ("backprop", 8, 1, "ok"), ("backprop", 2, 3, "error"), ("spsa", 2, 1, "error"),
]  # fmt: skip


def test_run_supervises_workers_and_counts_this_sweeps_cells(tmp_path, monkeypatch, capsys):
    fake = FakeSupervisor(_rows(*CELLS))
    monkeypatch.setattr(supervisor, "supervise", fake)
    (tmp_path / ".lock.json").write_text(json.dumps(STALE))
    argv = ["run", "--out", str(tmp_path), *RUN]
    assert main(argv) == 0
    head = [sys.executable, "-m", "gradbench", *argv]
    budget = ["--memory-budget", str(2**30)]  # measured once, passed to every worker
    assert fake.workers == [[*head, "--worker", "1", *budget], [*head, "--worker", "2", *budget]]
    assert fake.holder["command"] == "run" and re.fullmatch(r"\d{8}-\d{6}", fake.holder["run_id"])
    out, err = capsys.readouterr()
    assert out == (
        "gradbench: 5 cells: 3 ok, 1 skipped, 1 wrong — 1 need a look (see reason column)\n"
    )
    took_over, supervised = err.splitlines()  # progress goes to stderr
    assert took_over.startswith("gradbench: took over the lock of ")
    assert supervised == "gradbench: a line from the supervisor"
    assert main([*argv, "--strict"]) == 1  # a wrong cell fails a strict run
    monkeypatch.setattr(supervisor, "supervise", FakeSupervisor(_rows(*CELLS[:3])))
    assert main([*argv, "--strict"]) == 0


def test_run_passes_on_the_workers_failure_and_prints_no_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(supervisor, "supervise", FakeSupervisor(status=3))
    assert main(["run", "--out", str(tmp_path), *RUN]) == 3
    assert capsys.readouterr().out == ""


class Recorder:
    """Stands in for a sweep class: keeps what it was built with."""

    def __init__(self, settings, entries, out, **options):
        self.settings, self.entries, self.out, self.options = settings, entries, Path(out), options
        self.run_id, self.csv = "r1", Path(out) / "gradients.csv"
        Recorder.last = self


@pytest.fixture
def worker(monkeypatch):
    """A worker process's setting, in process: the sweep and pytest are recorders."""
    from gradbench import harness, sweep

    became = []
    monkeypatch.setattr(supervisor, "become_worker", lambda: became.append(True))
    monkeypatch.setattr(sweep, "Sweep", Recorder)
    status = {"pytest": 0}
    monkeypatch.setattr(harness, "run", lambda s: status["pytest"] if s is Recorder.last else -1)
    return became, status


def test_the_first_run_worker_opens_the_run_a_later_one_resumes(worker, tmp_path, capsys):
    became, _ = worker
    argv = ["run", "--out", str(tmp_path), *RUN, "--threads", "3", "--fresh", "--retry-crashed"]
    assert main([*argv, "--worker", "1"]) == 0
    first = Recorder.last
    assert became == [True] and first.echo_resumed is True
    assert first.options == {"fresh": True, "extend": False, "threads": 3,
                             "memory_budget": 2**30, "retry_crashed": True}  # fmt: skip
    assert [e.name for e in first.entries] == ["backprop", "fd-central"]
    assert (first.settings.N, first.settings.methods) == ((2, 4), ("fd-central",))
    assert capsys.readouterr().out == f"wrote {first.csv} and {tmp_path / 'raw'}/r1*.json.gz\n"
    assert main([*argv, "--worker", "2"]) == 0
    later = Recorder.last
    assert later.echo_resumed is False
    assert (later.options["fresh"], later.options["retry_crashed"]) == (False, False)
    assert main(["run", "--out", str(tmp_path), "--extend", "--worker", "1"]) == 0
    assert Recorder.last.options["extend"] is True
    assert Recorder.last.options["threads"] == 1  # default: one BLAS thread


def test_a_run_worker_ends_with_pytests_status(worker, tmp_path, capsys):
    _, status = worker
    argv = ["run", "--out", str(tmp_path), *RUN, "--worker", "1"]
    status["pytest"] = 5  # no tests collected: every cell was on file
    assert main(argv) == 0
    status["pytest"] = 1
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "gradbench: error: the sweep stopped early (pytest exit 1); finished cells are in "
        f"{tmp_path / 'gradients.csv'}\n"
    )


def test_a_run_worker_interrupted_by_a_signal_exits_128_plus_it(worker, tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "received", signal.SIGTERM)
    assert main(["run", "--out", str(tmp_path), *RUN, "--worker", "1"]) == 128 + 15


def test_run_on_a_cluster(tmp_path, monkeypatch, capsys):
    from gradbench import cluster

    addresses = []
    monkeypatch.setattr(cluster, "ClusterSweep", Recorder)
    monkeypatch.setattr(
        cluster, "run", lambda s, a: addresses.append((s, a)) or {"ok": 3, "wrong": 1}
    )
    argv = ["run", "--out", str(tmp_path), *RUN, "--cluster", "local:2"]
    assert main([*argv, "--fresh", "--plugin", FAKES, "--threads", "3", "--retries", "0"]) == 0
    assert addresses == [(Recorder.last, "local:2")]
    assert [e.name for e in Recorder.last.entries] == ["backprop", "fd-central"]
    assert (Recorder.last.settings.N, Recorder.last.settings.methods) == ((2, 4), ("fd-central",))
    assert Recorder.last.options == {"fresh": True, "plugins": (FAKES,), "threads": 3,
                                     "retries": 0}  # fmt: skip
    assert capsys.readouterr().out == (
        f"wrote {tmp_path / 'gradients.csv'} (3 ok, 1 wrong) and the raw JSON of each size in "
        f"{tmp_path / 'raw'}/\n"
    )
    assert main(argv) == 0
    assert Recorder.last.options == {"fresh": False, "plugins": (), "threads": 1, "retries": 2}


def test_train_supervises_workers_under_the_lock(tmp_path, monkeypatch, capsys):
    fake = FakeSupervisor(status=4)
    monkeypatch.setattr(supervisor, "supervise", fake)
    (tmp_path / ".lock.json").write_text(json.dumps(STALE))
    argv = ["train", "--out", str(tmp_path)]
    assert main(argv) == 4  # the workers' status is the command's
    head = [sys.executable, "-m", "gradbench", *argv]
    assert fake.workers == [[*head, "--worker", "1"], [*head, "--worker", "2"]]
    assert fake.holder["command"] == "train" and re.fullmatch(r"\d{8}-\d{6}", fake.holder["run_id"])
    took_over, supervised = capsys.readouterr().err.splitlines()  # both on stderr
    assert took_over.startswith("gradbench: took over the lock of ")
    assert supervised == "gradbench: a line from the supervisor"


def test_run_of_a_sweep_that_wrote_no_table_counts_no_cells(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(supervisor, "supervise", FakeSupervisor())
    assert main(["run", "--out", str(tmp_path), *RUN]) == 0
    assert capsys.readouterr().out == "gradbench: 0 cells: \n"


SUMMARY = pd.DataFrame(
    {"label": ["gd/backprop"], "P": [10], "reached": [0.9], "evals_to_target": [123.456],
     "final_loss": [0.012345], "test_accuracy": [0.5], "not_shown": [7]}
)  # fmt: skip


@pytest.fixture
def trainer(monkeypatch):
    """A training worker in process: training and its summary are recorders."""
    from threadpoolctl import threadpool_info

    from gradbench import training, training_analysis

    calls = {}

    def run_all(settings, entries, out, **options):
        blas = {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
        calls.update(settings=settings, entries=entries, out=out, options=options, blas=blas)
        return "trajectories"

    monkeypatch.setattr(supervisor, "become_worker", lambda: None)
    monkeypatch.setattr(training, "run_all", run_all)
    monkeypatch.setattr(training_analysis, "summarize", lambda t: SUMMARY if t else None)
    crossing = pd.DataFrame({"optimizer": ["powell"], "crossover_P": [42]})
    monkeypatch.setattr(training_analysis, "crossovers", lambda s: crossing if s is SUMMARY else 0)
    return calls


def test_the_first_train_worker_starts_afresh_and_writes_the_summary(trainer, tmp_path, capsys):
    argv = ["train", "--out", str(tmp_path), "--fresh", "--retry-crashed", "--budget", "50"]
    assert main([*argv, "--threads", "2", "--worker", "1"]) == 0
    assert trainer["options"] == {"fresh": True, "extend": False, "retry_crashed": True,
                                  "echo": cli._print}  # fmt: skip
    assert trainer["settings"].train.budget_evals == 50 and trainer["out"] == tmp_path
    assert "backprop" in trainer["entries"] and trainer["blas"] == {2}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == list(SUMMARY.columns[:-1])
    assert lines[1].split() == ["gd/backprop", "10", "0.9", "123.5", "0.01235", "0.5"]
    assert lines[2:4] == ["optimizer  crossover_P", "   powell           42"]
    assert lines[4] == f"wrote {tmp_path / 'training.csv'} and {tmp_path / 'training_summary.csv'}"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "training_summary.csv"), SUMMARY)
    assert main([*argv, "--worker", "2"]) == 0
    assert trainer["options"]["fresh"] is False and trainer["options"]["retry_crashed"] is False
    assert trainer["blas"] == {1}  # one BLAS thread unless told


def test_train_keeps_the_profiles_budget_and_extends(trainer, tmp_path):
    assert main(["train", "--out", str(tmp_path), "--extend", "--worker", "1"]) == 0
    assert trainer["options"]["extend"] is True
    assert trainer["settings"] == config.load("default")


def test_train_takes_plugin_files(trainer, tmp_path):
    assert main(["train", "--out", str(tmp_path), "--plugin", FAKES, "--worker", "1"]) == 0
    assert "fake-raises" in trainer["entries"]


class _Flushes(io.StringIO):
    flushes = 0

    def flush(self):
        self.flushes += 1


@pytest.mark.parametrize(("say", "stream"), [(cli._print, "stdout"), (cli._say, "stderr")])
def test_progress_lines_are_flushed_at_once(say, stream, monkeypatch):
    out = _Flushes()
    monkeypatch.setattr(sys, stream, out)
    say("one line")
    assert (out.getvalue(), out.flushes) == ("one line\n", 1)


RAISES = """from gradbench import Method
class Raises{n}(Method):
    name, kind, description = "raises-{n}", "exact", "its cost model raises"
    def cost(self, net):
        raise {exc}
    def prepare(self, problem):
        return None
"""


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        ("KeyError('no such key')", 1, "gradbench: internal error: KeyError: 'no such key' "
         "(run with --debug or GRADBENCH_DEBUG=1 for the traceback)\n"),
        ("ValueError('bad value')", 2, "gradbench: error: bad value\n"),
        ("KeyboardInterrupt()", 130, "gradbench: interrupted; results written so far are kept\n"),
    ],
)  # fmt: skip
def test_main_ends_every_failure_in_one_line_and_its_status(exc, status, message, tmp_path,
                                                             capsys, monkeypatch):  # fmt: skip
    monkeypatch.delenv("GRADBENCH_DEBUG", raising=False)
    plugin = tmp_path / f"raises_{status}.py"
    plugin.write_text(RAISES.format(n=status, exc=exc))
    assert main(["list", "--plugin", str(plugin)]) == status
    assert capsys.readouterr().err == message


@pytest.mark.parametrize(("flag", "env", "shown"),
                         [("--debug", "", True), (None, "1", True), (None, "0", False),
                          (None, "", False)])  # fmt: skip
def test_debug_shows_the_traceback_of_an_internal_error(flag, env, shown, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADBENCH_DEBUG", env)
    plugin = tmp_path / "raises_debug.py"
    plugin.write_text(RAISES.format(n="debug", exc="KeyError('k')"))
    argv = [*([flag] if flag else []), "list", "--plugin", str(plugin)]
    if shown:
        with pytest.raises(KeyError):
            main(argv)
    else:
        assert main(argv) == 1


def test_main_reads_the_command_line_by_default(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gradbench", "--version"])
    with pytest.raises(SystemExit):
        main()
    assert capsys.readouterr().out == "gradbench 0.1.0\n"


@pytest.mark.parametrize(
    "argv",
    [[], ["--N", "4"], ["--L", "2"], ["--P", "1e6", "--N", "4"], ["--P", "1e6", "--L", "2"],
     ["--P", "1e6", "--N", "4", "--L", "2"]],
)  # fmt: skip
def test_predict_wants_either_P_or_N_and_L(argv, tmp_path, capsys):
    assert main(["predict", "--out", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err == "gradbench: error: give either --P, or both --N and --L\n"


@pytest.mark.parametrize("argv", [["--P", "1e6"], ["--N", "4", "--L", "2"]])
def test_predict_reads_the_results_folder_given(argv, tmp_path, capsys):
    assert main(["predict", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gradbench: error: results file not found: {tmp_path}/gradients.csv")


def test_compare_merge_and_report_hand_their_folders_on(tmp_path, monkeypatch, capsys):
    from gradbench import compare, merge, report

    monkeypatch.setattr(compare, "load", lambda folder: folder.name)
    monkeypatch.setattr(compare, "compare", lambda a, b: f"{a} against {b}")
    monkeypatch.setattr(compare, "render", lambda table: f"table: {table}")
    assert main(["compare", str(tmp_path / "A"), str(tmp_path / "B")]) == 0
    assert capsys.readouterr().out == "table: A against B\n"

    merged = []
    machines = pd.DataFrame({"fingerprint": ["a", "a", "b"]})
    monkeypatch.setattr(merge, "merge", lambda f, o: merged.append((f, o)) or machines)
    assert main(["merge", "x", "y", "--out", str(tmp_path)]) == 0
    assert merged == [([Path("x"), Path("y")], tmp_path)]
    assert capsys.readouterr().out == (
        f"wrote {tmp_path / 'gradients.csv'} (3 rows from 2 machine(s)) and "
        f"{tmp_path / 'MACHINES.md'}\n"
    )

    monkeypatch.setattr(report, "build", lambda out: out / "REPORT.md")
    assert main(["report", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"wrote {tmp_path / 'REPORT.md'}, {tmp_path / 'fits.csv'} and the figures in "
        f"{tmp_path / 'plots'}/\n"
    )


@pytest.mark.parametrize(
    ("argv", "P"), [(["--P", "1e6"], 1000000), (["--N", "8", "--L", "2"], 144)]
)
def test_predict_names_the_size_the_machine_and_the_file(argv, P, tmp_path, capsys):
    import report_fixtures as fx

    fx.gradients().to_csv(tmp_path / "gradients.csv", index=False)  # its latest: fp-new
    assert main(["predict", "--out", str(tmp_path), *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"PREDICTED (not measured) time of one gradient at P = {P} on fp-new, "
        f"from {tmp_path / 'gradients.csv'}: "
    )
    assert lines[1].split()[0] == "method" and any(ln.split()[0] == "backprop" for ln in lines)


def test_a_run_worker_names_its_run_in_the_lock(worker, tmp_path):
    (tmp_path / ".lock.json").write_text(json.dumps({"command": "run", "run_id": "old"}))
    assert main(["run", "--out", str(tmp_path), *RUN, "--worker", "1"]) == 0
    assert json.loads((tmp_path / ".lock.json").read_text())["run_id"] == "r1"


def test_check_defaults_to_seed_0(capsys):
    assert main(["check", "--N", "3", "--L", "1", "--B", "4", "--methods", "backprop"]) == 0
    problem = make_problem(3, 1, 4, seed=0)
    assert f"; loss {problem.loss(problem.theta0):.12g};" in capsys.readouterr().out


def test_check_measures_the_error_against_the_reference_it_is_given():
    """cmd_check computes backprop's gradient once, for every method's row."""
    problem = make_problem(3, 1, 4)
    g = reference_gradient(problem, problem.theta0)
    row = cli._check_one(registry.Entry("backprop", "here", Backprop()), problem, 2 * g)
    assert row["grad_error"] == f"{rho_max(g, 2 * g):.1e}" != "0.0e+00"


@pytest.mark.parametrize(("bias", "P"), [([], "8,320"), (["--no-bias"], "8,192")])
def test_check_refuses_a_size_over_budget_naming_its_P(bias, P, capsys):
    argv = ["check", "--N", "64", "--L", "2", "--dtype", "float32", "--memory-budget", "1K"]
    assert main([*argv, *bias]) == 2
    assert f"(P={P}), over the memory budget 1 KiB" in capsys.readouterr().err  # L·(N² + N)


def test_the_supervisors_worker_option_is_hidden_from_help():
    for command in ("run", "train"):
        p = cli.build_parser()._subparsers._group_actions[0].choices[command]
        worker = next(a for a in p._actions if a.dest == "worker")
        assert worker.help == argparse.SUPPRESS


@pytest.mark.parametrize("command", ["run", "train", "report", "predict"])
def test_the_results_folder_is_results_by_default(command):
    assert cli.build_parser().parse_args([command]).out == "results"


def test_a_command_is_required(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith(
        "gradbench: error: the following arguments are required: command"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["merge", "x"], "the following arguments are required: --out"),
        (["merge", "--out", "m"], "the following arguments are required: DIR"),
        (["predict", "--P", "0"], "argument --P: expected a positive number, got 0"),
        (["predict", "--N", "0", "--L", "1"], "argument --N: expected a positive integer, got 0"),
        (["predict", "--N", "1", "--L", "0"], "argument --L: expected a positive integer, got 0"),
        (["train", "--threads", "0"], "argument --threads: expected a positive integer, got 0"),
        (["train", "--budget", "0"], "argument --budget: expected a positive number, got 0"),
        (["run", "--threads", "0"], "argument --threads: expected a positive integer, got 0"),
        (["run", "--budget", "-1"], "argument --budget: expected a positive number, got -1"),
        (["run", "--hard-limit", "0"], "argument --hard-limit: expected a positive number"),
        (["run", "--retries", "-1"], "argument --retries: expected a positive integer, got -1"),
        (["run", "--worker", "0"], "argument --worker: expected a positive integer, got 0"),
        (["run", "--fresh", "--extend"], "argument --extend: not allowed with argument --fresh"),
        (["train", "--fresh", "--extend"], "argument --extend: not allowed with argument --fresh"),
    ],
)
def test_each_commands_options_are_checked_before_anything_runs(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gradbench: error: {message}") and err.count("\n") == 1, err


def test_checks_memory_budget_counts_the_bytes_of_the_dtype_asked_for():
    # float32 at N=64, L=2, B=64: θ (P = 8320), X (B·N = 4096), labels (B = 64) and two
    # layers' activations (2·B·N = 8192): 20672 numbers × 4 bytes (float64 would need twice)
    argv = ["check", "--N", "64", "--L", "2", "--dtype", "float32", "--methods", "backprop"]
    assert main([*argv, "--memory-budget", str(20672 * 4)]) == 0
