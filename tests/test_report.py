"""REPORT.md from fixture CSVs: the first screen answers both questions with intervals,
every number tied to its own row and column, one machine, failures listed first."""

import re

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


def test_a_first_wave_csv_still_gives_a_report(tmp_path, monkeypatch):
    write_atomic(fx.legacy(fx.gradients()), tmp_path / "gradients.csv")
    monkeypatch.setattr(plots, "save", fake_save)
    assert main(["report", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "(unpaired: no interval)" in text and not re.search(r"\bnan\b", text)
    assert "## Memory" not in text and "## Differentiate" not in text
    assert "- Gradient-free training: " in text  # says why there is no crossover, in words


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
