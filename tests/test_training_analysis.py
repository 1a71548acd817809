"""gradbench.training_analysis on hand-made rows: each rule pinned to one number."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gradbench import training_analysis as ta


def trajectory(optimizer, method, P, seed, points, status="ok", kind="exact", **extra):
    """Rows of one run: ``points`` is [(evals, loss), …]; the last point carries the
    held-out metrics."""
    rows = []
    for i, (evals, loss) in enumerate(points):
        last = i == len(points) - 1
        rows.append(
            {
                "optimizer": optimizer,
                "gradient_method": method,
                "kind": kind if method else "",
                "N": 2,
                "L": 1,
                "P": P,
                "seed": seed,
                "evals": evals,
                "wall_s": 0.01 * i,
                "loss": loss,
                "accuracy": 0.5 + 0.1 * last,
                "test_loss": 2.0 * loss if last else math.nan,
                "test_accuracy": 0.3 + 0.01 * seed if last else math.nan,
                "cosine": extra.get("cosine", math.nan),
                "status": status,
                "reason": "boom" if status != "ok" else "",
                "budget_evals": 100,
                "lr": 0.3 if method else math.nan,
                "n_train": 20,
                "n_test": 50,
            }
        )
    return rows


def frame(*runs):
    return pd.DataFrame([row for run in runs for row in run])


def test_evaluations_to_target_are_the_first_at_a_tenth_of_the_initial_loss():
    t = frame(
        trajectory("gd", "backprop", 6, 0, [(0, 2.0), (9, 0.5), (30, 0.2), (45, 0.19)]),
        trajectory("powell", "", 6, 0, [(0, 2.0), (50, 0.21), (100, 0.21)]),
    )
    runs = ta.runs(t).set_index("optimizer")
    assert runs.loc["gd", "evals_to_target"] == 30  # 0.2 ≤ 0.1 × 2.0
    assert runs.loc["gd", "initial_loss"] == 2.0 and runs.loc["gd", "final_loss"] == 0.19
    assert math.isnan(runs.loc["powell", "evals_to_target"])
    assert not runs.loc["powell", "reached"] and runs.loc["gd", "reached"]


def test_the_final_point_is_the_last_recorded_even_at_equal_evaluations():
    t = frame(trajectory("gd", "backprop", 6, 0, [(0, 2.0), (99, 0.3), (99, 0.3)]))
    run = ta.runs(t).iloc[0]
    assert run.test_accuracy == pytest.approx(0.3) and run.accuracy == pytest.approx(0.6)


def test_median_interval_uses_order_statistics():
    assert ta.median_interval(range(1, 11)) == (5.5, 2.0, 9.0)  # n = 10: x₍₂₎, x₍₉₎
    assert ta.median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # too few: the range
    mid, lo, hi = ta.median_interval(range(1, 21))  # n = 20: x₍₆₎, x₍₁₅₎ (95.9 %)
    assert (mid, lo, hi) == (10.5, 6.0, 15.0)
    assert all(math.isnan(v) for v in ta.median_interval([math.nan]))


def test_wilson_interval_matches_the_textbook_values():
    assert ta.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert ta.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert ta.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def test_summary_counts_errors_as_not_reaching_and_leaves_them_out_of_medians():
    t = frame(
        trajectory("gd", "backprop", 6, 0, [(0, 2.0), (30, 0.1)]),
        trajectory("gd", "backprop", 6, 1, [(0, 2.0), (60, 0.1)]),
        trajectory("gd", "backprop", 6, 2, [(0, math.nan)], status="error"),
    )
    row = ta.summarize(t).iloc[0]
    assert row.seeds == 3 and row.errors == 1 and row.reason == "boom"
    assert row.reached == pytest.approx(2 / 3)
    assert row.evals_to_target == 45 and row.final_loss == pytest.approx(0.1)
    assert row.family == "gradient" and row.label == "gd/backprop"
    assert row.test_accuracy == pytest.approx(0.305)


def summary_rows(rows):
    """A summary with only the columns crossovers and slopes read."""
    return pd.DataFrame(
        rows, columns=["optimizer", "gradient_method", "family", "P", "reached", "evals_to_target"]
    )


def test_crossover_is_the_first_size_without_a_majority():
    s = summary_rows(
        [
            ("cma-es", "", "gradient-free", 6, 1.0, 50),
            ("cma-es", "", "gradient-free", 40, 0.6, 300),
            ("cma-es", "", "gradient-free", 144, 0.5, 900),  # a tie is not a majority
            ("cma-es", "", "gradient-free", 544, 0.0, math.nan),
            ("es", "", "gradient-free", 6, 0.4, 80),
            ("gd", "backprop", "gradient", 6, 1.0, 10),
            ("gd", "backprop", "gradient", 544, 1.0, 12),
        ]
    )
    c = ta.crossovers(s).set_index("optimizer")
    assert list(c.columns) == ["family", "largest_P_reached", "crossover_P"]
    assert (c.loc["cma-es", "largest_P_reached"], c.loc["cma-es", "crossover_P"]) == (40, 144)
    assert math.isnan(c.loc["es", "largest_P_reached"]) and c.loc["es", "crossover_P"] == 6
    assert c.loc["gd/backprop", "largest_P_reached"] == 544
    assert math.isnan(c.loc["gd/backprop", "crossover_P"])


def test_slopes_recover_known_growth_per_optimizer_and_family():
    P = np.array([6, 40, 144, 544])
    rows = [("a", "", "gradient-free", p, 1.0, 3 * p) for p in P]
    rows += [("b", "", "gradient-free", p, 1.0, 7 * p) for p in P]  # its own intercept
    rows += [("gd", "backprop", "gradient", p, 1.0, 20 * p**0.1) for p in P]
    rows += [("b", "", "gradient-free", 2000, 0.0, math.nan)]  # not reached: left out
    fits = ta.slopes(summary_rows(rows)).set_index("group")
    assert fits.loc["gradient-free", "slope"] == pytest.approx(1.0)
    assert fits.loc["gradient-free", "se"] == pytest.approx(0.0, abs=1e-9)
    assert fits.loc["gradient-free", "sizes"] == 8
    assert fits.loc["a", "slope"] == pytest.approx(1.0)
    assert fits.loc["gd/backprop", "slope"] == pytest.approx(0.1)


def test_slope_standard_error_is_the_least_squares_one():
    P = np.array([10.0, 100.0, 1000.0])
    evals = np.array([10.0, 200.0, 1000.0])
    rows = [("a", "", "gradient-free", p, 1.0, e) for p, e in zip(P, evals, strict=True)]
    fit = ta.slopes(summary_rows(rows)).set_index("group").loc["a"]
    x, y = np.log10(P), np.log10(evals)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    se = np.sqrt(resid @ resid / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
    assert fit.slope == pytest.approx(slope) and fit.se == pytest.approx(se)


def test_layerwise_comparison_pairs_it_with_gd_backprop():
    t = frame(
        trajectory("gd", "backprop", 12, 0, [(0, 2.0), (99, 0.4)]),
        trajectory("gd-layerwise", "backprop", 12, 0, [(0, 2.0), (99, 0.2)], cosine=0.9),
    )
    lw = ta.layerwise(ta.summarize(t)).iloc[0]
    assert (lw.gd_loss, lw.layerwise_loss, lw.loss_ratio) == pytest.approx((0.4, 0.2, 0.5))
    assert lw.cosine == pytest.approx(0.9)


def test_families_follow_the_gradient_methods_kind():
    assert ta.family("", "") == "gradient-free"
    assert ta.family("exact", "backprop") == "gradient"
    assert ta.family("approximate", "fd-central") == "approximate gradient"


def test_analysis_does_not_import_scipy_optimize():
    code = (
        "import sys, gradbench.training_analysis, gradbench.training_report; "
        "sys.exit('scipy.optimize' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
