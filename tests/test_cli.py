from pathlib import Path

import pytest

from gradbench.cli import main

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
