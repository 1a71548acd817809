"""Scaling exponents: time ∝ N^a · L^b per method, by least squares on log–log axes.

Only the asymptotic range is used: cells whose median time is at least ``MIN_TIME_S``.
Below that, a gradient call's fixed cost (Python dispatch, small-array overheads, tens of
microseconds here) is a sizeable part of the time and flattens the slope. The theory
exponents are fitted the same way, on the same cells, to the operation count the method's
cost model predicts, ``P × loss_evals`` (a forward pass costs ∝ P ≈ L·N² operations).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_TIME_S = 1e-3
FIT_COLUMNS = [
    "method",
    "kind",
    "a",
    "a_se",
    "b",
    "b_se",
    "a_theory",
    "b_theory",
    "cells",
    "min_time_s",
    "N_min",
    "N_max",
    "L_min",
    "L_max",
]


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


def fit_all(gradients: pd.DataFrame) -> pd.DataFrame:
    """One row per method with enough asymptotic cells (at least 3, two widths)."""
    ok = gradients[(gradients.status == "ok") & (gradients.time_median_s >= MIN_TIME_S)]
    rows = []
    for method, cells in ok.groupby("method", sort=True):
        if len(cells) < 3 or cells.N.nunique() < 2:
            continue
        N, L = cells.N.to_numpy(float), cells.L.to_numpy(float)
        a, a_se, b, b_se = fit(N, L, cells.time_median_s.to_numpy())
        a_th, _, b_th, _ = fit(N, L, (cells.P * cells.loss_evals).to_numpy(float))
        rows.append(
            {
                "method": method,
                "kind": cells.kind.iloc[0],
                "a": a,
                "a_se": a_se,
                "b": b,
                "b_se": b_se,
                "a_theory": a_th,
                "b_theory": b_th,
                "cells": len(cells),
                "min_time_s": MIN_TIME_S,
                "N_min": N.min(),
                "N_max": N.max(),
                "L_min": L.min(),
                "L_max": L.max(),
            }
        )
    return pd.DataFrame(rows, columns=FIT_COLUMNS)
