"""Scaling laws fitted on the measured cells, each with its standard error.

The headline law of a method is the slope s of

    log(gradient time ÷ forward time) = c + s · log P

fitted by least squares on the paired ``ratio_to_forward`` of its cells. Theory (report.toml)
says s = 0 for reverse mode and the stochastic estimators (a constant number of forward
passes) and s = 1 for the per-weight methods (P forward passes, or P·(L+1)/2L for methods
that recompute only the layers after the perturbed weight).

**Which cells.** Small cells measure per-call overhead, not the method's work: below about
50 µs this machine's forward pass is Python dispatch, flat in P, and dividing by it bends
every slope. A cell enters a law only when its forward pass takes at least
``MIN_FORWARD_S`` and the method's gradient at least ``MIN_TIME_S``; the cells used are
listed in ``fits.csv`` (``cells_used``).

The forward-time law ``log t_fwd = c + s · log P`` is fitted on the shared forward pass
where its work is at least 90 % of its time: each layer costs a fixed dispatch, estimated
as the run's smallest forward time per layer, o = min(t_fwd / L), and a cell enters when
t_fwd ≥ L·o / ``DISPATCH_SHARE``. With the cost law it predicts a gradient's time at sizes
never measured (predict.py). The N^a·L^b fits of the time itself are kept as a
secondary table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradbench import analysis

MIN_FORWARD_S = 50e-6  # the forward pass's work dominates its dispatch from here on
MIN_TIME_S = 1e-3  # the method's work dominates its per-call overhead from here on
DISPATCH_SHARE = 0.1  # forward law: per-layer dispatch at most this share of the time


def t_quantile(dof: int, p: float = 0.975) -> float:
    """Student t quantile (two-sided 95 % by default): tabulated up to 5 degrees of freedom,
    else the Cornish–Fisher expansion around the normal quantile (error < 3e-3 from 6 on).
    Written out so that fitting never imports scipy.stats (which imports scipy.optimize)."""
    if p != 0.975:
        raise ValueError("only the 95 % two-sided quantile is tabulated")
    if dof <= 0:
        return math.inf
    if dof <= 5:
        return (12.7062, 4.3027, 3.1824, 2.7764, 2.5706)[dof - 1]
    z, v = 1.959964, float(dof)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


@dataclass(frozen=True)
class Line:
    """``y = intercept + slope · x`` by least squares, with the coefficients' covariance
    ``cov`` (2×2, intercept first) and the residual standard deviation ``sigma``."""

    intercept: float
    slope: float
    cov: np.ndarray
    sigma: float
    n: int
    x_min: float
    x_max: float

    @property
    def slope_se(self) -> float:
        return float(math.sqrt(self.cov[1, 1]))

    @property
    def dof(self) -> int:
        return self.n - 2

    def at(self, x: float) -> tuple[float, float]:
        """(ŷ, standard error of a new observation at x): var = [1 x] Σ [1 x]ᵀ + σ², which
        grows with the distance of x from the fitted range's centre."""
        v = np.array([1.0, x])
        return self.intercept + self.slope * x, float(math.sqrt(v @ self.cov @ v + self.sigma**2))


