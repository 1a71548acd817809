import pytest

from gradbench.cli import main


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


def test_list_shows_every_method(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["backprop", "fd-central", "forward-mode", "complex-step", "spsa"]:
        assert name in out


def test_check_compares_methods_with_backprop(capsys):
    assert main(["check", "--N", "4", "--L", "2", "--methods", "backprop,fd-central"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fd = next(line for line in lines if line.strip().startswith("fd-central"))
    rho_max = float(fd.split()[2])
    assert 0 < rho_max < 1e-6 and fd.rstrip().endswith("ok")


def test_train_refuses_an_unknown_gradient_method_before_running_anything(capsys, tmp_path):
    """Issue 18's planted bug: without train's upfront name check, ``gd/nope`` surfaced as
    a KeyError traceback after the valid runs had already spent their budgets."""
    grids = tmp_path / "grids.toml"
    grids.write_text(
        "[tiny.train]\nsizes = [[2, 1]]\nseeds = 1\nbudget_s = 0.05\n"
        'optimizers = ["gd/backprop", "gd/nope"]\n'
    )
    out = tmp_path / "results"
    assert main(["train", "--config", str(grids), "--profile", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown method 'nope'" in err and "Traceback" not in err
    assert not (out / "training.csv").exists()
