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


def test_median_interval_is_the_narrowest_order_statistic_interval_with_the_coverage():
    """[x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] covers the median with probability 1 − 2·P(Bin(n, ½) ≤ k − 1)."""

    def coverage(n, k):
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    for n in range(1, 41):
        for level in (0.3, 0.375, 0.45, 0.5, 0.75, 0.8, 0.9, 0.95, 0.99):
            _, lo, hi = ta.median_interval(range(1, n + 1), level)
            k = int(lo)
            assert hi == n + 1 - k
            assert coverage(n, k) >= level or k == 1  # too few values: the whole range
            if 2 * (k + 1) <= n + 1:  # the next narrower interval falls short
                assert coverage(n, k + 1) < level
    assert ta.median_interval(range(1, 41))[1:] == (14.0, 27.0)  # the textbook x₍₁₄₎, x₍₂₇₎


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


def test_tidy_reads_gradient_free_runs_back_from_csv_as_empty_methods():
    t = pd.DataFrame(
        {"optimizer": ["powell", "gd"], "gradient_method": [math.nan, "backprop"],
         "kind": [math.nan, "exact"]}
    )  # fmt: skip
    out = ta.tidy(t)
    assert list(out.gradient_method) == ["", "backprop"] and list(out.kind) == ["", "exact"]
    assert list(out.label) == ["powell", "gd/backprop"]
    assert "kind" not in ta.tidy(t.drop(columns="kind"))


def test_a_gradient_method_of_unknown_kind_counts_as_exact_and_others_by_their_kind():
    assert ta.family("", "gone") == "gradient"
    assert ta.family("stochastic", "spsa") == "stochastic gradient"


def test_wilson_interval_stays_in_the_unit_interval_and_is_undefined_for_no_runs():
    for n in range(1, 31):
        for k in range(n + 1):
            lo, hi = ta.wilson(k, n)
            assert 0.0 <= lo <= hi <= 1.0 and lo - 1e-12 <= k / n <= hi + 1e-12
    assert all(math.isnan(v) for v in ta.wilson(0, 0))


def test_median_interval_leaves_out_missing_values():
    assert ta.median_interval([math.nan, 3.0, 1.0, math.nan, 2.0]) == (2.0, 1.0, 3.0)
    assert ta.median_interval(pd.Series([3.0, None, 1.0], dtype=object)) == (2.0, 1.0, 3.0)
    assert all(math.isnan(v) for v in ta.median_interval([]))


def test_summary_has_every_median_with_its_interval_over_the_ok_runs():
    t = frame(
        trajectory("gd", "fd-central", 6, 0, [(0, 2.0), (30, 0.2), (50, 0.1)], kind="approximate"),
        trajectory("gd", "fd-central", 6, 1, [(0, 3.0), (20, 0.3), (40, 0.25)], kind="approximate"),
        trajectory("gd", "fd-central", 6, 2, [(0, 4.0), (10, 0.4), (70, 0.2)], kind="approximate"),
        trajectory("gd", "fd-central", 6, 3, [(0, 4.0)], status="error", kind="approximate"),
        trajectory("gd", "fd-central", 6, 4, [(0, 4.0)], status="crashed", kind="approximate"),
    )
    t.loc[t.seed == 4, "reason"] = "killed"
    row = ta.summarize(t).iloc[0]
    assert (row.family, row.seeds, row.errors, row.reason) == (
        "approximate gradient", 5, 2, "boom; killed",
    )  # fmt: skip
    # final losses 0.1, 0.25, 0.2; held-out 2× those; three values: the interval is the range
    assert (row.final_loss, row.final_loss_lo, row.final_loss_hi) == (0.2, 0.1, 0.25)
    assert (row.test_loss, row.test_loss_lo, row.test_loss_hi) == (0.4, 0.2, 0.5)
    assert (row.final_accuracy, row.final_accuracy_lo, row.final_accuracy_hi) == pytest.approx(
        (0.6, 0.6, 0.6)
    )
    assert row.test_accuracy == pytest.approx(0.31)  # 0.3 + 0.01·seed over seeds 0, 1, 2
    assert (row.test_accuracy_lo, row.test_accuracy_hi) == pytest.approx((0.30, 0.32))
    # targets 0.2, 0.3, 0.4: first reached at 30, 20 and 10 evaluations
    assert (row.evals_to_target, row.evals_to_target_lo, row.evals_to_target_hi) == (20, 10, 30)
    assert row.reached == pytest.approx(3 / 5)
    assert (row.reached_lo, row.reached_hi) == pytest.approx(ta.wilson(3, 5))
    assert (row.initial_loss, row.target_loss, row.evals) == pytest.approx((3.0, 0.3, 50))
    assert row.wall_s == pytest.approx(0.02)
    assert (row.budget_evals, row.lr, row.n_train, row.n_test) == (100, 0.3, 20, 50)


