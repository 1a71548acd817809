"""gradbench.training_report: each number in the section comes from its own summary row."""

import math

import pytest
from test_training_analysis import frame, trajectory

from gradbench import training_analysis as ta
from gradbench import training_report as tr


@pytest.fixture(scope="module")
def data():
    runs = []
    for P, L in [(6, 1), (40, 2), (144, 2)]:
        for seed in range(3):
            cma_final = 0.1 if P < 144 else 1.5  # reaches 0.1 × 2.0 up to P = 40
            es_final = 0.1 if P == 6 else 1.9
            for opt, method, final, cos in [
                ("gd", "backprop", 0.02, math.nan),
                ("gd-layerwise", "backprop", 0.03, 0.97),
                ("cma-es", "", cma_final, math.nan),
                ("es", "", es_final, math.nan),
            ]:
                rows = trajectory(opt, method, P, seed, [(0, 2.0), (30 + P, final)], cosine=cos)
                runs.append([{**row, "L": L} for row in rows])
    t = frame(*runs)
    return t, ta.summarize(t)


def test_section_leads_with_each_gradient_free_crossover(data):
    text = tr.section(*data)
    first = text.index("crossover")
    assert first < text.index("Held-out")
    assert "- **cma-es**: crossover at **P = 144** (last reached at P = 40)" in text
    assert "- **es**: crossover at **P = 40** (last reached at P = 6)" in text
    assert (
        "- gd-layerwise/backprop, gd/backprop reach it at every size tried, up to P = 144" in text
    )
    assert text.index("**cma-es**") < text.index("**es**") < text.index("gd-layerwise")


def test_held_out_accuracy_table_quotes_the_summary(data):
    text = tr.section(*data)
    s = data[1].set_index(["label", "P"])
    row = s.loc[("cma-es", 40)]
    cell = f"{row.test_accuracy:.2f} [{row.test_accuracy_lo:.2f}, {row.test_accuracy_hi:.2f}]"
    line = next(line for line in text.splitlines() if line.startswith("| cma-es |"))
    assert line.split(" | ")[2] == cell  # columns: optimizer, P = 6, P = 40, …
    assert "| optimizer | P = 6 | P = 40 | P = 144 |" in text


def test_layerwise_paragraph_quotes_both_losses_and_the_cosine(data):
    text = tr.section(*data)
    s = data[1].set_index(["label", "P"])
    lw, gd = s.loc[("gd-layerwise/backprop", 40)], s.loc[("gd/backprop", 40)]
    expected = f"P = 40 (L = 2): {lw.final_loss:.3g} vs {gd.final_loss:.3g}, cosine {lw.cosine:.3g}"
    assert expected in text and "P = 6 (L = 1)" not in text


def test_setup_states_budget_target_seeds_and_data_sizes(data):
    text = tr.setup(*data)
    assert "**100 forward-pass equivalents**" in text
    assert f"**{ta.TARGET_FRACTION:g} × the initial training loss**" in text
    assert "3 seeds per cell" in text and "P = 6: 20" in text and "50 held-out" in text


def test_slopes_are_quoted_per_family(data):
    text = tr.slope_lines(data[1])
    fits = ta.slopes(data[1]).set_index("group")
    assert f"gradient {fits.slope['gradient']:.2g} ± {fits.se['gradient']:.2g}" in text


def test_no_results_says_so():
    assert "No training results" in tr.section(None, None)
