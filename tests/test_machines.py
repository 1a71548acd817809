"""The machines section: one block per fingerprint and ratios side by side, each value
read from the row of its own machine."""

import pandas as pd
from test_merge import machine, row

from gradbench.machines import by_machine, section, side_by_side


def test_each_machine_is_described_by_its_own_rows():
    rows = [*machine("aaaa"), row("aaaa", "fd-naive", 2, 1, 0, status="skipped"),
            *machine("bbbb")]  # fmt: skip
    table = by_machine(pd.DataFrame(rows)).set_index("fingerprint")
    assert list(table.index) == ["aaaa", "bbbb"]
    assert table.loc["aaaa", "cells"] == "3 ok, 1 skipped"
    assert table.loc["bbbb", "cells"] == "3 ok"
    assert table.loc["aaaa", "machine"] == "cpu aaaa" and table.loc["bbbb", "runs"] == "run-bbbb"
    # read back from a CSV with gaps, thread counts are floats: shown as whole numbers
    gaps = pd.DataFrame([*machine("aaaa"), row("aaaa", "spsa", 2, 1, 0, blas_threads=None)])
    assert by_machine(gaps).loc[0, "blas_threads"] == "1"


def test_ratios_stand_side_by_side_with_their_intervals_and_gaps():
    rows = [
        row("aaaa", "backprop", 2, 1, 2.5, ratio_to_forward_lo=2.4, ratio_to_forward_hi=2.61),
        row("bbbb", "backprop", 2, 1, 3.5),
        row("aaaa", "fd-central", 2, 1, 13.0),
        row("aaaa", "forward", 2, 1, 1.0),  # the denominator itself is not shown
        row("bbbb", "spsa", 2, 1, 9.0, status="error"),  # only measured cells are
    ]
    wide = side_by_side(pd.DataFrame(rows))
    assert list(wide.columns) == ["method", "N", "L", "aaaa", "bbbb"]
    assert wide.values.tolist() == [
        ["backprop", 2, 1, "2.5 [2.4, 2.61]", "3.5"],
        ["fd-central", 2, 1, "13", "–"],
    ]


def test_a_configuration_that_differs_between_rows_becomes_a_column():
    rows = [row("aaaa", "backprop", 2, 1, 2.5), row("bbbb", "backprop", 2, 1, 3.0, B=128)]
    wide = side_by_side(pd.DataFrame(rows))
    assert list(wide.columns) == ["method", "N", "L", "B", "aaaa", "bbbb"]
    assert wide.values.tolist() == [["backprop", 2, 1, 64, "2.5", "–"],
                                    ["backprop", 2, 1, 128, "–", "3"]]  # fmt: skip


def test_the_section_has_one_block_per_machine_and_fits_nothing():
    rows = [*machine("aaaa"), *machine("bbbb"), row(None, "spsa", 2, 1, 0, status="crashed")]
    text = section(pd.DataFrame(rows))
    assert text.startswith("## Machines\n")
    blocks = [line for line in text.splitlines() if line.startswith("### Machine ")]
    assert blocks == ["### Machine `aaaa`", "### Machine `bbbb`", "### Machine `unknown`"]
    assert "no law is fitted across machines" in text
    # a machine with no measured cell has no column of ratios
    assert "| fd-central | 2 | 1 | 13 | 13 |" in text.splitlines()