def fit_line(x: np.ndarray, y: np.ndarray) -> Line:
    """Ordinary least squares of y on x; NaN covariance without spare degrees of freedom."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    X = np.column_stack([np.ones_like(x), x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - 2
    sigma = math.sqrt(float(((y - X @ beta) ** 2).sum()) / dof) if dof > 0 else math.nan
    cov = sigma**2 * np.linalg.pinv(X.T @ X) if dof > 0 else np.full((2, 2), np.nan)
    return Line(float(beta[0]), float(beta[1]), cov, sigma, len(y), float(x.min()), float(x.max()))


# ---------------------------------------------------------------- cost in forward passes

SLOPE_SLACK = 0.3  # a law agrees with theory when |slope − theory| ≤ max(this, 3·se)


def agrees(slope: float, se: float, theory: float) -> bool | None:
    """Whether a fitted slope agrees with its theory (None: no theory to agree with)."""
    if theory is None or math.isnan(theory):
        return None
    return bool(abs(slope - theory) <= max(SLOPE_SLACK, 3 * (0 if math.isnan(se) else se)))


def law_cells(g: pd.DataFrame) -> pd.DataFrame:
    """Measured cells where the work dominates the overhead (the rule in the docstring)."""
    ok = analysis.measured(g)
    return ok[
        (ok.forward_time_s >= MIN_FORWARD_S)
        & (ok.time_median_s >= MIN_TIME_S)
        & (ok.ratio_to_forward > 0)
    ]


LAW_COLUMNS = [
    "method", "family", "slope", "slope_se", "theory", "intercept", "cov_00", "cov_01",
    "cov_11", "sigma", "cells", "P_min", "P_max", "cells_used",
]  # fmt: skip


def law_row(line: Line, cells: pd.DataFrame) -> dict:
    """A fitted line as one row of fits.csv: coefficients, covariance, range, cells used."""
    return {
        "slope": line.slope,
        "slope_se": line.slope_se,
        "intercept": line.intercept,
        "cov_00": line.cov[0, 0],
        "cov_01": line.cov[0, 1],
        "cov_11": line.cov[1, 1],
        "sigma": line.sigma,
        "cells": line.n,
        "P_min": int(cells.P.min()),
        "P_max": int(cells.P.max()),
        "cells_used": " ".join(
            f"{int(N)}x{int(L)}" if "N" in cells else f"P={int(N)}"
            for N, L in zip(cells.get("N", cells.P), cells.get("L", cells.P), strict=True)
        ),
    }


def line_of(row: pd.Series) -> Line:
    """The Line a row of fits.csv describes (x = log P)."""
    cov = np.array([[row.cov_00, row.cov_01], [row.cov_01, row.cov_11]], float)
    return Line(
        row.intercept,
        row.slope,
        cov,
        row.sigma,
        int(row.cells),
        math.log(row.P_min),
        math.log(row.P_max),
    )


def cost_laws(g: pd.DataFrame, pres: analysis.Presentation) -> pd.DataFrame:
    """Per method with at least 3 cells in its law range: the slope of log(ratio_to_forward)
    against log P with its standard error, the family's theory, and the cells used."""
    rows = []
    for method, cells in law_cells(g).sort_values("P").groupby("method", sort=True):
        if len(cells) < 3 or cells.P.nunique() < 2:
            continue
        kind = cells.kind.iloc[0]
        line = fit_line(np.log(cells.P), np.log(cells.ratio_to_forward))
        rows.append(
            {
                "method": method,
                "family": pres.family_of(method, kind).name,
                "theory": analysis.theory_slope(method, kind, pres),
            }
            | law_row(line, cells)
        )
    return pd.DataFrame(rows, columns=LAW_COLUMNS)


def forward_times(g: pd.DataFrame) -> pd.DataFrame:
    """One forward time per (N, L): the shared forward pass's own cell where recorded,
    else the median forward time paired inside the method cells."""
    own = g[(g.method == analysis.FORWARD) & (g.status == "ok")][["N", "L", "P", "time_median_s"]]
    if own.empty:
        paired = g[g.forward_time_s.notna()].groupby(["N", "L", "P"]).forward_time_s.median()
        own = paired.rename("time_median_s").reset_index()
    return own.drop_duplicates(["N", "L"]).sort_values("P")


def forward_cells(g: pd.DataFrame) -> pd.DataFrame:
    """The forward times whose per-layer dispatch is at most ``DISPATCH_SHARE`` of them."""
    own = forward_times(g)
    dispatch = (own.time_median_s / own.L).min()
    return own[own.L * dispatch <= DISPATCH_SHARE * own.time_median_s]


def forward_law(g: pd.DataFrame) -> pd.DataFrame:
    """The forward pass's time against P, ``log t = c + s · log P``, as one fits.csv row
    (empty with fewer than 3 cells where the work dominates)."""
    cells = forward_cells(g)
    if len(cells) < 3 or cells.P.nunique() < 2:
        return pd.DataFrame(columns=LAW_COLUMNS)
    line = fit_line(np.log(cells.P), np.log(cells.time_median_s))
    row = {"method": analysis.FORWARD, "family": analysis.REFERENCE_KIND, "theory": 1.0}
    return pd.DataFrame([row | law_row(line, cells)], columns=LAW_COLUMNS)


# ---------------------------------------------------------------- secondary: N^a · L^b

