"""The report's bookkeeping, one rule per test, on hand-made rows."""

import dataclasses
import math

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


# ---------------------------------------------------------------- hand-made rows


def _rows(*rows: dict) -> pd.DataFrame:
    """Method cells: status ok, kind exact, no reason unless given."""
    base = {"kind": "exact", "status": "ok", "reason": None, "L": 1}
    frame = pd.DataFrame([base | r for r in rows])
    return frame.assign(P=frame.get("P", frame.L * frame.N * frame.N))


def test_a_table_without_status_or_with_two_unknown_ones_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "gradients.csv"
    write_atomic(pd.DataFrame({c: [1] for c in analysis.REQUIRED}), path)
    with pytest.raises(GradbenchError, match=r"is corrupt or not a gradbench table: no column"):
        analysis.load_gradients(path)
    rows = pd.DataFrame({c: [1, 2] for c in analysis.REQUIRED}).assign(status=["zz", "aa"])
    write_atomic(rows, path)
    with pytest.raises(GradbenchError, match=r"is corrupt or truncated: status 'aa' in a row$"):
        analysis.load_gradients(path)


def test_loaded_columns_are_the_required_then_status_then_optional_then_the_rest():
    frame = pd.DataFrame({"extra": [1], "status": ["ok"], "method": ["m"]})
    cols = list(analysis.load_gradients_frame(frame).columns)
    n = len(analysis.REQUIRED)
    assert cols[:n] == analysis.REQUIRED and cols[n] == "status"
    assert cols[n + 1 : -1] == analysis.OPTIONAL and cols[-1] == "extra"


def test_the_latest_machine_survives_bad_timestamps_and_none_at_all():
    rows = pd.DataFrame({"machine": ["a", "b", "c"], "fingerprint": ["1", "2", "3"],
                         "timestamp": ["2026-01-02T00:00:00+00:00", "garbage",
                                       "2026-01-01T23:00:00-02:00"]})  # fmt: skip
    assert list(analysis.latest_machine(rows).fingerprint) == ["3"]  # 01:00 UTC on the 2nd
    none = rows.assign(timestamp=None)
    assert list(analysis.latest_machine(none).fingerprint) == ["3"]  # the last row's
    assert analysis.machine_key(rows) == "fingerprint"


def test_the_fingerprint_is_compared_as_text():
    rows = pd.DataFrame({"machine": ["a", "b"], "fingerprint": [12, "12"],
                         "timestamp": ["2026-01-01", "2026-01-02"]})  # fmt: skip
    assert len(analysis.latest_machine(rows)) == 2


def test_unavailable_means_a_reason_starting_with_unavailable():
    rows = _rows({"method": "a", "N": 2, "reason": "unavailable: x"},
                 {"method": "b", "N": 2, "reason": "error: unavailable"},
                 {"method": "c", "N": 2, "kind": "reference"},
                 {"method": "d", "N": 2, "status": "error"})  # fmt: skip
    assert list(analysis.unavailable(rows)) == [True, False, False, False]
    assert list(analysis.methods_only(rows).method) == ["b", "d"]
    assert list(analysis.measured(rows).method) == ["b"]


def test_presentation_from_a_minimal_data_file(tmp_path):
    path = tmp_path / "report.toml"
    path.write_text(
        '[[family]]\nname = "x"\nlabel = "X"\ncolour = "red"\nmethods = ["m"]\n'
        '[[family]]\nname = "other"\nlabel = "O"\ncolour = "grey"\nmethods = []\n'
        'theory_slope = 2\n[kinds]\nexact = "x"\n[headline]\nx = "m"\n'
    )
    pres = analysis.load_presentation(path)
    assert [f.name for f in pres.families] == ["x", "other"]
    assert pres.families[0] == analysis.Family("x", "X", "red", ("m",), None)
    assert pres.families[1].theory_slope == 2
    assert pres.targets == () and pres.memory == {} and pres.headline == {"x": "m"}
    assert pres.family_of("plugin", "exact").name == "x"
    assert pres.family_of("plugin", "stochastic").name == "other"  # kind not in [kinds]
    assert math.isnan(analysis.theory_slope("m", "exact", pres))
    assert pres.memory_model("m", "exact") is None
    path.write_text(path.read_text() + '[[target]]\nmethod = "m"\n[memory.families]\nx = "layer"\n')
    pres = analysis.load_presentation(path)
    assert pres.targets == ({"method": "m"},) and pres.memory == {"families": {"x": "layer"}}


def test_a_cell_with_one_bound_has_no_interval():
    iv = analysis.ratio(pd.Series({"r": 2.0, "r_lo": 1.5}), "r")
    assert (iv.value, iv.lo) == (2.0, 1.5) and math.isnan(iv.hi) and not iv.has_interval


def test_an_unavailable_method_is_named_once_with_its_first_reason():
    reasons = ["unavailable: a", "unavailable: b", "unavailable: c"]
    g = pd.DataFrame({"method": ["t", "t", "j"], "status": "error", "reason": reasons})
    assert analysis.unavailable_methods(g) == {"t": "unavailable: a", "j": "unavailable: c"}