def test_a_runs_cosine_is_its_mean_over_the_recorded_points():
    t = frame(trajectory("gd-layerwise", "backprop", 6, 0, [(0, 2.0), (9, 1.0), (20, 0.5)]))
    t["cosine"] = [math.nan, 0.8, 1.0]
    assert ta.runs(t).cosine.iloc[0] == pytest.approx(0.9)
    assert ta.summarize(t).cosine.iloc[0] == pytest.approx(0.9)


def test_a_table_without_the_kind_column_counts_every_gradient_as_exact():
    t = frame(
        trajectory("gd", "fd-central", 6, 0, [(0, 2.0), (9, 1.0)], kind="approximate"),
        trajectory("powell", "", 6, 0, [(0, 2.0), (9, 1.0)]),
    ).drop(columns="kind")
    assert list(ta.summarize(t).family) == ["gradient", "gradient-free"]


def test_a_table_without_cosine_or_n_test_columns_summarises_them_as_missing():
    t = frame(trajectory("gd", "backprop", 6, 0, [(0, 2.0), (9, 1.0)]))
    row = ta.summarize(t.drop(columns=["cosine", "n_test"])).iloc[0]
    assert math.isnan(row.cosine) and math.isnan(row.n_test) and row.n_train == 20


def test_summary_is_ordered_by_size_then_family_then_optimizer():
    t = frame(
        trajectory("powell", "", 40, 0, [(0, 2.0), (9, 1.0)]),
        trajectory("gd", "backprop", 40, 0, [(0, 2.0), (9, 1.0)]),
        trajectory("cma-es", "", 40, 0, [(0, 2.0), (9, 1.0)]),
        trajectory("lbfgs", "fd-central", 6, 0, [(0, 2.0), (9, 1.0)], kind="approximate"),
        trajectory("gd", "fd-central", 6, 0, [(0, 2.0), (9, 1.0)], kind="approximate"),
    )
    s = ta.summarize(t)
    assert list(s.label) == ["gd/fd-central", "lbfgs/fd-central", "gd/backprop", "cma-es", "powell"]
    assert list(s.index) == [0, 1, 2, 3, 4] and "index" not in s


def test_crossovers_are_ordered_by_family_then_optimizer_with_their_family():
    s = summary_rows(
        [
            ("powell", "", "gradient-free", 6, 1.0, 50),
            ("cma-es", "", "gradient-free", 6, 1.0, 50),
            ("gd", "backprop", "gradient", 6, 1.0, 10),
        ]
    )
    c = ta.crossovers(s)
    assert list(c.optimizer) == ["gd/backprop", "cma-es", "powell"]
    assert list(c.family) == ["gradient", "gradient-free", "gradient-free"]
    assert list(c.index) == [0, 1, 2]


def test_slopes_leave_out_ties_and_zero_evaluations_and_fit_two_sizes_without_error():
    rows = [
        ("a", "", "gradient-free", 10, 1.0, 10),
        ("a", "", "gradient-free", 100, 1.0, 100),
        ("a", "", "gradient-free", 1000, 0.5, 5),  # a tie is not a majority
        ("a", "", "gradient-free", 5, 1.0, 0),  # no log of zero evaluations
    ]
    fit = ta.slopes(summary_rows(rows)).set_index("group").loc["a"]
    assert fit.slope == pytest.approx(1.0) and fit.sizes == 2
    assert math.isnan(fit.se)  # two points, one intercept: no residual degree of freedom
    one = ta.slopes(summary_rows(rows[:1])).set_index("group").loc["a"]
    assert math.isnan(one.slope) and one.sizes == 1


