"""Scaling laws: known slopes recovered with their errors, the cell rule, the exponents
of N and L kept apart."""

import dataclasses
import math

import numpy as np
import pandas as pd
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


def _profile_minimum(x, y):
    """The exponent fit done independently: the relative residual of y = a + b·x^s solved
    on a grid of s (step 5·10⁻³, then 10⁻⁴ around its least point; no interpolation), its
    least point s*, the profile's curvature there by central differences, and
    se = √(2σ²/R'') with σ² = R(s*)/(n − 3)."""

    def R(s):
        A = np.column_stack([np.ones_like(x), x**s]) / y[:, None]
        coef = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]
        return float(((A @ coef - 1) ** 2).sum())

    coarse = np.arange(0.05, 1.95, 0.005)
    s = coarse[int(np.argmin([R(v) for v in coarse]))]
    fine = np.arange(s - 0.01, s + 0.01, 1e-4)
    s = fine[int(np.argmin([R(v) for v in fine]))]
    d = 1e-3
    curvature = (R(s + d) - 2 * R(s) + R(s - d)) / d**2
    return s, np.sqrt(2 * R(s) / (x.size - 3) / curvature)


@pytest.mark.parametrize("s", [0.37, 0.5, 0.83])
def test_growth_exponent_is_the_least_residual_and_its_curvature(s):
    # the grid (step 0.02) refined by a parabola must land within 2·10⁻³ of the profile's
    # true minimum, and its se within 5 % of the one from the true curvature
    x = np.array([2, 4, 8, 16, 32, 64], float)
    noise = np.array([1.03, 0.98, 1.0, 1.02, 0.97, 1.01])
    y = (4.0 + 2.0 * x**s) * noise
    want, se = _profile_minimum(x, y)
    got = fits.growth_exponent(x, y)
    assert got.value == pytest.approx(want, abs=2e-3)
    assert got.se == pytest.approx(se, rel=0.05)


@pytest.mark.parametrize(("s", "found"), [(0.04, True), (1.98, True), (2.5, False)])
def test_growth_exponent_next_to_the_grid_edges(s, found):
    # exact data: the least residual is at s itself; the grid's ends are 0.02 and 2.0, so
    # 0.04 and 1.98 are inner points (found), 2.5 lies beyond the end (None)
    x = np.array([2, 3, 4, 5, 6], float)  # four distinct x at least; here five
    got = fits.growth_exponent(x, 10.0 + 3.0 * x**s)
    if found:
        assert got.value == pytest.approx(s, abs=0.01)
    else:
        assert got is None


def test_growth_exponent_needs_four_distinct_depths_and_four_suffice():
    x = np.array([2, 4, 8, 16.0])
    assert fits.growth_exponent(x, 1.0 + x) is not None
    assert fits.growth_exponent(np.array([2, 4, 8, 8.0]), 1.0 + x) is None


# ---------------------------------------------------------------- hand-computed values
# x = [0, 1, 2], y = [0, 2, 1]: x̄ = ȳ = 1, Sxx = 2, Sxy = 1 → slope 1/2, intercept 1/2;
# residuals [-1/2, 1, -1/2] → SSE = 3/2 on 1 degree of freedom → σ² = 3/2;
# var(slope) = σ²/Sxx = 3/4, var(intercept) = σ²(1/n + x̄²/Sxx) = 5/4, cov = -x̄σ²/Sxx = -3/4.
HAND_X, HAND_Y = np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 1.0])


def test_fit_line_gives_the_hand_computed_coefficients_and_errors():
    line = fits.fit_line(HAND_X, HAND_Y)
    assert (line.slope, line.intercept) == (pytest.approx(0.5), pytest.approx(0.5))
    assert line.sigma == pytest.approx(math.sqrt(1.5))
    assert line.cov == pytest.approx(np.array([[1.25, -0.75], [-0.75, 0.75]]))
    assert line.slope_se == pytest.approx(math.sqrt(0.75))
    assert (line.n, line.dof, line.x_min, line.x_max) == (3, 1, 0.0, 2.0)


