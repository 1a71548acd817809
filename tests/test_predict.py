"""Predictions: a known law recovered within its interval, refusals, the backtest."""

import math

import numpy as np
import pandas as pd
import pytest
import report_fixtures as fx

from gradbench import analysis, fits, predict


def test_a_known_law_is_recovered_within_its_interval_far_beyond_the_data(g, pres):
    laws = predict.laws_of(g, pres)
    P = 25_000_000
    truth = fx.forward_time(P, 4) * 2.0 * P  # fd-central: 2P forward passes
    row = predict.predict_times(laws, P).set_index("method").loc["fd-central"]
    assert row.no_prediction == ""
    assert row.lo_s <= truth <= row.hi_s
    assert row.largest_measured_P == g[(g.method == "fd-central") & (g.status == "ok")].P.max()


def test_the_interval_widens_with_distance_from_the_measured_range(g, pres):
    laws = predict.laws_of(g, pres)
    near = predict.predict_times(laws, 10**6).set_index("method").loc["backprop"]
    far = predict.predict_times(laws, 10**10).set_index("method").loc["backprop"]
    assert far.hi_s / far.lo_s > near.hi_s / near.lo_s > 1


def test_too_few_cells_refuse_to_predict(g, pres):
    few = g[(g.method != "fd-central") | (g.P >= 4000)]
    row = predict.predict_times(predict.laws_of(few, pres), 10**7).set_index("method")
    assert "cells (needs 4)" in row.loc["fd-central", "no_prediction"]
    assert math.isnan(row.loc["fd-central", "predicted_s"])


def test_a_law_that_fails_its_theory_check_is_refused():
    row = pd.Series({"cells": 10, "P_min": 10, "P_max": 1e5, "slope": 1.7, "slope_se": 0.05,
                     "theory": 1.0})  # fmt: skip
    assert "disagrees with theory 1" in predict.law_problem(row)
    assert "less than a factor 10" in predict.law_problem(row.copy().replace({1e5: 50}))
    assert predict.law_problem(row.copy().replace({1.7: 1.1})) is None


def test_size_from_N_and_L_counts_the_biases():
    assert predict.size_of({"N": 10, "L": 3}, bias=True) == (330, 10, 3)
    assert predict.size_of({"N": 10, "L": 3}, bias=False) == (300, 10, 3)
    assert predict.size_of({"P": 25e6}, bias=True) == (25_000_000, None, None)


def test_memory_prediction_from_the_measured_scale(g, pres):
    laws = predict.laws_of(g, pres)
    mem = predict.predict_memory(laws, 1024, 8)
    truth = 1.2 * 8 * (8 * fx.B * 1024 + 8 * (1024 * 1024 + 1024))
    got = mem["backprop"]
    assert got.value == pytest.approx(truth, rel=1e-6) and got.lo <= got.value <= got.hi


