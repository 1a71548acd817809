"""Predictions: a known law recovered within its interval, refusals, the backtest."""

import math

import numpy as np
import pandas as pd
import pytest
import report_fixtures as fx

from gradbench import analysis, predict


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


def power_law_cells(seed: int = 0) -> pd.DataFrame:
    """Cells whose forward time is 100 ns per weight and whose methods cost exactly 3 and
    2P forward passes, with 5 % noise: the laws predict hold by construction."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in (8, 16, 32, 64, 128, 256, 512, 1024):
        for L in (1, 2, 4):
            P = L * (N * N + N)
            fwd = 1e-7 * P * np.exp(rng.normal(0, 0.05))
            base = {"N": N, "L": L, "P": P, "B": 64, "bias": True, "status": "ok"}
            rows.append(base | {"method": "forward", "kind": "reference", "time_median_s": fwd})
            for method, kind, r in (
                ("backprop", "exact", 3.0),
                ("fd-central", "approximate", 2.0 * P),
            ):
                r *= np.exp(rng.normal(0, 0.05))
                rows.append(
                    base
                    | {
                        "method": method,
                        "kind": kind,
                        "time_median_s": r * fwd,
                        "forward_time_s": fwd,
                        "ratio_to_forward": r,
                    }
                )
    return pd.DataFrame(rows).reindex(columns=analysis.REQUIRED + ["status"] + analysis.OPTIONAL)


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