def test_a_new_observation_adds_the_residual_variance_to_the_lines():
    line = fits.fit_line(HAND_X, HAND_Y)
    # var = [1 x] Σ [1 x]ᵀ + σ²: at x = 1, 5/4 − 3/2 + 3/4 + 3/2 = 2;
    # at x = 3, 5/4 − 9/2 + 27/4 + 3/2 = 5
    assert line.at(1.0) == (pytest.approx(1.0), pytest.approx(math.sqrt(2.0)))
    assert line.at(3.0) == (pytest.approx(2.0), pytest.approx(math.sqrt(5.0)))


def test_two_points_give_a_line_without_errors():
    line = fits.fit_line(np.array([0.0, 1.0]), np.array([1.0, 3.0]))
    assert (line.slope, line.intercept) == (pytest.approx(2.0), pytest.approx(1.0))
    assert math.isnan(line.sigma) and np.isnan(line.cov).all() and line.dof == 0
    assert line.cov.shape == (2, 2)


def test_t_quantile_tabulated_values_and_refusals():
    table = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706]  # Student t, 97.5 %, 1 to 5 dof
    assert [fits.t_quantile(d) for d in range(1, 6)] == pytest.approx(table, abs=1e-4)
    assert fits.t_quantile(0) == math.inf and fits.t_quantile(-1) == math.inf
    with pytest.raises(ValueError, match="^only the 95 % two-sided quantile is tabulated"):
        fits.t_quantile(10, p=0.95)


@pytest.mark.parametrize(
    ("dof", "q"), [(6, 2.44691), (8, 2.30600), (12, 2.17881), (20, 2.08596), (60, 2.00030),
                   (1000, 1.96234)],
)  # fmt: skip
def test_t_quantile_expansion_is_within_its_stated_error(dof, q):
    # the expansion's error falls as dof⁻⁴: under 3e-3 at 6, so under 3e-3·(6/dof)⁴ beyond
    assert abs(fits.t_quantile(dof) - q) < max(3e-3 * (6 / dof) ** 4, 1e-5)


@pytest.mark.parametrize(
    ("slope", "se", "theory", "expected"),
    [
        (0.3, 0.0, 0.0, True),  # |slope − theory| equal to the slack agrees
        (0.5, 0.15, 0.0, False),  # 3·se = 0.45 < 0.5
        (0.5, 0.17, 0.0, True),  # 3·se = 0.51 ≥ 0.5
        (1.25, 0.0, 1.0, True),
        (0.5, math.nan, 0.0, False),  # no standard error: the slack alone
        (0.0, 0.1, None, None),
    ],
)
def test_agreement_boundaries(slope, se, theory, expected):
    assert fits.agrees(slope, se, theory) is expected


def _cells(rows: list[tuple]) -> pd.DataFrame:
    """Measured cells (method, N, L, P, forward s, time s, ratio)."""
    cols = ["method", "N", "L", "P", "forward_time_s", "time_median_s", "ratio_to_forward"]
    return pd.DataFrame(rows, columns=cols).assign(
        kind="exact", status="ok", reason=np.nan, loss_evals=1.0
    )


def test_law_cells_keep_the_boundaries_and_drop_what_is_below():
    cells = _cells([
        ("a", 1, 1, 1, 50e-6, 1e-3, 20.0),  # both at the threshold: kept
        ("a", 2, 1, 2, 49e-6, 1e-2, 20.0),  # forward below 50 µs
        ("a", 3, 1, 3, 1e-4, 0.99e-3, 20.0),  # gradient below 1 ms
        ("a", 4, 1, 4, 1e-4, 1e-2, 0.0),  # no ratio
        ("a", 5, 1, 5, 1e-4, 1e-2, 0.5),  # faster than a forward pass: kept
    ])  # fmt: skip
    assert list(fits.law_cells(cells).N) == [1, 5]