def test_with_nothing_reached_the_tables_still_have_their_columns():
    nothing = summary_rows([])
    assert list(ta.crossovers(nothing).columns) == [
        "optimizer", "family", "largest_P_reached", "crossover_P",
    ]  # fmt: skip
    assert list(ta.slopes(nothing).columns) == ["group", "family", "slope", "se", "sizes"]


def test_slopes_keep_one_evaluation_and_give_no_slope_for_sizes_of_equal_P():
    rows = [("a", "", "gradient-free", p, 1.0, e) for p, e in ((1, 1), (10, 10), (100, 100))]
    rows += [("b", "", "gradient-free", 12, 1.0, e) for e in (50, 60)]  # (2, 2) and (3, 1)
    fits = ta.slopes(summary_rows(rows)).set_index("group")
    assert fits.loc["a", "slope"] == pytest.approx(1.0) and fits.loc["a", "sizes"] == 3
    assert fits.loc["a", "family"] == "gradient-free"
    assert math.isnan(fits.loc["b", "slope"]) and fits.loc["b", "sizes"] == 2


def test_family_slope_with_unit_spread_of_log_P():
    """Two optimizers at P = 10 and 100: centred log₁₀ P is ±½ in each, Σx̃² = 1."""
    rows = [("a", "", "gradient-free", p, 1.0, p) for p in (10, 100)]
    rows += [("b", "", "gradient-free", p, 1.0, 3 * p) for p in (10, 100)]
    fam = ta.slopes(summary_rows(rows)).set_index("group").loc["gradient-free"]
    assert fam.slope == pytest.approx(1.0) and fam.sizes == 4


def test_family_slope_error_is_least_squares_with_one_intercept_per_optimizer():
    P = np.array([10.0, 100.0, 1000.0, 10.0, 100.0, 1000.0])
    evals = np.array([10.0, 200.0, 1000.0, 50.0, 300.0, 9000.0])
    names = ["a"] * 3 + ["b"] * 3
    rows = [(n, "", "gradient-free", p, 1.0, e) for n, p, e in zip(names, P, evals, strict=True)]
    fam = ta.slopes(summary_rows(rows)).set_index("group").loc["gradient-free"]
    # columns: log P, an intercept for a, one for b
    X = np.column_stack([np.log10(P), [1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    y = np.log10(evals)
    coef, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    cov = rss[0] / (len(y) - 3) * np.linalg.inv(X.T @ X)
    assert fam.slope == pytest.approx(coef[0]) and fam.se == pytest.approx(np.sqrt(cov[0, 0]))
    assert (fam.family, fam.sizes) == ("gradient-free", 6)


def test_layerwise_comparison_has_both_held_out_accuracies_and_needs_both_runs():
    t = frame(
        trajectory("gd", "backprop", 12, 0, [(0, 2.0), (99, 0.4)]),
        trajectory("gd-layerwise", "backprop", 12, 1, [(0, 2.0), (99, 0.2)]),  # held out 0.31
        trajectory("gd", "backprop", 40, 0, [(0, 2.0), (99, 0.4)]),  # no layer-wise beside it
        trajectory("gd-layerwise", "fd-central", 40, 0, [(0, 2.0), (99, 0.2)]),
    )
    lw = ta.layerwise(ta.summarize(t))
    assert list(lw.P) == [12] and (lw.N.iloc[0], lw.L.iloc[0]) == (2, 1)
    assert (lw.gd_test_accuracy.iloc[0], lw.layerwise_test_accuracy.iloc[0]) == pytest.approx(
        (0.30, 0.31)
    )


def test_analysis_does_not_import_scipy_optimize():
    code = (
        "import sys, gradbench.training_analysis, gradbench.training_report; "
        "sys.exit('scipy.optimize' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
