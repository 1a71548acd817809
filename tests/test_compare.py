"""`gradbench compare` on two hand-made results folders."""

import pandas as pd
import pytest
from conftest import gradbench

from gradbench.compare import compare, load, render
from gradbench.errors import GradbenchError

CONFIG = {"B": 64, "activation": "tanh", "loss": "cross_entropy", "bias": True, "seed": 0}


def cell(method, N, dtype, time, ratio, lo=None, hi=None, status="ok"):
    return CONFIG | {
        "method": method, "N": N, "L": 1, "P": N * N + N, "dtype": dtype, "status": status,
        "time_median_s": time, "ratio_to_forward": ratio,
        "ratio_to_forward_lo": lo, "ratio_to_forward_hi": hi,
    }  # fmt: skip


@pytest.fixture
def folders(tmp_path):
    a = [
        cell("forward", 4, "float64", 1e-5, 1.0),
        cell("backprop", 4, "float64", 3e-5, 3.0, 2.9, 3.1),
        cell("backprop", 4, "float32", 2e-5, 2.0, 1.9, 2.1),
        cell("fd-central", 4, "float64", 4e-4, 40.0, 38.0, 42.0),
        cell("spsa", 4, "float64", 1e-4, 10.0, 9.0, 11.0),
        cell("only-in-a", 4, "float64", 1e-4, 10.0),
    ]
    b = [
        cell("forward", 4, "float64", 2e-5, 1.0),
        cell("backprop", 4, "float32", 4e-5, 2.1, 2.0, 2.2),  # +5 %
        cell("backprop", 4, "float64", 6e-5, 3.0, 2.95, 3.05),  # same ratio, 2× slower
        cell("fd-central", 4, "float64", 1e-3, 50.0, 48.0, 52.0),  # +25 %
        cell("spsa", 4, "float64", 1e-4, 10.0, status="skipped"),  # not measured in B
    ]
    for name, rows in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / name / "gradients.csv", index=False)
    return tmp_path / "a", tmp_path / "b"


def test_cells_are_joined_by_their_whole_configuration(folders):
    table = compare(load(folders[0]), load(folders[1])).set_index(["method", "dtype"])
    assert len(table) == 3  # forward, skipped and one-sided cells left out
    b64, b32 = table.loc[("backprop", "float64")], table.loc[("backprop", "float32")]
    assert b64.time_ratio == pytest.approx(2.0) and b64.change == pytest.approx(1.0)
    assert b32.change == pytest.approx(2.1 / 2.0) and b32.within
    fd = table.loc[("fd-central", "float64")]
    assert fd.change == pytest.approx(1.25) and not fd.within and not fd.overlap
    assert b64.overlap and b32.overlap


def test_last_line_gives_the_share_within_10_percent_and_the_worst(folders):
    text = render(compare(load(folders[0]), load(folders[1])))
    last = text.splitlines()[-1]
    assert last.startswith("67% of 3 cells within ±10% of ratio_to_forward")
    assert "worst: fd-central N=4 L=1 float64 (40 → 50, ×1.25)" in last


def test_the_command_prints_the_table_and_the_line(folders):
    result = gradbench("compare", str(folders[0]), str(folders[1]))
    assert result.returncode == 0, result.stderr
    assert "67% of 3 cells" in result.stdout.splitlines()[-1]


def test_nothing_in_common_is_one_line(folders, tmp_path):
    (tmp_path / "c").mkdir()
    pd.DataFrame([cell("backprop", 8, "float64", 1e-5, 3.0)]).to_csv(
        tmp_path / "c" / "gradients.csv", index=False
    )
    with pytest.raises(GradbenchError, match="no cell was measured in both"):
        compare(load(folders[0]), load(tmp_path / "c"))
    result = gradbench("compare", str(folders[0]), str(tmp_path / "nope"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
