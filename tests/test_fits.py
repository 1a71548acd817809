"""Scaling laws: known slopes recovered with their errors, the cell rule, the exponents
of N and L kept apart."""

import math

import numpy as np
import pytest
import report_fixtures as fx

from gradbench import fits


def test_fit_line_recovers_slope_and_intercept_within_their_errors():
    rng = np.random.default_rng(3)
    x = np.linspace(0, 10, 40)
    y = 1.5 + 0.7 * x + rng.normal(0, 0.1, x.size)
    line = fits.fit_line(x, y)
    assert abs(line.slope - 0.7) < 3 * line.slope_se
    assert abs(line.intercept - 1.5) < 3 * math.sqrt(line.cov[0, 0])
    assert 0.05 < line.sigma < 0.2 and line.n == 40


def test_prediction_error_grows_away_from_the_fitted_range():
    line = fits.fit_line(np.arange(10.0), np.arange(10.0) + np.resize([0.1, -0.1], 10))
    inside, far = line.at(4.5)[1], line.at(40.0)[1]
    assert far > inside > line.sigma * 0.99


@pytest.mark.parametrize(
    ("dof", "q"), [(1, 12.706), (2, 4.303), (3, 3.182), (10, 2.228), (6, 2.447), (30, 2.042)]
)
def test_t_quantile_matches_the_tables(dof, q):
    assert fits.t_quantile(dof) == pytest.approx(q, abs=2e-3)


def test_cost_laws_recover_the_fixture_slopes(g, pres):
    laws = fits.cost_laws(g, pres).set_index("method")
    for method, slope in [
        ("backprop", 0.0),
        ("fd-central", 1.0),
        ("forward-mode", 1.0),
        ("spsa", 0.0),
    ]:
        r = laws.loc[method]
        assert abs(r.slope - slope) < max(4 * r.slope_se, 0.02), method
        assert r.slope_se > 0
    assert laws.loc["fd-central", "theory"] == 1 and laws.loc["backprop", "theory"] == 0
    assert laws.loc["backprop-checkpoint", "family"] == "reverse"
    assert math.isnan(laws.loc["my-plugin", "theory"])  # a plugin's family states no theory


def test_cost_laws_use_exactly_the_cells_of_the_stated_rule(g, pres):
    laws = fits.cost_laws(g, pres).set_index("method")
    ok = g[(g.method == "fd-central") & (g.status == "ok")]
    rule = ok[(ok.forward_time_s >= 50e-6) & (ok.time_median_s >= 1e-3)]
    used = laws.loc["fd-central", "cells_used"].split()
    assert sorted(used) == sorted(f"{n}x{l}" for n, l in zip(rule.N, rule.L, strict=True))
    assert laws.loc["fd-central", "cells"] == len(rule) and len(rule) < len(ok)


def test_forward_law_keeps_cells_where_dispatch_is_a_tenth_at_most(g):
    cells = fits.forward_cells(g)
    # fixture: dispatch 15 µs per layer, 4 ns per weight → kept iff 4e-9·P ≥ 9 · 15e-6·L
    expected = {(N, L) for N in fx.NS for L in fx.LS if 4e-9 * L * (N * N + N) >= 9 * 15e-6 * L}
    assert set(zip(cells.N, cells.L, strict=True)) == expected
    law = fits.forward_law(g).iloc[0]
    assert 0.7 < law.slope <= 1.0


def test_nl_fit_keeps_the_exponents_of_N_and_L_apart():
    rng = np.random.default_rng(0)
    N, L = np.meshgrid([8, 16, 32, 64, 128], [1, 2, 4, 8])
    N, L = N.ravel().astype(float), L.ravel().astype(float)
    for a, b in [(2.0, 1.0), (4.0, 2.0), (3.0, 0.5)]:
        t = 1e-6 * N**a * L**b * np.exp(rng.normal(0, 0.05, N.size))
        a_hat, a_se, b_hat, b_se = fits.fit(N, L, t)
        assert abs(a_hat - a) < 0.05 and abs(b_hat - b) < 0.05
        assert 0 < a_se < 0.05 and 0 < b_se < 0.05


@pytest.mark.parametrize(
    ("slope", "se", "theory", "expected"),
    [
        (0.2, 0.01, 0.0, True),
        (0.35, 0.01, 0.0, False),
        (0.35, 0.2, 0.0, True),
        (1.0, 0.1, math.nan, None),
    ],
)
def test_agreement_with_theory(slope, se, theory, expected):
    assert fits.agrees(slope, se, theory) is expected


def test_growth_needs_three_points():
    import pandas as pd

    frame = pd.DataFrame({"P": [1, 10], "y": [1, 10]})
    assert fits.growth(frame, "P", "y") is None
    line = fits.growth(pd.DataFrame({"P": [1, 10, 100], "y": [2, 20, 200]}), "P", "y")
    assert line.slope == pytest.approx(1.0)


@pytest.mark.parametrize("s", [0.5, 1.0])
def test_growth_exponent_recovers_the_exponent_under_a_fixed_part(s):
    """Memory as kept activations: a fixed part (work arrays) plus b·L^s; a log-log slope
    of the whole would be bent below s by the fixed part, the exponent fit is not."""
    L = np.array([2, 4, 8, 16, 32, 64], float)
    noise = np.array([1.01, 0.99, 1.0, 1.02, 0.98, 1.0])
    y = (4.0 + 2.0 * L**s) * noise
    got = fits.growth_exponent(L, y)
    assert abs(got.value - s) <= 3 * got.se + 0.02
    assert got.se < 0.15
    assert fits.fit_line(np.log(L), np.log(y)).slope < s - 0.1  # the bent slope


def test_growth_exponent_needs_four_depths():
    assert fits.growth_exponent(np.array([2, 4, 8.0]), np.array([1, 2, 3.0])) is None
