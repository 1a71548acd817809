"""REPORT.md from fixture CSVs: the first screen answers both questions with intervals,
every number tied to its own row and column, one machine, failures listed first."""

import inspect
import re

import numpy as np
import pandas as pd
import pytest
import report_fixtures as fx

from gradbench import plots, report
from gradbench.cli import main
from gradbench.results import write_atomic


def fake_save(figures, out, formats=("png", "svg")):
    """Figures are tested in test_plots; here only their names matter."""
    return [out / f"{name}.png" for name in figures]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    write_atomic(fx.gradients(), out / "gradients.csv")
    write_atomic(fx.training_csv(), out / "training.csv")
    with pytest.MonkeyPatch.context() as mp:
        for name, module in fx.fake_training_modules(out / "plots" / "training.png").items():
            mp.setattr(report, name.rsplit(".", 1)[1], module)
        mp.setattr(plots, "save", fake_save)
        assert main(["report", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def text(built):
    return (built / "REPORT.md").read_text()


@pytest.fixture(scope="module")
def screen(text):
    start = text.index("**Why backprop")
    return text[start : text.index(report.FIRST_SCREEN_END)].strip().splitlines()


@pytest.fixture(scope="module")
def g():
    frame = fx.gradients()
    return frame[frame.fingerprint == "fp-new"]


def test_the_first_screen_is_short_and_answers_both_questions(screen):
    lines = [line for line in screen if line.strip()]
    assert len(lines) <= 10
    joined = "\n".join(lines)
    assert "forward pass" in joined and "∝ P" in joined  # question 1: the gradient's cost
    assert "stop reaching the target loss" in joined  # question 2: without gradients


def test_every_number_on_the_first_screen_has_an_interval_or_a_source_column(screen):
    for line in screen:
        if re.search(r"\d", line):
            has_interval = re.search(r"\[[\d.e+-]+, [\d.e+-]+\]", line) or "±" in line
            names_source = re.search(r"`[a-z_P]+`", line)
            assert has_interval or names_source, line
            assert names_source, line  # and every data line names the columns it reads


def test_no_nan_anywhere(text):
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_backprops_line_is_its_own_largest_cell_and_its_own_fit(screen, built, g):
    line = next(text for text in screen if "**backprop**" in text)
    ok = g[(g.method == "backprop") & (g.status == "ok")].sort_values(["P", "L"])
    cell = ok.iloc[-1]
    expected = (
        f"{cell.ratio_to_forward:.3g}× [{cell.ratio_to_forward_lo:.3g}, "
        f"{cell.ratio_to_forward_hi:.3g}] a forward pass at P = {cell.P}"
    )
    assert expected in line
    law = pd.read_csv(built / "fits.csv").set_index("method").loc["backprop"]
    assert f"slope {law.slope:.2f} ± {law.slope_se:.2f}" in line
    assert "as theory says (theory 0)" in line


def test_fd_centrals_line_is_not_backprops(screen, g):
    line = next(text for text in screen if "**fd-central**" in text)
    ok = g[(g.method == "fd-central") & (g.status == "ok")].sort_values(["P", "L"])
    assert f"{ok.iloc[-1].ratio_to_forward:.3g}× [" in line and f"P = {ok.iloc[-1].P}" in line
    assert "∝ P, as theory says (theory 1)" in line


def test_the_spread_names_the_fastest_and_the_slowest_per_weight_method(screen):
    line = next(text for text in screen if "per-weight methods take" in text)
    # fixture ratios to forward: forward-mode P/2, fd-central 2P, scipy-fprime 6P
    assert "(fastest, forward-mode)" in line and "(slowest, scipy-fprime)" in line


def test_crossovers_come_from_the_training_helper(screen, text):
    line = next(text for text in screen if "Without gradients" in text)
    assert "nelder-mead at P = 144" in line and "cobyla at P = 544" in line
    assert "powell never (reached it up to P = 544)" in line
    assert "TRAINING SECTION FROM THE TRAINING HELPER" in text


def test_one_machine_named_at_the_top(text):
    head = text.splitlines()[2]
    assert head.startswith("Machine **fp-new**")
    assert "fp-old" not in text and "777" not in text


def test_wrong_cells_first_then_the_rest_folded_with_reasons(text):
    section = text[text.index("## Cells not measured") :]
    assert section.index("Wrong results (1 cells") < section.index("<details>")
    assert "worker died (signal 9)" in section and "RuntimeError: boom" in section
    assert "1 wrong" not in section  # wrong cells are not hidden among the folded ones
    assert "1 crashed, 1 error, 1 timeout" in section


def test_unavailable_methods_are_named_once_never_a_row(text):
    assert not re.search(r"^\| torch-backprop", text, re.MULTILINE)
    assert "Not available here: torch-backprop (unavailable: No module named 'torch')" in text


def test_targets_from_the_data_file_including_the_unmeasured(text):
    section = text[text.index("## As fast as the best") :]
    assert "| backprop ≤ 1.0× the faster of torch-backprop and jax-grad | not measured |" in section
    assert "| backprop ≤ 1.25× the bare-matmul floor at N ≥ 128 | met at every size |" in section
    assert "exploits sparse unit tangents" in section


def test_new_measurement_sections_appear_with_their_data(text):
    assert "## Differentiate the whole function directly?" in text
    assert "## Memory" in text and "peak_rss_bytes" in text
    assert "## What it would cost at sizes nobody can time (predicted)" in text
    assert "**predicted**" in text


def test_the_prediction_section_quotes_its_own_backtest(text, g):
    from gradbench import analysis, predict

    cutoff, held = predict.backtest_at_median(
        analysis.main_configuration(g), analysis.load_presentation()
    )
    if len(held):
        expected = f"below P = {cutoff:.0f} (the median P of the cells a law admits) put "
        assert expected + f"{int(held.inside.sum())} of {len(held)} measured cells" in text
    else:  # the fixture's laws below the median are too short to predict anything
        assert "Backtest: no cell above the median P had a law to predict it." in text


def test_memory_slopes_against_L_are_fitted_per_method(text):
    section = text[text.index("## Memory") :]
    row = next(line for line in section.splitlines() if line.startswith("| backprop | 512 |"))
    # fixture: peak = 1.2·8·(L·B·N + P), at N=512 the activations L·64·512 and P ∝ L: slope 1
    assert "| 1.00 ± 0.00 |" in row


def test_the_memory_section_says_what_checkpointing_buys_back(text, g):
    ok = g[(g.status == "ok") & (g.N == 512) & (g.L == 4)].set_index("method")
    back, check = (
        ok.loc["backprop", "peak_rss_bytes"],
        ok.loc["backprop-checkpoint", "peak_rss_bytes"],
    )
    assert f"At N = 512, L = 4, B = 64 backprop's gradient needs {back / 2**20:.3g} MiB" in text
    assert f"checkpointing needs {check / 2**20:.3g} MiB ({check / back:.2f} of it)" in text


@pytest.mark.builds_report
def test_a_first_wave_csv_still_gives_a_report(tmp_path, monkeypatch):
    write_atomic(fx.legacy(fx.gradients()), tmp_path / "gradients.csv")
    monkeypatch.setattr(plots, "save", fake_save)
    assert main(["report", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "(unpaired: no interval)" in text and not re.search(r"\bnan\b", text)
    assert "## Memory" not in text and "## Differentiate" not in text
    # says why there is no crossover, in words
    assert "- Gradient-free training: no training results for this machine (run `gradbench " in text


def test_predict_prints_predictions_beside_the_largest_measured_size(built, capsys):
    assert main(["predict", "--P", "25e6", "--out", str(built)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PREDICTED (not measured)")
    assert re.search(r"^\s*fd-central\s+\S+\s+\S+ – \S+\s+.+\s+8320 ", out, re.MULTILINE)


@pytest.mark.parametrize("args", [[], ["--P", "1e6", "--N", "4", "--L", "2"], ["--N", "4"]])
def test_predict_needs_P_or_N_and_L(built, capsys, args):
    assert main(["predict", "--out", str(built), *args]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("content", [None, "method,kind\nx,y\n", '"broken\n'])
def test_missing_or_corrupt_csv_gives_one_line_and_exit_2(tmp_path, capsys, content):
    if content is not None:
        (tmp_path / "gradients.csv").write_text(content)
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gradients.csv" in err


# ---------------------------------------------------------------- the rules, on hand-made rows
# (no report built, no figure: each function reads the tables it is given)


def _cells(*rows: dict) -> pd.DataFrame:
    """Method cells with every column the report reads: status ok, kind exact, L = 1."""
    base = {"kind": "exact", "status": "ok", "L": 1, "B": 64, "dtype": "float64"}
    frame = pd.DataFrame([base | r for r in rows])
    frame = frame.assign(P=frame.get("P", frame.L * (frame.N**2 + frame.N)))
    from gradbench import analysis

    return analysis.load_gradients_frame(frame)


def _law(method: str, slope: float, se: float, theory: float, **more) -> dict:
    return {"method": method, "slope": slope, "slope_se": se, "theory": theory} | more


@pytest.mark.parametrize(
    ("x", "shown"),
    [(None, "–"), (float("nan"), "–"), (1234.5, "1.23e+03"), (0.5, "0.5"), (2, "2")],
)
def test_fmt_three_significant_digits_or_a_dash(x, shown):
    assert report.fmt(x) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "–"), (float("nan"), "–"), (2.5, "2.5 s"), (1.0, "1 s"), (0.0025, "2.5 ms"),
     (1e-3, "1 ms"), (1e-6, "1 µs"), (5e-7, "0.5 µs")],
)  # fmt: skip
def test_fmt_time_picks_the_largest_unit_not_above_the_value(seconds, shown):
    assert report.fmt_time(seconds) == shown


def test_intervals_ranges_slopes_tables_and_folds():
    from gradbench.analysis import Interval

    assert report.fmt_interval(Interval(2.314, 2.2, 2.4)) == "2.31× [2.2, 2.4]"
    assert report.fmt_interval(Interval(2.0, 1.0)) == "2× (unpaired: no interval)"
    assert report.fmt_range(1.2, 0.5, 3.0) == "1.2 (0.5 – 3)"
    assert report.fmt_range(1.2, 0.5, 3.0, report.fmt_time) == "1.2 s (500 ms – 3 s)"
    assert report.fmt_slope(pd.Series({"slope": 0.123, "slope_se": 0.031})) == "0.12 ± 0.03"
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert report.table(frame) == "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |"
    assert report.folded("S", "B") == "<details><summary>S</summary>\n\nB\n\n</details>"


@pytest.mark.parametrize(
    ("law", "words"),
    [
        (_law("m", 0.1, 0.05, 0.0), "slope 0.10 ± 0.05 against log P: constant in P, as theory "
                                    "says (theory 0)"),
        (_law("m", 0.5, 0.05, 1.0), "slope 0.50 ± 0.05 against log P: ∝ P, **not** as theory "
                                    "says (theory 1)"),
        (_law("m", 0.5, 0.05, float("nan")), "slope 0.50 ± 0.05 against log P (no theory "
                                             "stated)"),
    ],
)  # fmt: skip
def test_law_words_follow_the_verdict(law, words):
    assert report.law_words(pd.Series(law)) == words


def _screen_cells():
    return _cells(
        {"method": "backprop", "N": 4, "ratio_to_forward": 3.0, "ratio_to_forward_lo": 2.9,
         "ratio_to_forward_hi": 3.1, "time_median_s": 3e-3, "ratio_to_backprop": 1.0},
        {"method": "backprop", "N": 8, "ratio_to_forward": 3.5, "ratio_to_forward_lo": 3.4,
         "ratio_to_forward_hi": 3.6, "time_median_s": 3e-3, "ratio_to_backprop": 1.0},
        {"method": "backprop", "N": 16, "status": "error", "ratio_to_forward": 9.0},
        {"method": "forward-mode", "N": 4, "ratio_to_forward": 10.0, "time_median_s": 1e-2,
         "ratio_to_backprop": 3.0, "ratio_to_backprop_lo": 2.5, "ratio_to_backprop_hi": 3.5},
        {"method": "fd-central", "N": 4, "ratio_to_forward": 40.0, "time_median_s": 4e-2,
         "ratio_to_backprop": 12.0, "ratio_to_backprop_lo": 11.0, "ratio_to_backprop_hi": 13.0},
        {"method": "spsa", "N": 4, "ratio_to_forward": 1.0, "time_median_s": 1e-4,
         "ratio_to_backprop": 0.1},
    )  # fmt: skip


def test_a_cost_line_is_the_headline_methods_largest_cell_and_its_own_law(pres):
    g, laws = _screen_cells(), pd.DataFrame([_law("backprop", 0.01, 0.02, 0.0)])
    assert report.cost_line(g, laws, pres, "reverse") == (
        "- reverse mode and references, **backprop**: 3.5× [3.4, 3.6] a forward pass at "
        "P = 72; slope 0.01 ± 0.02 against log P: constant in P, as theory says (theory 0) — "
        "`ratio_to_forward`, `fits.csv`"
    )
    line = report.cost_line(g, laws, pres, "per-weight")
    assert line.startswith("- per-weight exact, **forward-mode**: 10× (unpaired: no interval)")
    assert "P = 20; too few cells above the overhead floor to fit — " in line
    assert report.cost_line(g, laws, pres, "symbolic") is None  # symbolic-cse not measured
    assert report.cost_line(g, laws, pres, "other") is None  # no headline method


def test_the_spread_is_at_the_reference_size_between_per_weight_and_fd_methods(pres):
    assert report.spread_line(_screen_cells(), pres) == (
        "- At N = 4, L = 1 the per-weight methods take from 3× [2.5, 3.5] backprop's time "
        "(fastest, forward-mode) to 12× [11, 13] (slowest, fd-central) — `ratio_to_backprop`"
    )
    only_reverse = _screen_cells()[lambda d: d.method.isin(["backprop", "spsa"])]
    assert report.spread_line(only_reverse, pres) is None


def test_crossovers_in_words():
    crossovers = pd.concat(
        [fx.CROSSOVERS, pd.DataFrame({"optimizer": ["gd", "adam", "sgd"],
                                      "family": ["gradient"] * 3,
                                      "largest_P_reached": [5000, 3000, 9000],
                                      "crossover_P": [float("nan"), float("nan"), 8000]})]
    )  # fmt: skip
    assert report.crossover_line(crossovers, "unused") == (
        "- **Without gradients**, the optimizers stop reaching the target loss: cobyla at "
        "P = 544; nelder-mead at P = 144; powell never (reached it up to P = 544); with "
        "backprop's gradient, adam, gd reached it at every size tried (up to P = 3000) — "
        "`crossover_P`, `largest_P_reached`"
    )
    assert report.crossover_line(fx.CROSSOVERS, "x").endswith(
        "(reached it up to P = 544) — `crossover_P`, `largest_P_reached`"
    )
    assert report.crossover_line(None, "why not") == "- Gradient-free training: why not."
    assert report.crossover_line(fx.CROSSOVERS[:0], "none") == "- Gradient-free training: none."


def test_the_first_screen_leaves_out_families_without_a_line(pres):
    laws = pd.DataFrame([_law("backprop", 0.01, 0.02, 0.0)])
    screen = report.first_screen(_screen_cells(), laws, pres, None, "why")
    assert screen[0] == (
        "**Why backprop: its gradient costs a few forward passes whatever P is; a gradient "
        "weight by weight costs ∝ P of them.** Measured on this machine (paired intervals in "
        "brackets):"
    )
    assert screen[1] == "" and screen[-2:] == ["", report.FIRST_SCREEN_END]
    body = screen[2:-2]
    assert [line.split(",")[0] for line in body] == [
        "- reverse mode and references", "- per-weight exact", "- finite differences",
        "- At N = 4", "- Gradient-free training: why.",
    ]  # fmt: skip


def test_the_machine_line_names_the_machine_runs_and_configuration():
    g = _cells({"method": "m", "N": 4, "run_id": "r1", "fingerprint": "fp", "machine": "CPU",
                "blas_threads": 2, "numpy": "2.1", "dtype": "float64", "seed": 3},
               {"method": "m", "N": 8, "run_id": "r2", "fingerprint": "fp", "machine": "CPU",
                "blas_threads": 4, "numpy": "2.2", "dtype": "float16"},
               {"method": "m", "N": 8, "run_id": "r2", "fingerprint": "fp", "machine": "CPU",
                "blas_threads": 1, "numpy": "2.0", "dtype": "float32"})  # fmt: skip
    assert report.machine_line(g) == (
        "Machine **fp** (CPU; BLAS threads 1, numpy 2.0); run r1, r2; B = 64, dtype = float32. "
        "Every table and fit below is this machine's."
    )
    g.loc[g.index[-1], "passes"] = 4
    assert "dtype = float32; each cell timed in 4 passes over the grid. Every" in (
        report.machine_line(g)
    )


def test_the_method_table_orders_by_family_and_shows_failures_by_status(pres):
    g = pd.concat([_screen_cells(), _cells(
        {"method": "my-plugin", "N": 4, "status": "error"},
        {"method": "complex-step", "N": 4, "status": "timeout"},
    )])  # fmt: skip
    laws = pd.DataFrame([_law("backprop", 0.01, 0.02, 0.0)])
    rows = report.method_table(g, laws, pres).splitlines()
    assert rows[0] == (
        "| method | family | time at N=4, L=1 | ÷ forward [95 %] | ÷ backprop [95 %] | "
        "slope vs log P (theory) | largest P measured |"
    )
    assert [r.split(" | ")[0] for r in rows[2:]] == [
        "| backprop", "| forward-mode", "| complex-step", "| fd-central", "| spsa", "| my-plugin",
    ]  # fmt: skip
    assert rows[2] == (
        "| backprop | reverse mode and references | 3 ms | 3× [2.9, 3.1] | 1× (unpaired: no "
        "interval) | 0.01 ± 0.02 (0) | 72 |"
    )
    assert rows[4] == "| complex-step | per-weight exact | timeout | – | – | – | – |"
    assert rows[7] == "| my-plugin | other (plugins) | error | – | – | – | – |"
    # a plugin's family goes by its kind: map "exact" to the reverse family
    from dataclasses import replace

    mine = replace(pres, kinds=pres.kinds | {"exact": "reverse"})
    plugin = report.method_table(g, laws, mine).splitlines()[-1]
    assert plugin == "| my-plugin | reverse mode and references | error | – | – | – | – |"


def test_the_laws_table_says_whether_each_law_agrees():
    laws = pd.DataFrame([
        _law("a", 0.1, 0.01, 0.0, cells=3, P_min=20, P_max=2000, cells_used="4x1 8x1 44x1"),
        _law("b", 0.5, 0.01, 1.0, cells=4, P_min=6, P_max=600, cells_used="P=6"),
        _law("c", 0.5, 0.01, float("nan"), cells=5, P_min=6, P_max=60, cells_used="P=7"),
    ])  # fmt: skip
    text = report.laws_table(laws)
    assert text.splitlines()[:5] == [
        "| law | slope ± se | theory | agrees | cells | P range |",
        "|---|---|---|---|---|---|",
        "| a | 0.10 ± 0.01 | 0 | yes | 3 | 20–2000 |",
        "| b | 0.50 ± 0.01 | 1 | **no** | 4 | 6–600 |",
        "| c | 0.50 ± 0.01 | – | – | 5 | 6–60 |",
    ]
    assert text.endswith(
        "<details><summary>Cells used by each law (N×L)</summary>\n\n- a: 4x1 8x1 44x1\n"
        "- b: P=6\n- c: P=7\n\n</details>"
    )
    assert report.laws_table(laws[:0]).startswith("_Too few cells above the overhead floor")


def test_the_nl_table_shows_each_exponent_beside_its_cost_model():
    nl = pd.DataFrame([{"method": "m", "a": 2.0, "a_se": 0.1, "b": 1.0, "b_se": 0.2,
                        "a_theory": 2.0, "b_theory": 1.5, "cells": 6}])  # fmt: skip
    assert report.nl_table(nl).splitlines()[::2] == [
        "| method | a (N) ± se | cost model a | b (L) ± se | cost model b | cells |",
        "| m | 2 ± 0.1 | 2 | 1 ± 0.2 | 1.5 | 6 |",
    ]
    assert report.nl_table(nl[:0]) == "_Too few cells to fit._"


def test_correctness_is_the_worst_error_of_each_method_but_backprop():
    g = _cells(
        {"method": "backprop", "N": 4, "grad_error": 0.5, "tolerance": 1e-8},
        {"method": "fd", "N": 4, "grad_error": 1e-9, "tolerance": 1e-6},
        {"method": "fd", "N": 8, "grad_error": 3e-3, "tolerance": 1e-5, "status": "wrong"},
        {"method": "fd", "N": 2, "grad_error": 9.0, "status": "error"},
        {"method": "sp", "N": 8, "kind": "stochastic", "cosine": 0.25, "grad_error": 1.0},
        {"method": "sp", "N": 4, "kind": "stochastic", "cosine": 0.5, "grad_error": 1.0},
        {"method": "sp", "N": 2, "kind": "stochastic", "cosine": 0.75, "grad_error": 1.0},
    )  # fmt: skip
    rows = report.correctness_table(g).splitlines()
    assert rows[0] == (
        "| method | worst ρ | tolerance | cells wrong | cosine, smallest → largest P |"
    )
    assert rows[2] == "| fd | 0.003 | 1e-05 | 1 | – |"
    assert rows[3] == "| sp | 1 | – | 0 | 0.75 (P=6) → 0.25 (P=72) |"
    assert len(rows) == 4
    one = report.correctness_table(g[(g.method == "backprop") | (g.N == 8) & (g.method == "sp")])
    one = one.splitlines()
    assert len(one) == 3 and one[2].startswith("| sp | 1 | – | 0 |")  # a method of one cell
    only = g[g.method == "backprop"]
    assert report.correctness_table(only) == "_No method measured besides backprop._"


def test_targets_with_their_notes(pres):
    import dataclasses

    targets = ({"name": "T", "method": "backprop", "column": "ratio_to_forward", "at_most": 3.2,
                "note": "a note"}, {"name": "U", "method": "nobody", "column": "time_median_s",
                                    "at_most": 1, "note": "b"})  # fmt: skip
    mine = dataclasses.replace(pres, targets=targets)
    assert report.targets_section(_screen_cells(), mine).splitlines() == [
        "| target | result | missed at | worst ratio |",
        "|---|---|---|---|",
        "| T | missed at 1 of 2 | N=8 L=1 | 3.5 |",
        "| U | not measured | – | – |",
        "",
        "- T: a note.",
        "- U: b.",
    ]


def test_cells_not_measured_wrong_first_then_folded_then_unavailable():
    g = _cells(
        {"method": "ok", "N": 4},
        {"method": "fd", "N": 4, "status": "wrong", "grad_error": 3e-3, "tolerance": 1e-6},
        {"method": "fd", "N": 8, "status": "skipped", "projected_s": 30.0,
         "reason": "projected"},
        {"method": "cr", "N": 4, "status": "crashed"},
        {"method": "tb", "N": 4, "status": "error", "reason": "unavailable: no torch"},
    )  # fmt: skip
    parts = report.not_measured(g).split("\n\n")
    assert parts[0] == "**Wrong results (1 cells outside their tolerance):**"
    assert parts[1].splitlines()[2] == "| fd | 4 | 1 | 20 | 0.003 | 1e-06 |"
    assert (
        parts[2]
        == "<details><summary>Cells not measured: 1 crashed, 1 skipped (click to open)</summary>"
    )
    assert parts[3].splitlines()[1:] == [
        "|---|---|---|---|---|---|---|",
        "| cr | 4 | 1 | 20 | crashed | – | – |",
        "| fd | 8 | 1 | 72 | skipped | projected | 30 s |",
    ]
    assert parts[-1] == "Not available here: tb (unavailable: no torch)."
    two = pd.concat([g[g.method == "tb"].assign(method="ta", reason="unavailable: no jax"), g])
    assert report.not_measured(two).split("\n\n")[-1] == (
        "Not available here: ta (unavailable: no jax); tb (unavailable: no torch)."
    )
    assert report.not_measured(g[:1]) == "Every cell of the grid was measured."
    only_wrong = report.not_measured(g[:2])
    assert "<details>" not in only_wrong and "Not available" not in only_wrong


def test_the_checkpoint_sentence_takes_the_deepest_then_widest_size():
    mib = 2**20
    g = _cells(
        *[{"method": m, "N": N, "L": L, "peak_rss_bytes": f * mib * N * L,
           "ratio_to_backprop": f * N * L / 8, "ratio_to_backprop_lo": 0.9 * f * N * L / 8,
           "ratio_to_backprop_hi": 1.1 * f * N * L / 8}
          for m, f in (("backprop", 2.0), ("backprop-checkpoint", 1.0))
          for N, L in ((8, 2), (4, 3), (2, 3))],
        {"method": "backprop", "N": 64, "L": 9, "peak_rss_bytes": mib},
    )  # fmt: skip
    assert report.checkpoint_sentence(g) == (
        "At N = 4, L = 3, B = 64 backprop's gradient needs 24 MiB above the baseline "
        "(`peak_rss_bytes`); checkpointing needs 12 MiB (0.50 of it) and takes 1.5× [1.35, 1.65] "
        "backprop's time (`ratio_to_backprop`).\n\n"
    )
    assert report.checkpoint_sentence(g[g.method == "backprop"]) == ""


def test_the_memory_section_fits_peak_memory_against_depth_per_method(pres):
    # backprop: peak = 8·(L·B·N + P) bytes, with P = L·(N² + N): exactly ∝ L, slope 1; less
    # the gradient (8·P bytes) it is 8·L·B·N: s = 1 (fitted from four depths, backprop only)
    depths = {"backprop": (1, 2, 4, 8), "my-plugin": (1, 2, 4)}
    g = _cells(*[{"method": m, "N": 8, "L": L, "peak_rss_bytes": 8 * L * (64 * 8 + 72),
                  "memory_model_bytes": 4 * L * (64 * 8 + 72)}
                 for m, Ls in depths.items() for L in Ls],
               {"method": "fd-central", "N": 8, "L": 1, "peak_rss_bytes": 100})  # fmt: skip
    text = report.memory_section(g, pres)
    assert text.startswith(
        "Peak resident memory above the worker's baseline for one gradient (`peak_rss_bytes`). "
        "Theory: backprop ∝ L·B·N + P, checkpointed ∝ √L·B·N + P, forward mode and finite "
        "differences ∝ B·N + P. Since P grows like L too"
    )
    header, _, *rows = text.split("\n\n")[1].splitlines()
    assert header == (
        "| method | N | B | slope vs log L ± se | theory slope (same cells) | s of a + b·L^s ± se "
        "| theory s | declared ÷ measured (median) | library's own count ÷ measured |"
    )
    assert rows == ["| backprop | 8 | 64 | 1.00 ± 0.00 | 1 | 1.00 ± 0.00 | 1 | 0.5 | – |",
                    "| my-plugin | 8 | 64 | 1.00 ± 0.00 | – | – | – | 0.5 | – |"]  # fmt: skip
    assert report.memory_section(g[g.L == 1], pres) is None  # one depth: no memory figure


MEMORY_PARAGRAPH = (
    "Peak resident memory above the worker's baseline for one gradient "
    "(`peak_rss_bytes`). Theory: backprop ∝ L·B·N + P, checkpointed ∝ √L·B·N + P, "
    "forward mode and finite differences ∝ B·N + P. Since P grows like L too, the "
    "log-log slope of the whole mixes both terms; *s* separates them: the peak less the "
    "gradient returned (P numbers) is fitted as a + b·L^s, the exponent with which the "
    "activations kept grow (theory 1 and ½; not fitted for the methods that keep one "
    "layer's, whose other buffers are P-sized). Where a library states what one call "
    "allocates (XLA's compiled memory analysis, `allocator_bytes`), its count is "
    "compared too: XLA's CPU runtime keeps buffers from call to call, which the resident "
    "peak then misses.\n\n"
)


def test_the_memory_section_skips_s_for_one_layer_methods_and_quotes_xla_count(pres):
    # both methods: peak = 8·(L·B·N + P), P = 72·L, B·N = 512 → slope 1; backprop's library
    # counts twice the peak (allocator ÷ measured = 2); fd-central keeps one layer (theory
    # s = 0): its s is not fitted even though its peak grows like L; its theory slope is the
    # log-log slope of B·N + P = 512 + 72·L over L = 1, 2, 4, 8 (np.polyfit, by hand)
    Ls = (1, 2, 4, 8)
    g = _cells(*[{"method": m, "N": 8, "L": L, "peak_rss_bytes": 8 * 584 * L,
                  "memory_model_bytes": 8 * 584 * L,
                  "allocator_bytes": 2 * 8 * 584 * L if m == "backprop" else float("nan")}
                 for m in ("backprop", "fd-central") for L in Ls])  # fmt: skip
    text = report.memory_section(g, pres)
    assert text.startswith(MEMORY_PARAGRAPH)
    slope = np.polyfit(np.log(Ls), np.log([512 + 72 * L for L in Ls]), 1)[0]
    _, _, *rows = text.split("\n\n")[1].splitlines()
    assert rows == [
        "| backprop | 8 | 64 | 1.00 ± 0.00 | 1 | 1.00 ± 0.00 | 1 | 1 | 2 |",
        f"| fd-central | 8 | 64 | 1.00 ± 0.00 | {slope:.3g} | – | 0 | 1 | – |",
    ]


def test_the_memory_section_takes_a_plugins_memory_model_from_its_kind(pres):
    # a plugin listed in no family goes by its kind; map "exact" to the reverse family,
    # whose memory model is "activations": theory s = 1 and the theory slope of
    # L·B·N + P over L (both ∝ L: 1)
    from dataclasses import replace

    mine = replace(pres, kinds=pres.kinds | {"exact": "reverse"})
    g = _cells(*[{"method": "my-ad", "N": 8, "L": L, "peak_rss_bytes": 8 * 584 * L}
                 for L in (1, 2, 4, 8)])  # fmt: skip
    row = report.memory_section(g, mine).split("\n\n")[1].splitlines()[2]
    assert row.startswith("| my-ad | 8 | 64 | 1.00 ± 0.00 | 1 | 1.00 ± 0.00 | 1 |")


def test_the_memory_section_drops_zero_peaks_and_says_when_too_few_depths(pres):
    # two depths only: no law, but a figure; the checkpointed peak at L = 2 is 0 (not
    # measured) and must not make the pair there; at L = 1 it is one byte (measured)
    mib = 2**20
    g = _cells(
        {"method": "backprop", "N": 8, "L": 1, "peak_rss_bytes": 2 * mib},
        {"method": "backprop", "N": 8, "L": 2, "peak_rss_bytes": 4 * mib},
        {"method": "backprop-checkpoint", "N": 8, "L": 1, "peak_rss_bytes": 1},
        {"method": "backprop-checkpoint", "N": 8, "L": 2, "peak_rss_bytes": 0},
    )
    text = report.memory_section(g, pres)
    assert text.startswith("At N = 8, L = 1, B = 64 backprop's gradient needs 2 MiB")
    assert text.endswith(MEMORY_PARAGRAPH + "_Too few depths per method to fit._")


def test_activations_are_the_peak_less_the_gradient_in_its_dtype():
    from gradbench import report as r

    # float32: the gradient is 4·P bytes; peak = 4·P + 1000 + 50·L → kept = 1000 + 50·L,
    # s = 1 (P = 100·L² would give s = 2 if it were not subtracted, or subtracted as 8·P);
    # the row whose peak is exactly its gradient keeps nothing and is left out
    Ls = [1, 2, 4, 8, 16]
    cells = pd.DataFrame({"L": Ls + [32], "P": [100 * L * L for L in Ls + [32]],
                          "dtype": "float32"})  # fmt: skip
    cells["peak_rss_bytes"] = 4 * cells.P + (1000 + 50 * cells.L).where(cells.L < 32, 0)
    got = r.activations(cells)
    assert got.value == pytest.approx(1.0, abs=0.01)
    assert got.se < 0.01


def test_the_symbolic_section_quotes_how_expression_sizes_grow(tmp_path):
    # raw derivatives ÷ forward = P^1.5, after CSE P^0.5
    # (an expression of one operation counts; a cell without expressions does not)
    g = _cells(*[{"method": "symbolic-cse", "N": N, "ops_forward": f,
                  "ops_derivatives": f * (N * N + N) ** 1.5,
                  "ops_cse": f * (N * N + N) ** 0.5, "time_median_s": 0.5,
                  "prepare_s": 2.0} for N, f in ((1, 10.0), (2, 10.0), (3, 1.0))],
               {"method": "backprop", "N": 2, "time_median_s": 0.25,
                "ops_forward": 0.0})  # fmt: skip
    text = report.symbolic_section(g)
    assert text.startswith(
        "Differentiating the whole loss symbolically gives P derivatives whose size ÷ the "
        "forward pass's grows as P^1.50 ± 0.00; after common-subexpression elimination it "
        "grows as P^0.50 ± 0.00. Sharing the common pieces is what reverse mode does by "
        "construction.\n\n| method | N | L | P | ops_forward | ops_derivatives | ops_cse | "
        "prepare_s | time_median_s | ÷ backprop's time | raw ÷ forward | CSE ÷ forward |"
    )
    rows = text.split("\n\n")[1].splitlines()
    # at N = 2 (P = 6): 0.5 s ÷ backprop's 0.25 s, 6^1.5 = 14.7, 6^0.5 = 2.45
    assert rows[3].endswith("| 2 s | 500 ms | 2 | 14.7 | 2.45 |")
    assert rows[2].endswith("| 500 ms | – | 2.83 | 1.41 |")  # no backprop cell at N = 1
    assert rows[4].startswith("| symbolic-cse | 3 |") and len(rows) == 5
    assert report.symbolic_section(g[g.N == 1]) is None
    assert report.symbolic_section(g[g.N < 3]).startswith("| method |")  # 2 sizes: no slope
    # raw expressions counted at two sizes only (the third too large): no sentence either
    raw_two = g.assign(ops_derivatives=g.ops_derivatives.where(g.N < 3))
    assert report.symbolic_section(raw_two).startswith("| method |")


def test_predictions_speak_for_the_first_method_of_each_family_at_the_named_mlp(g, pres):
    from gradbench import predict

    # a method with one cell, first by name: no law, no row, and the others still listed
    g = pd.concat([g[g.method == "backprop"].iloc[:1].assign(method="aaa"), g])
    laws = predict.laws_of(g, pres)
    P = predict.size_of({"N": 1024, "L": 8}, laws.bias)[0]
    times = predict.predict_times(laws, P)
    ok = times[times.no_prediction == ""]
    text = report.predictions_section(g, pres, None)
    sentences = [line for line in text.splitlines() if "of the N=1024, L=8 MLP" in line]
    first = ok.drop_duplicates("family")  # methods in name order: the first of each family
    assert len(sentences) == len(first) == ok.family.nunique()
    for r, line in zip(first.itertuples(), sentences, strict=True):
        assert line == (
            f"- {pres.by_name(r.family).label}: one gradient by {r.method} of the N=1024, L=8 "
            f"MLP would take about {predict.plain_duration(r.predicted_s)} (between "
            f"{predict.plain_duration(r.lo_s)} and {predict.plain_duration(r.hi_s)})."
        )
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(ok) * len(predict.NAMED_SIZES)  # the refused ones left out
    r = ok.iloc[0]
    low, high = report.fmt_time(r.lo_s), report.fmt_time(r.hi_s)
    assert rows[0] == (
        f"| MLP of this benchmark, N=1024, L=8 | {P} | {r.method} | "
        f"{report.fmt_time(r.predicted_s)} ({low} – {high}) | {r.largest_measured_P} |"
    )
    refused = times[times.no_prediction != ""]
    no = [f"- no prediction for {r.method}: {r.no_prediction}" for r in refused.itertuples()]
    assert len(refused) and text.endswith("\n".join(no))
    assert text.startswith(
        "Every row below is **predicted**, not measured: forward-time law × cost law, with a "
        "95 % prediction interval from both fits' errors and, beyond the measured range, the "
        "gap between each law's slope and its theory (predict.py). Backtest: "
    )
    header = next(line for line in text.splitlines() if line.startswith("| "))
    assert header == ("| size | P | method | predicted time (95 % interval) | largest P measured |")
    assert "Predicted time of one gradient at named sizes" in text
    paragraphs = text.split("\n\n")  # opening, sentences, folded table, refusals
    assert paragraphs[1] == "\n".join(sentences) and paragraphs[-1] == "\n".join(no)
    assert (
        paragraphs[2] == "<details><summary>Predicted time of one gradient at named sizes</summary>"
    )


def test_the_predictions_quote_their_backtest(g, pres, monkeypatch):
    from gradbench import predict

    held = pd.DataFrame({"inside": [True, True, False, True]})
    monkeypatch.setattr(predict, "backtest_at_median", lambda g, pres: (500.0, held))
    monkeypatch.setattr(predict, "coverage", lambda h: (0.75, 2.5))
    text = report.predictions_section(g, pres, None)
    assert text.split("\n\n")[0].endswith(
        "(predict.py). Backtest: cost laws fitted on the cells below P = 500 (the median P of "
        "the cells a law admits) put 3 of 4 measured cells above it inside their intervals "
        "(75%; median width ×2.5, hi ÷ lo), each cell predicted from its own measured "
        "forward pass."
    )


def test_predicted_evaluations_of_gradient_free_optimizers(g, pres):
    # evaluations to target = 10·P exactly: the law predicts 10·P at every named size
    P = [10, 100, 1000, 10000]
    summary = pd.DataFrame({"optimizer": "nm", "gradient_method": "", "reached": 1.0, "P": P,
                            "evals_to_target": [10.0 * p for p in P]})  # fmt: skip
    text = report.predictions_section(g, pres, summary)
    head = "Gradient-free training, **predicted** evaluations to reach the target:\n\n"
    assert "\n\n" + head in text  # a paragraph of its own
    table = text[text.index(head) + len(head) :].splitlines()
    assert table[0] == (
        "| optimizer | P | predicted evaluations to target (95 %) | largest_measured_P |"
    )
    assert table[2].startswith("| nm | 8396800 | 8.4e+07 (")  # N=1024, L=8 with biases
    assert table[3] == "| nm | 61706 | 6.17e+05 (6.17e+05 – 6.17e+05) | 10000 |"


def test_no_prediction_without_an_admissible_law(pres):
    assert report.predictions_section(_screen_cells(), pres, None) == (
        "_No law passes the rules for prediction (see the README's honesty rules)._"
    )


def test_training_parts_come_from_the_helpers_or_say_why_not(tmp_path, monkeypatch):
    t, summary, crossovers, text, figures = report.training_parts(tmp_path)
    assert t.empty and summary is None and crossovers is None and figures == []
    assert text == "no training results for this machine (run `gradbench train`)"
    assert report.training_section(text, None) == (
        "_No training results for this machine (run `gradbench train`)._"
    )
    write_atomic(fx.training_csv(), tmp_path / "training.csv")
    calls = {}

    def recorded(name, result):
        """A helper that returns ``result`` and records what it was given."""
        return lambda *args: calls.setdefault(name, args) and result

    fakes = fx.fake_training_modules(tmp_path / "fig.png")
    summary_made = pd.DataFrame({"optimizer": ["nelder-mead"], "P": [6]})
    fakes["gradbench.training_analysis"].summarize = recorded("summarize", summary_made)
    fakes["gradbench.training_analysis"].crossovers = recorded("crossovers", fx.CROSSOVERS)
    fakes["gradbench.training_plots"].draw_all = recorded("draw_all", [tmp_path / "fig.png"])
    fakes["gradbench.training_report"].section = recorded("section", "TRAINING SECTION")
    for name, module in fakes.items():
        monkeypatch.setattr(report, name.rsplit(".", 1)[1], module)
    t, summary, crossovers, text, figures = report.training_parts(tmp_path)
    assert len(t) == 1 and list(summary.optimizer) == ["nelder-mead"]
    assert pd.read_csv(tmp_path / "training_summary.csv").P.tolist() == [6]
    assert crossovers.equals(fx.CROSSOVERS) and figures == [tmp_path / "fig.png"]
    # each helper is given the trajectories read, the summary made and the plots folder
    assert calls["summarize"][0] is t and calls["crossovers"][0] is summary_made
    assert calls["draw_all"][:2] == (t, summary_made)
    assert calls["draw_all"][2] == tmp_path / "plots"
    assert calls["section"][0] is t and calls["section"][1] is summary_made
    assert report.training_section(text, crossovers) == text == "TRAINING SECTION"


@pytest.mark.builds_report
def test_build_writes_both_fit_tables_and_says_no_gradient_free_optimizer_ran(
    tmp_path, monkeypatch
):
    from gradbench import analysis, fits

    write_atomic(fx.gradients(), tmp_path / "gradients.csv")
    write_atomic(fx.training_csv(), tmp_path / "training.csv")
    for name, module in fx.fake_training_modules(tmp_path / "t.png").items():
        monkeypatch.setattr(report, name.rsplit(".", 1)[1], module)
    none_free = fx.CROSSOVERS[:0]
    monkeypatch.setattr(report.training_analysis, "crossovers", lambda s: none_free)
    saved_to = []
    drawn_figures = []
    monkeypatch.setattr(
        plots,
        "save",
        lambda d, o: drawn_figures.append(d) or saved_to.append((o, list(d))) or fake_save(d, o),
    )
    given, figures = [], plots.figures
    monkeypatch.setattr(plots, "figures", lambda *args: given.append(args) or figures(*args))
    text = report.build(tmp_path).read_text()
    g_, pres_, laws_, crossovers_ = given[0]  # the figures see what the tables see
    assert pres_ == analysis.load_presentation() and crossovers_ is none_free
    assert list(laws_.method) == list(pd.read_csv(tmp_path / "fits.csv").method)
    assert len(g_) == len(analysis.main_configuration(analysis.latest_machine(fx.gradients())))
    assert "- Gradient-free training: no gradient-free optimizer was trained." in text
    (folder, names), *_ = saved_to
    # the memory figures draw with the same presentation (read from their closures)
    memory_figure = drawn_figures[0]["memory_vs_L"]
    assert inspect.getclosurevars(memory_figure).nonlocals["pres"] == pres_
    assert folder == tmp_path / "plots" and len(saved_to) == 1
    mine = analysis.latest_machine(analysis.load_gradients(tmp_path / "gradients.csv"))
    assert text.startswith(
        "# Why backpropagation? — gradbench report\n\n" + report.machine_line(mine) + "\n\n"
    )
    assert "\n\n" + report.QUESTION + "\n\n## " in text
    # the method table quotes the cost laws (not the forward law)
    per_method = text.split("\n\n## Per method")[1].split("\n\n## ")[0]
    backprop = pd.read_csv(tmp_path / "fits.csv").set_index("method").loc["backprop"]
    row = next(line for line in per_method.splitlines() if line.startswith("| backprop |"))
    assert f"{backprop.slope:.2f} ± {backprop.slope_se:.2f}" in row
    for title in [
        "Per method, at the size where most were measured",
        "Scaling laws: cost in forward passes against P",
        "What it would cost at sizes nobody can time (predicted)",
        "Training with and without gradients",
        "Differentiate the whole function directly?",
        "Memory",
        "As fast as the best: targets",
        "Correctness against backprop",
        "Secondary: time ∝ N^a · L^b",
        "Figures",
        "Cells not measured",
    ]:
        assert f"\n\n## {title}\n\n" in text
    # the first figure heads the report; the Figures section lists the others, in order,
    # then the training helper's; crossovers exist (an empty table): its own section text
    figures_section = text.split("\n\n## Figures\n\n")[1].split("\n\n## ")[0]
    assert figures_section.startswith(
        "\n\n".join(f"![{n}](plots/{n}.png)" for n in names[1:]) + "\n\n![t](plots/t.png)"
    )
    training = text.split("\n\n## Training with and without gradients\n\n")[1]
    assert not training.startswith("_")
    g = analysis.main_configuration(analysis.latest_machine(fx.gradients()))
    laws = pd.read_csv(tmp_path / "fits.csv")
    assert laws.method.iloc[0] == "forward" and len(laws) == 1 + len(
        fits.cost_laws(g, analysis.load_presentation())
    )
    assert list(pd.read_csv(tmp_path / "fits_NL.csv").method) == list(fits.fit_all(g).method)


def test_a_table_without_a_measured_cell_is_refused(tmp_path):
    from gradbench.errors import GradbenchError

    write_atomic(fx.gradients().assign(status="error"), tmp_path / "gradients.csv")
    with pytest.raises(GradbenchError, match="^" + re.escape(
        f"{tmp_path / 'gradients.csv'} has no measured cell to report"
    )):  # fmt: skip
        report.build(tmp_path)