def test_cost_law_recovers_an_exact_power_and_names_its_cells_by_P(pres):
    # ratio = 3·P²: slope 2, intercept log 3, zero residuals; "zz" has 2 cells, "yy" one P
    rows = [("zz", N, 1, N * N, 1e-3, 1.0, 3.0 * (N * N) ** 2) for N in (8, 4, 16)]
    rows += [("aa", 4, 1, 20, 1e-3, 1.0, 2.0), ("aa", 8, 1, 72, 1e-3, 1.0, 2.0)]
    rows += [("yy", 4, L, 20, 1e-3, 1.0, 2.0) for L in (1, 2, 3)]
    rows += [("bb", N, 1, N * N, 1e-3, 1.0, 2.0) for N in (40, 80, 160)]  # larger P, first name
    rows += [("cc", 4, 1, 20, 1e-3, 1.0, 2.0), ("cc", 2, 5, 20, 1e-3, 1.0, 2.0),
             ("cc", 8, 1, 72, 1e-3, 1.0, 2.0)]  # two distinct P suffice  # fmt: skip
    laws = fits.cost_laws(_cells(rows), pres)
    assert list(laws.method) == ["bb", "cc", "zz"]  # by name
    law = laws.iloc[2]
    assert (law.slope, law.intercept) == (pytest.approx(2.0), pytest.approx(math.log(3)))
    assert law.slope_se == pytest.approx(0, abs=1e-6) and law.sigma == pytest.approx(0, abs=1e-6)
    assert (law.cells, law.P_min, law.P_max) == (3, 16, 256)
    assert law.cells_used == "4x1 8x1 16x1"  # in order of P
    assert law.family == "other" and math.isnan(law.theory)  # kind exact, not listed
    by_kind = dataclasses.replace(pres, kinds={"exact": "per-weight"})
    law = fits.cost_laws(_cells(rows), by_kind).iloc[2]
    assert (law.family, law.theory) == ("per-weight", 1.0)  # an unlisted method goes by kind


def test_a_law_row_round_trips_through_line_of():
    line = fits.fit_line(np.log([10.0, 20.0, 40.0]), HAND_Y)
    row = fits.law_row(line, pd.DataFrame({"P": [10, 20, 40]}))
    assert row["cells_used"] == "P=10 P=20 P=40"  # no N and L: named by P
    assert (row["P_min"], row["P_max"], row["cells"]) == (10, 40, 3)
    back = fits.line_of(pd.Series(row))
    assert (back.slope, back.intercept, back.sigma, back.n) == (
        line.slope, line.intercept, line.sigma, 3
    )  # fmt: skip
    assert back.cov == pytest.approx(line.cov)
    assert (back.x_min, back.x_max) == (pytest.approx(math.log(10)), pytest.approx(math.log(40)))


def _forward_rows(times: dict) -> pd.DataFrame:
    rows = [{"method": "forward", "kind": "reference", "status": "ok", "N": N, "L": L,
             "P": L * N * N, "time_median_s": t, "forward_time_s": np.nan}
            for (N, L), t in times.items()]  # fmt: skip
    return pd.DataFrame(rows)


def test_forward_cells_keep_a_dispatch_of_a_tenth_at_most():
    # dispatch = min(t/L) = 8e-6 per layer (at N=2, L=2); kept where L·8e-6 ≤ 0.1·t
    g = _forward_rows({(2, 2): 1.6e-5, (2, 1): 1e-5, (4, 1): 8e-5, (8, 1): 3e-4,
                       (4, 2): 1.5e-4, (16, 2): 1.6e-4})  # fmt: skip
    cells = fits.forward_cells(g)
    assert set(zip(cells.N, cells.L, strict=True)) == {(4, 1), (8, 1), (16, 2)}
    assert list(cells.P) == sorted(cells.P)


def test_forward_times_fall_back_on_the_paired_median_and_keep_one_row_per_size():
    rows = [{"method": m, "kind": "exact", "status": "ok", "N": 4, "L": 1, "P": 20,
             "time_median_s": 1.0, "forward_time_s": f} for m, f in (("a", 1.0), ("b", 3.0),
                                                                      ("c", 8.0))]  # fmt: skip
    rows.append(rows[0] | {"N": 2, "P": 6, "forward_time_s": 0.5})
    own = fits.forward_times(pd.DataFrame(rows))
    assert list(own.N) == [2, 4] and list(own.time_median_s) == [0.5, 3.0]
    failed = _forward_rows({(4, 1): 2.0, (8, 1): 5.0}).assign(status=["ok", "error"])
    twice = pd.concat([failed, failed.assign(time_median_s=9.0)])
    assert list(fits.forward_times(twice).time_median_s) == [2.0]


