"""Predictions: a known law recovered within its interval, refusals, the backtest."""

import math

import numpy as np
import pandas as pd
import pytest
import report_fixtures as fx

from gradbench import analysis, predict


@pytest.fixture(scope="module")
def pres():
    return analysis.load_presentation()


@pytest.fixture(scope="module")
def g():
    return analysis.main_configuration(analysis.latest_machine(fx.gradients()))


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


def test_backtest_on_the_fixture_keeps_most_held_out_cells_inside(g, pres):
    cost_only = predict.backtest(g, pres, 9000, forward_below=False)
    assert len(cost_only) >= 2 and cost_only.inside.mean() >= 0.8
    assert (cost_only.P >= 9000).all() and "forward-mode" in set(cost_only.method)
    # fitted below the cutoff only: the fixture's forward law then spans too little P
    assert predict.backtest(g, pres, 3e5).empty


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
