"""The report's bookkeeping, one rule per test, on hand-made rows."""

import pandas as pd
import pytest
import report_fixtures as fx

from gradbench import analysis
from gradbench.errors import GradbenchError
from gradbench.results import write_atomic


@pytest.fixture(scope="module")
def g():
    return fx.gradients()


def test_only_the_latest_machine_is_kept(g):
    mine = analysis.latest_machine(g)
    assert set(mine.fingerprint) == {"fp-new"} and 777.0 not in set(mine.time_median_s)


def test_the_machine_name_stands_in_for_a_missing_fingerprint():
    rows = pd.DataFrame({"machine": ["a", "b"], "fingerprint": [None, None],
                         "timestamp": ["2026-01-02", "2026-01-01"]})  # fmt: skip
    assert list(analysis.latest_machine(rows).machine) == ["a"]


def test_the_main_configuration_is_the_most_common_one(g):
    other = g.iloc[:3].assign(B=1024)
    picked = analysis.main_configuration(pd.concat([g, other]))
    assert set(picked.B) == {fx.B}


def test_families_come_from_the_data_file_and_plugins_go_by_kind(pres):
    assert pres.family_of("backprop-checkpoint", "exact").name == "reverse"
    assert pres.family_of("fd-central", "approximate").name == "finite-differences"
    assert pres.family_of("my-plugin", "approximate").name == "other"
    assert analysis.theory_slope("forward-mode", "exact", pres) == 1.0


def test_unavailable_methods_and_references_are_not_methods(g):
    shown = set(analysis.methods_only(g).method)
    assert "torch-backprop" not in shown and "forward" not in shown
    assert analysis.unavailable_methods(g) == {
        "torch-backprop": "unavailable: No module named 'torch'"
    }


def test_cells_not_measured_list_wrong_first_then_failures(g):
    bad = analysis.not_ok(analysis.latest_machine(g))
    assert list(bad.status.drop_duplicates()) == ["wrong", "crashed", "error", "timeout", "skipped"]
    skipped = int((bad.status == "skipped").sum())
    expected = {"wrong": 1, "crashed": 1, "error": 1, "timeout": 1, "skipped": skipped}
    assert analysis.status_counts(bad) == expected


def test_extremes_name_the_fastest_and_the_slowest(g):
    # at N=32, L=2: scipy-fprime's ratio is 6P, fd-central's 2P, forward-mode's P/2
    names = ["fd-central", "scipy-fprime", "forward-mode"]
    assert analysis.extremes(g, names, 32, 2) == ("forward-mode", "scipy-fprime")
    assert analysis.extremes(g, ["nonexistent"], 32, 2) is None


def test_ratio_carries_its_paired_interval(g):
    cell = analysis.largest_cell(g, "backprop")
    iv = analysis.ratio(cell, "ratio_to_forward")
    assert iv.has_interval and iv.lo == pytest.approx(0.95 * iv.value)
    assert cell.P == 4 * (512 * 512 + 512)  # the fixture's largest size


def test_targets_met_missed_and_not_measured(g, pres):
    mine = analysis.latest_machine(g)
    floor = {"name": "floor", "method": "backprop", "column": "ratio_to_floor", "at_most": 1.25}
    assert analysis.check_target(mine, floor)["result"] == "met at every size"
    strict = floor | {"at_most": 1.05}
    assert analysis.check_target(mine, strict)["result"].startswith("missed at")
    vs = {"name": "vs", "method": "fd-central", "others": ["scipy-fprime"],
          "column": "time_median_s", "at_most": 0.5}  # fmt: skip
    checked = analysis.check_target(mine, vs)
    assert checked["result"] == "met at every size" and checked["worst"] == pytest.approx(
        1 / 3, rel=0.15
    )
    torch = pres.targets[0]
    assert analysis.check_target(mine, torch)["result"] == "not measured"


def test_a_status_the_report_does_not_know_is_refused(tmp_path, g):
    write_atomic(g.assign(status="exploded"), tmp_path / "gradients.csv")
    with pytest.raises(GradbenchError, match="exploded"):
        analysis.load_gradients(tmp_path / "gradients.csv")


def test_an_older_csv_gets_the_new_columns_empty(tmp_path, g):
    write_atomic(fx.legacy(g), tmp_path / "gradients.csv")
    loaded = analysis.load_gradients(tmp_path / "gradients.csv")
    assert loaded.peak_rss_bytes.isna().all() and loaded.ratio_to_forward_lo.isna().all()


def test_memory_theory_formulas():
    assert analysis.memory_theory("activations", 10, 4, 2, 100) == 4 * 2 * 10 + 100
    assert analysis.memory_theory("checkpoint", 10, 4, 2, 100) == 2 * 2 * 10 + 100
    assert analysis.memory_theory("layer", 10, 4, 2, 100) == 2 * 10 + 100