def test_forward_law_is_the_reference_rows_slope_or_nothing():
    # a tiny cell sets the dispatch (1 µs per layer) and is itself left out
    exact = {(1, 1): 1e-6} | {(N, 1): 1e-3 * N * N for N in (4, 8, 16)}  # t ∝ P: slope 1
    law = fits.forward_law(_forward_rows(exact)).iloc[0]
    assert (law.method, law.family, law.theory) == ("forward", "reference", 1.0)
    assert law.slope == pytest.approx(1.0) and law.cells == 3
    assert list(fits.forward_law(_forward_rows(exact)).columns) == fits.LAW_COLUMNS
    two_P = {(1, 1): 1e-6, (4, 1): 1e-2, (2, 4): 1e-2, (8, 1): 4e-2}  # P = 16, 16, 64
    assert fits.forward_law(_forward_rows(two_P)).iloc[0].slope == pytest.approx(1.0)
    two = {(1, 1): 1e-6} | {(N, 1): 1e-3 * N * N for N in (4, 8)}
    assert fits.forward_law(_forward_rows(two)).empty
    assert list(fits.forward_law(_forward_rows(two)).columns) == fits.LAW_COLUMNS
    same_P = _forward_rows({(1, 1): 1e-6, (4, 1): 1.0, (4, 2): 2.0, (4, 3): 3.0})
    assert fits.forward_law(same_P.assign(P=[1, 48, 48, 48])).empty


def test_nl_fit_by_hand_and_without_depths():
    # log N = [0, 1, 2], log t = [0, 2, 1]: the hand line above, a = 1/2, se(a) = √(3/4)
    N, L, t = np.exp(HAND_X), np.ones(3), np.exp(HAND_Y)
    a, a_se, b, b_se = fits.fit(N, L, t)
    assert (a, a_se) == (pytest.approx(0.5), pytest.approx(math.sqrt(0.75)))
    assert math.isnan(b) and math.isnan(b_se)
    # three cells, three coefficients: exact, no spare degree of freedom
    a, a_se, b, b_se = fits.fit(np.array([2.0, 4.0, 2.0]), np.array([1.0, 1.0, 2.0]),
                                np.array([4.0, 16.0, 8.0]))  # fmt: skip
    assert (a, b) == (pytest.approx(2.0), pytest.approx(1.0))
    assert math.isnan(a_se) and math.isnan(b_se)


def test_fit_all_needs_three_cells_and_two_widths_and_fits_the_cost_model():
    rows = [("m", N, L, L * N * N, 1e-3, 1e-4 * N**3 * L**2, 10.0)
            for N in (4, 8) for L in (1, 2)]  # fmt: skip
    rows += [("b-one-width", 4, L, 16 * L, 1e-3, 1.0, 10.0) for L in (1, 2, 3)]
    rows += [("a3", N, 1, N * N, 1e-3, 1e-3 * N * N, 10.0) for N in (4, 8, 16)]  # 3 cells
    rows += [("a2", N, 1, N * N, 1e-3, 1.0, 10.0) for N in (4, 8)]
    cells = _cells(rows)
    cells["loss_evals"] = cells.P  # cost model P·P = L²·N⁴
    nl = fits.fit_all(cells)
    assert list(nl.method) == ["a3", "m"]  # by name; too few cells or one width: no row
    r = nl.iloc[1]
    assert (r.a, r.b) == (pytest.approx(3.0), pytest.approx(2.0))
    assert (r.a_theory, r.b_theory) == (pytest.approx(4.0), pytest.approx(2.0))
    assert (r.cells, r.N_min, r.N_max, r.L_min, r.L_max) == (4, 4, 8, 1, 2)
    assert nl.iloc[0].a == pytest.approx(2.0) and math.isnan(nl.iloc[0].b)
    assert list(fits.fit_all(cells[cells.method == "a2"]).columns) == fits.NL_COLUMNS  # no row


def test_growth_uses_only_positive_rows_and_two_distinct_x():
    frame = pd.DataFrame({"P": [1, 10, 100, 1000, 0, 5], "y": [0.2, 2, 20, 0, 5, -1]})
    line = fits.growth(frame, "P", "y")  # the first three rows: y = P/5, slope 1
    assert line.n == 3 and line.slope == pytest.approx(1.0)
    assert fits.growth(pd.DataFrame({"P": [5, 5, 5], "y": [1, 2, 3]}), "P", "y") is None
    assert fits.growth(pd.DataFrame({"P": [1, 1, 10], "y": [1, 2, 10]}), "P", "y").n == 3