NL_COLUMNS = [
    "method", "a", "a_se", "b", "b_se", "a_theory", "b_theory", "cells",
    "N_min", "N_max", "L_min", "L_max",
]  # fmt: skip


def fit(N: np.ndarray, L: np.ndarray, t: np.ndarray) -> tuple[float, float, float, float]:
    """(a, se(a), b, se(b)) for ``log t = log c + a·log N + b·log L``; b is NaN when L
    does not vary, and standard errors are NaN without spare degrees of freedom."""
    columns = [np.ones(len(N)), np.log(N)] + ([np.log(L)] if len(np.unique(L)) > 1 else [])
    X, y = np.column_stack(columns), np.log(t)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - X.shape[1]
    se = np.full(X.shape[1], np.nan)
    if dof > 0:
        sigma2 = float(((y - X @ beta) ** 2).sum()) / dof
        se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    b, b_se = (beta[2], se[2]) if X.shape[1] == 3 else (np.nan, np.nan)
    return float(beta[1]), float(se[1]), float(b), float(b_se)


def fit_all(g: pd.DataFrame) -> pd.DataFrame:
    """Time ∝ N^a · L^b per method on the law cells (at least 3, two widths), beside the
    exponents of its cost model's operation count P × loss_evals fitted on the same cells."""
    rows = []
    for method, cells in law_cells(g).groupby("method", sort=True):
        if len(cells) < 3 or cells.N.nunique() < 2:
            continue
        N, L = cells.N.to_numpy(float), cells.L.to_numpy(float)
        a, a_se, b, b_se = fit(N, L, cells.time_median_s.to_numpy(float))
        a_th, _, b_th, _ = fit(N, L, (cells.P * cells.loss_evals).to_numpy(float))
        rows.append(
            dict(zip(NL_COLUMNS, [method, a, a_se, b, b_se, a_th, b_th, len(cells)], strict=False))
            | {"N_min": N.min(), "N_max": N.max(), "L_min": L.min(), "L_max": L.max()}
        )
    return pd.DataFrame(rows, columns=NL_COLUMNS)


# ---------------------------------------------------------------- growth of other quantities


def growth(frame: pd.DataFrame, x: str, y: str) -> Line | None:
    """log y against log x over the rows where both are positive (None under 3 points)."""
    rows = frame[(frame[x] > 0) & (frame[y] > 0)]
    if len(rows) < 3 or rows[x].nunique() < 2:
        return None
    return fit_line(np.log(rows[x].astype(float)), np.log(rows[y].astype(float)))


@dataclass(frozen=True)
class Exponent:
    """The exponent s of ``y = a + b·x^s`` and its standard error."""

    value: float
    se: float


EXPONENTS = np.linspace(0.02, 2.0, 100)  # the grid s is searched on (step 0.02)


def growth_exponent(x: np.ndarray, y: np.ndarray) -> Exponent | None:
    """The exponent s of ``y = a + b·x^s``: a fixed part plus one that grows like x^s (a
    log-log slope of y alone would be bent by a). For each s on a grid, a and b solve a
    linear least squares in relative residuals (y − ŷ)/y; s is where its residual sum R is
    least (the grid's best point, refined by the parabola through it and its neighbours),
    with se² = 2σ² / R''(s), σ² = R / (n − 3) (the curvature of the profile). None under 4
    distinct x, or when the least residual lies on the grid's edge."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.unique(x).size < 4:
        return None

    def residual(s: float) -> float:
        A = np.column_stack([np.ones_like(x), x**s]) / y[:, None]
        coef, *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
        return float(((A @ coef - 1) ** 2).sum())

    R = np.array([residual(s) for s in EXPONENTS])
    i = int(np.argmin(R))
    if i in (0, EXPONENTS.size - 1):
        return None
    h = EXPONENTS[1] - EXPONENTS[0]
    curvature = (R[i + 1] - 2 * R[i] + R[i - 1]) / h**2
    sigma2 = R[i] / (x.size - 3)
    if curvature <= 0:
        return Exponent(float(EXPONENTS[i]), math.inf)
    shift = h * (R[i - 1] - R[i + 1]) / (2 * curvature * h**2)
    return Exponent(float(EXPONENTS[i] + shift), math.sqrt(2 * sigma2 / curvature))