def power_law_cells(seed: int = 0, dispatch: float = 0.0, fd_max_P: float = math.inf):
    """Cells whose forward pass costs 100 ns per weight plus ``dispatch`` seconds per layer,
    and whose methods are backprop (3 forward passes) and fd-central (2P forward passes of
    the work alone: batched, it pays no per-call dispatch), with 5 % noise. Without
    dispatch the laws predict hold by construction; with it the cost law curves (its slope
    falls from 2 towards 1 as the work outgrows the dispatch), as measured ones do.
    fd-central is timed up to ``fd_max_P``, as a sweep's budget would stop it."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in (8, 16, 32, 64, 128, 256, 512, 1024):
        for L in (1, 2, 4):
            P = L * (N * N + N)
            work = 1e-7 * P
            fwd = (work + dispatch * L) * np.exp(rng.normal(0, 0.05))
            base = {"N": N, "L": L, "P": P, "B": 64, "bias": True, "status": "ok"}
            rows.append(base | {"method": "forward", "kind": "reference", "time_median_s": fwd})
            for method, kind, t in (
                ("backprop", "exact", 3.0 * fwd),
                ("fd-central", "approximate", 2.0 * P * work),
            ):
                if method == "fd-central" and P > fd_max_P:
                    continue
                t *= np.exp(rng.normal(0, 0.05))
                rows.append(
                    base
                    | {
                        "method": method,
                        "kind": kind,
                        "time_median_s": t,
                        "forward_time_s": fwd,
                        "ratio_to_forward": t / fwd,
                    }
                )
    return pd.DataFrame(rows).reindex(columns=analysis.REQUIRED + ["status"] + analysis.OPTIONAL)


def test_the_interval_adds_the_gap_to_theory_beyond_the_fitted_range_only():
    # a noiseless line of slope 1.2 fitted on log P ∈ [0, 2]; theory says 1
    line = fits.Line(0.0, 1.2, np.zeros((2, 2)), 0.0, 10, 0.0, 2.0)
    assert predict.spread(line, 1.0, 1.5) == (pytest.approx(1.8), 0.0)
    assert predict.spread(line, 1.0, 5.0)[1] == pytest.approx(0.2 * 3.0)  # 3 beyond the edge
    assert predict.spread(line, 1.0, -1.0)[1] == pytest.approx(0.2 * 1.0)
    assert predict.spread(line, math.nan, 5.0)[1] == 0.0  # no theory, no gap to measure


def test_a_curved_law_is_covered_far_beyond_the_measured_range(pres):
    # per-layer dispatch of 15 µs (this machine's): fd-central measured up to P = 20 000
    cells = power_law_cells(dispatch=15e-6, fd_max_P=20_000)
    laws = predict.laws_of(cells, pres)
    law = laws.cost.set_index("method").loc["fd-central"]
    assert 1.05 < law.slope < 1.3  # curved: steeper than theory, as measured ones are
    for P in (10**6, 25_000_000):
        truth = 2.0 * P * 1e-7 * P  # 2P forward passes of the work alone
        row = predict.predict_times(laws, P).set_index("method").loc["fd-central"]
        assert row.lo_s <= truth <= row.hi_s  # the fit's own error alone misses it


def test_backtest_holds_out_the_cells_above_the_cutoff_and_covers_them(pres):
    cells = power_law_cells()
    held = predict.backtest(cells, pres, 200_000)
    assert set(held.method) == {"backprop", "fd-central"}
    assert (held.P >= 200_000).all() and len(held) == 2 * ((cells.P >= 200_000).sum() // 3)
    # 95 % intervals: over five independent noise draws, nearly every held-out cell is inside
    shares = [
        predict.backtest(power_law_cells(seed), pres, 200_000).inside.mean() for seed in range(5)
    ]
    assert np.mean(shares) >= 0.85


def test_backtest_of_a_curved_law_covers_it_with_usable_intervals(pres):
    # fitted below P = 20 000, predicted up to 200× beyond; only the cost law is held out
    runs = [
        predict.backtest(power_law_cells(seed, dispatch=15e-6), pres, 20_000, forward_below=False)
        for seed in range(5)
    ]
    shares, widths = zip(*(predict.coverage(held) for held in runs), strict=True)
    assert all(len(held) > 8 for held in runs)
    assert np.mean(shares) >= 0.8 and np.median(widths) < 50


def test_the_backtest_cutoff_is_a_quantile_of_the_law_cells(g, pres):
    for share in (0.5, 0.4):
        cutoff, held = predict.backtest_at_median(g, pres, share)
        assert cutoff == fits.law_cells(g).P.quantile(share) and (held.P >= cutoff).all()
    assert all(math.isnan(v) for v in predict.coverage(held.iloc[:0]))


def test_backtest_holds_out_only_cells_a_law_would_admit(g, pres):
    held = predict.backtest(g, pres, 9000, forward_below=False)
    cells = held.merge(g[g.status == "ok"], on=["method", "N", "L"])
    assert len(cells) == len(held)
    assert len(held) and (cells.time_median_s >= 1e-3).all()
    assert (cells.forward_time_s >= 50e-6).all()


def test_crossover_law_predicts_evaluations_with_the_same_rules():
    P = np.array([6, 40, 144, 544, 2112])
    summary = pd.DataFrame({"optimizer": "powell", "gradient_method": "", "P": P,
                            "reached": 1.0, "evals_to_target": 50.0 * P**1.5})  # fmt: skip
    laws = predict.crossover_laws(summary)
    got = predict.predict_evals(laws, 10**6).iloc[0]
    assert got.lo <= 50.0 * 1e9 <= got.hi
    assert predict.predict_evals(predict.crossover_laws(summary.iloc[:3]), 10**6).empty
    assert predict.crossover_laws(summary.drop(columns="evals_to_target")).empty


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(3.2e7, "1 years"), (1.3e8, "4.1 years"), (90, "1.5 minutes"), (2e-4, "200 microseconds"),
     (5e11, "15,844 years")],
)  # fmt: skip
def test_durations_in_plain_words(seconds, words):
    assert predict.plain_duration(seconds) == words