def test_no_targets_still_make_a_table_with_its_columns():
    table = analysis.check_targets(_target_rows(), ())
    assert table.empty and list(table.columns) == ["target", "result", "missed at", "worst"]


def test_memory_model_by_method_then_by_family(pres):
    assert pres.memory_model("backprop", "exact") == "activations"
    assert pres.memory_model("backprop-checkpoint", "exact") == "checkpoint"
    assert pres.memory_model("fd-central", "approximate") == "layer"  # by its family
    assert pres.memory_model("my-plugin", "approximate") is None
    by_kind = dataclasses.replace(pres, kinds={"approximate": "finite-differences"})
    assert by_kind.memory_model("my-plugin", "approximate") == "layer"  # by its kind's family


def test_an_interval_needs_both_bounds():
    assert analysis.Interval(1.0, 0.5, 2.0).has_interval
    assert not analysis.Interval(1.0, 0.5).has_interval
    assert not analysis.Interval(1.0, hi=2.0).has_interval
    iv = analysis.ratio(pd.Series({"r": 2.0, "r_hi": 3.0}), "r")
    assert iv.value == 2.0 and math.isnan(iv.lo) and iv.hi == 3.0


def test_reference_size_most_methods_then_largest_P():
    rows = _rows(*[{"method": m, "N": 4} for m in "abc"],
                 *[{"method": m, "N": 8} for m in "ab"],
                 *[{"method": m, "N": 2, "L": 3} for m in "abc"],
                 {"method": "d", "N": 16, "status": "error"},
                 {"method": "e", "N": 16, "status": "error"})  # fmt: skip
    assert analysis.reference_size(rows) == (4, 1)  # 3 methods at P = 16 and at P = 12


def test_largest_cell_is_the_deepest_among_equal_P():
    rows = _rows({"method": "m", "N": 4, "L": 2, "P": 40, "t": 1},
                 {"method": "m", "N": 2, "L": 4, "P": 40, "t": 2},
                 {"method": "m", "N": 9, "L": 1, "P": 90, "status": "error", "t": 3},
                 {"method": "x", "N": 9, "L": 1, "P": 90, "t": 4})  # fmt: skip
    assert analysis.largest_cell(rows, "m").t == 2
    assert analysis.largest_cell(rows, "nobody") is None


def test_not_ok_sorts_by_method_then_P_within_a_status_and_counts_in_report_order():
    rows = _rows({"method": "b", "N": 4, "status": "skipped"},
                 {"method": "a", "N": 8, "status": "skipped"},
                 {"method": "a", "N": 2, "status": "skipped"},
                 {"method": "z", "N": 2, "status": "timeout"},
                 {"method": "u", "N": 2, "status": "error", "reason": "unavailable: x"},
                 {"method": "ok", "N": 2})  # fmt: skip
    bad = analysis.not_ok(rows)
    assert list(zip(bad.method, bad.N, strict=True)) == [("z", 2), ("a", 2), ("a", 8), ("b", 4)]
    assert "_rank" not in bad
    assert list(analysis.status_counts(rows).items()) == [("ok", 1), ("timeout", 1), ("skipped", 3)]


def _target_rows():
    return _rows({"method": "m", "N": 4, "v": 3.0}, {"method": "m", "N": 8, "v": 1.0},
                 {"method": "m", "N": 16, "v": 2.0},
                 {"method": "o", "N": 4, "v": 2.0}, {"method": "p", "N": 4, "v": 1.0},
                 {"method": "o", "N": 8, "v": 1.0}, {"method": "o", "N": 32, "v": 9.0})  # fmt: skip


def test_a_target_against_the_fastest_other_where_both_were_measured():
    t = {"name": "T", "method": "m", "others": ["o", "p"], "column": "v", "at_most": 1.0}
    assert analysis.check_target(_target_rows(), t) == {
        "target": "T", "result": "missed at 1 of 2", "missed at": "N=4 L=1", "worst": 3.0,
    }  # fmt: skip
    met = analysis.check_target(_target_rows(), t | {"at_most": 3.0})
    assert (met["result"], met["missed at"]) == ("met at every size", "–")


def test_a_target_on_a_column_alone_within_its_size_limits():
    t = {"name": "T", "method": "m", "column": "v", "at_most": 1.5}
    assert analysis.check_target(_target_rows(), t)["missed at"] == "N=4 L=1, N=16 L=1"
    wide = analysis.check_target(_target_rows(), t | {"min_N": 8})
    assert (wide["result"], wide["worst"]) == ("missed at 1 of 2", 2.0)  # N = 8 counts
    small = analysis.check_target(_target_rows(), t | {"max_P": 64})
    assert (small["result"], small["worst"]) == ("missed at 1 of 2", 3.0)  # P = 64 counts
    none = analysis.check_target(_target_rows(), t | {"min_N": 64})
    assert none == {"target": "T", "result": "not measured", "missed at": "–", "worst": None}
    table = analysis.check_targets(_target_rows(), (t,))
    assert list(table.columns) == ["target", "result", "missed at", "worst"] and len(table) == 1
