"""What one gradient would cost at sizes nobody can time, from this run's fitted laws.

For a method m at P weights:

    log t̂_m(P) = log t̂_fwd(P) + log r̂_m(P)

the forward-time law (fits.forward_law) plus the method's cost law in forward passes
(fits.cost_laws), each fitted on its own cells. The 95 % prediction interval is
exp(log t̂ ± t_q · √(v_fwd + v_m)); each law's variance v holds two parts:

* **the fit's own error**, [1 x] Σ [1 x]ᵀ + σ², from its covariance Σ and residual
  scatter σ (x = log P): what a straight line through these cells is unsure of;
* **model discrepancy**, (s − s_theory)² · d², where d is how far log P lies outside the
  fitted range (0 inside it) and s_theory the law's theory slope (1 for the forward pass,
  the family's for a cost law). The laws are not straight lines: per-call overhead bends
  them at small P and BLAS regimes at large P (fd-central's law came out at slope 1.15
  where theory says 1). Beyond the measured cells nothing tells whether the fitted slope
  goes on or the slope returns to theory, so their gap, grown with the distance
  extrapolated, is counted as one more standard deviation. It is measured, not tuned, and
  it is zero for a law on its theory slope and for a law without theory (the crossover
  laws of gradient-free optimizers).

The two laws are fitted on different cells and quantities, and a discrepancy is taken as
independent of its fit's error, so all the variances add; t_q is Student's quantile at the
smaller of the laws' degrees of freedom.

The backtest (``backtest``) fits on the cells below a P cutoff and predicts the measured
cells above it; the report quotes the share inside their interval and the median width
hi/lo, so that coverage is never bought with intervals too wide to use.

Honesty rules (enforced here, stated in the README):

* a law predicts only if fitted on at least ``MIN_CELLS`` cells spanning P by a factor of
  at least ``MIN_P_RANGE``;
* a method whose law fails its own check — a slope further than ``max(0.3, 3·se)`` from
  its family's theory (fits.agrees) — gets no prediction, only the reason;
* every prediction carries its interval and the largest P measured for that method;
* predicted and measured values never share a column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradbench import analysis, fits

MIN_CELLS = 4
MIN_P_RANGE = 10.0

# Sizes a reader knows. The seed's MLP shape at N = 1024, L = 8; the others are other
# architectures, stated by their parameter count P only (the law is this MLP's at that P).
NAMED_SIZES = (
    ("MLP of this benchmark, N=1024, L=8", {"N": 1024, "L": 8}),
    ("LeNet-5 (P only)", {"P": 61_706}),
    ("ResNet-50 (P only)", {"P": 25_557_032}),
    ("BERT-base (P only)", {"P": 110_000_000}),
    ("GPT-2 XL (P only)", {"P": 1_558_000_000}),
)


def law_problem(row: pd.Series) -> str | None:
    """Why this fitted law may not predict (None: it may)."""
    if row.cells < MIN_CELLS:
        return f"its law has {int(row.cells)} cells (needs {MIN_CELLS})"
    if row.P_max < MIN_P_RANGE * row.P_min:
        return (
            f"its law spans P = {int(row.P_min)}…{int(row.P_max)}, "
            f"less than a factor {MIN_P_RANGE:g}"
        )
    if fits.agrees(row.slope, row.slope_se, row.theory) is False:
        return (
            f"its slope {row.slope:.2f} ± {row.slope_se:.2f} disagrees with theory {row.theory:g}"
        )
    return None


@dataclass(frozen=True)
class Estimate:
    """A predicted value and its 95 % interval."""

    value: float
    lo: float
    hi: float


def spread(line: fits.Line, theory: float, x: float) -> tuple[float, float]:
    """(ŷ, standard error) of a law at x: the fit's own error and, outside the fitted
    range, the model discrepancy (slope − theory) · distance (see the module's docstring)."""
    mean, se = line.at(x)
    beyond = max(0.0, x - line.x_max, line.x_min - x)
    gap = 0.0 if math.isnan(theory) else (line.slope - theory) * beyond
    return mean, math.hypot(se, gap)


def combine(laws: list[tuple[fits.Line, float]], x: float) -> Estimate:
    """exp of the sum of the laws' predictions at x, with the summed variances; each law
    is a (line, theory slope) pair (theory NaN: none)."""
    means, ses = zip(*(spread(line, theory, x) for line, theory in laws), strict=True)
    mu, se = sum(means), math.sqrt(sum(s * s for s in ses))
    q = fits.t_quantile(min(line.dof for line, _ in laws))
    return Estimate(math.exp(mu), math.exp(mu - q * se), math.exp(mu + q * se))


def law_of(row: pd.Series) -> tuple[fits.Line, float]:
    """A fits.csv row as the (line, theory slope) pair ``combine`` takes."""
    return fits.line_of(row), float(row.theory)


def size_of(spec: dict, bias: bool) -> tuple[int, int | None, int | None]:
    """(P, N, L) of a size given as P, or as N and L (P = L·(N² + N) with bias, L·N² without)."""
    if "P" in spec:
        return int(spec["P"]), None, None
    N, L = int(spec["N"]), int(spec["L"])
    return L * (N * N + (N if bias else 0)), N, L


@dataclass(frozen=True)
class Laws:
    """The fitted laws of one run: forward time, cost per method, memory per method."""

    forward: pd.DataFrame
    cost: pd.DataFrame
    memory: pd.DataFrame
    largest: dict[str, int]
    families: dict[str, str]
    law_cells: dict[str, int]
    bias: bool
    B: int


def laws_of(g: pd.DataFrame, pres: analysis.Presentation) -> Laws:
    """Every law predict uses, from the rows of one machine and configuration."""
    ok = analysis.measured(g)
    largest = ok.groupby("method").P.max().astype(int).to_dict()
    bias = (
        str(g.bias.dropna().iloc[0]).lower() not in ("false", "0") if g.bias.notna().any() else True
    )
    B = int(g.B.dropna().iloc[0]) if g.B.notna().any() else 0
    families = {m: pres.family_of(m, k).name for m, k in zip(ok.method, ok.kind, strict=True)}
    counts = fits.law_cells(g).method.value_counts().to_dict()
    return Laws(
        fits.forward_law(g),
        fits.cost_laws(g, pres),
        memory_laws(g, pres),
        largest,
        families,
        counts,
        bias,
        B,
    )


def predict_times(laws: Laws, P: int, *, forward: bool = True) -> pd.DataFrame:
    """One row per measured method: predicted seconds and interval, or the reason there
    is none; the largest measured P beside it. With ``forward=False`` the cost law alone:
    the prediction is in forward passes, not seconds (the backtest's)."""
    forward_problem = None
    if forward:
        forward_problem = (
            "no forward-time law" if laws.forward.empty else law_problem(laws.forward.iloc[0])
        )
    cost = laws.cost.set_index("method")
    rows = []
    for method in sorted(laws.largest):
        row = cost.loc[method] if method in cost.index else None
        why = forward_problem and f"the forward pass: {forward_problem}"
        if not why and row is None:
            why = f"its law has {laws.law_cells.get(method, 0)} cells (needs {MIN_CELLS})"
        why = why or law_problem(row)
        est = None
        if not why:
            fwd = [law_of(laws.forward.iloc[0])] if forward else []
            est = combine([*fwd, law_of(row)], math.log(P))
        rows.append(
            {
                "method": method,
                "family": laws.families[method],
                "P": P,
                "predicted_s": est.value if est else math.nan,
                "lo_s": est.lo if est else math.nan,
                "hi_s": est.hi if est else math.nan,
                "largest_measured_P": laws.largest[method],
                "no_prediction": why or "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "method",
            "family",
            "P",
            "predicted_s",
            "lo_s",
            "hi_s",
            "largest_measured_P",
            "no_prediction",
        ],
    )


# ---------------------------------------------------------------- memory


MEMORY_COLUMNS = ["method", "model", "scale", "scale_se", "sigma", "cells"]


def memory_laws(g: pd.DataFrame, pres: analysis.Presentation) -> pd.DataFrame:
    """Per method with a memory model and at least ``MIN_CELLS`` measured peaks: the
    factor c in peak_rss_bytes = c · 8 · model(N, L, B, P), fitted as the mean of
    log(measured ÷ model) with its standard error."""
    ok = analysis.measured(g)
    ok = ok[ok.peak_rss_bytes > 0]
    rows = []
    for method, cells in ok.groupby("method"):
        model = pres.memory_model(method, cells.kind.iloc[0])
        if model is None or len(cells) < MIN_CELLS:
            continue
        theory = 8 * analysis.memory_theory(model, cells.N, cells.L, cells.B, cells.P)
        logs = np.log(cells.peak_rss_bytes / theory)
        sd = float(logs.std(ddof=1))
        rows.append(
            {
                "method": method,
                "model": model,
                "scale": float(np.exp(logs.mean())),
                "scale_se": sd / math.sqrt(len(logs)),
                "sigma": sd,
                "cells": len(logs),
            }
        )
    return pd.DataFrame(rows, columns=MEMORY_COLUMNS)


def predict_memory(laws: Laws, N: int, L: int) -> dict[str, Estimate]:
    """Method → predicted bytes of one gradient at (N, L) and the run's B, with interval."""
    out = {}
    for row in laws.memory.itertuples(index=False):
        P = size_of({"N": N, "L": L}, laws.bias)[0]
        base = 8 * analysis.memory_theory(row.model, N, L, laws.B, P)
        se = math.sqrt(row.scale_se**2 + row.sigma**2)
        q = fits.t_quantile(int(row.cells) - 1)
        mid = math.log(row.scale * base)
        out[row.method] = Estimate(math.exp(mid), math.exp(mid - q * se), math.exp(mid + q * se))
    return out


# ---------------------------------------------------------------- training


def crossover_laws(summary: pd.DataFrame | None) -> pd.DataFrame:
    """Per gradient-free optimizer: log(evaluations to target) against log P over the sizes
    where it reached the target, as fits.csv rows (empty when the summary has no
    ``evals_to_target`` column). The same honesty rules apply (``law_problem``)."""
    if summary is None or "evals_to_target" not in summary:
        return pd.DataFrame(columns=fits.LAW_COLUMNS)
    free = summary[summary.gradient_method.fillna("") == ""]
    free = free[(free.evals_to_target > 0) & (free.reached >= 0.5)]
    rows = []
    for optimizer, cells in free.groupby("optimizer"):
        line = fits.growth(cells, "P", "evals_to_target")
        if line is not None:
            row = {"method": optimizer, "family": "gradient-free", "theory": math.nan}
            rows.append(row | fits.law_row(line, cells[["P"]]))
    return pd.DataFrame(rows, columns=fits.LAW_COLUMNS)


def predict_evals(laws: pd.DataFrame, P: int) -> pd.DataFrame:
    """Predicted evaluations to the target at P per optimizer with an accepted law."""
    rows = []
    for row in laws.itertuples(index=False):
        row = pd.Series(row._asdict())
        if law_problem(row):
            continue
        est = combine([law_of(row)], math.log(P))
        rows.append(
            {
                "optimizer": row.method,
                "P": P,
                "evals": est.value,
                "lo": est.lo,
                "hi": est.hi,
                "largest_measured_P": int(row.P_max),
            }
        )
    return pd.DataFrame(rows, columns=["optimizer", "P", "evals", "lo", "hi", "largest_measured_P"])


# ---------------------------------------------------------------- backtest


def backtest(
    g: pd.DataFrame, pres: analysis.Presentation, cutoff_P: float, *, forward_below: bool = True
) -> pd.DataFrame:
    """Fit the laws on the cells with P < cutoff, predict each measured cell at or above
    it; one row per held-out cell with the interval and whether the measurement is inside.

    Only cells a cost law would admit are held out (fits.law_cells: the method's work
    dominates its overhead), since a law claims nothing about the others. With
    ``forward_below=False`` the forward pass is not held out (it is timed at every size):
    a cell's prediction is its own measured forward time — the one its ratio divides by —
    times its cost law's extrapolation, so that the cost laws alone are tested. The
    forward-time law is not used there: it is fitted where the forward pass's work
    dominates, above most held-out cells, and would be tested outside its own range."""
    laws = laws_of(g[g.P < cutoff_P], pres)
    held = fits.law_cells(g)[lambda d: d.P >= cutoff_P]
    rows = []
    for P, cells in held.groupby("P"):
        predicted = predict_times(laws, int(P), forward=forward_below).set_index("method")
        for cell in cells.itertuples():
            if cell.method not in predicted.index or predicted.loc[cell.method, "no_prediction"]:
                continue
            p = predicted.loc[cell.method]
            scale = 1.0 if forward_below else cell.forward_time_s
            rows.append(
                {
                    "method": cell.method,
                    "N": cell.N,
                    "L": cell.L,
                    "P": int(P),
                    "measured_s": cell.time_median_s,
                    "predicted_s": p.predicted_s * scale,
                    "lo_s": p.lo_s * scale,
                    "hi_s": p.hi_s * scale,
                    "inside": bool(p.lo_s * scale <= cell.time_median_s <= p.hi_s * scale),
                }
            )
    return pd.DataFrame(
        rows,
        columns=["method", "N", "L", "P", "measured_s", "predicted_s", "lo_s", "hi_s", "inside"],
    )


def backtest_at_median(
    g: pd.DataFrame, pres: analysis.Presentation, share: float = 0.5
) -> tuple[float, pd.DataFrame]:
    """The backtest the report quotes: the cutoff at the median P of all cells a cost law
    admits (the laws see the lower half and predict the upper), cost laws held out.
    ``share`` moves the cutoff to another quantile (0.4: the laws see the lower 40 %)."""
    cutoff = float(fits.law_cells(g).P.quantile(share))
    return cutoff, backtest(g, pres, cutoff, forward_below=False)


def coverage(held: pd.DataFrame) -> tuple[float, float]:
    """(share of held-out cells inside their interval, median width hi/lo of the
    intervals): the two numbers a backtest is judged by, together."""
    if held.empty:
        return math.nan, math.nan
    return float(held.inside.mean()), float((held.hi_s / held.lo_s).median())


# ---------------------------------------------------------------- words


def plain_duration(seconds: float) -> str:
    """A duration in the unit a reader thinks in: "about 3 minutes", "about 40 years"."""
    units = (
        ("years", 365.25 * 86400),
        ("days", 86400),
        ("hours", 3600),
        ("minutes", 60),
        ("seconds", 1),
        ("milliseconds", 1e-3),
        ("microseconds", 1e-6),
    )
    for name, scale in units:
        if seconds >= scale or name == "microseconds":
            value = seconds / scale
            text = f"{value:.2g}" if value < 100 else f"{value:,.0f}"
            text = text if "e" not in text else f"{value:.1e}"
            return f"{text} {name}"
    raise AssertionError  # unreachable


def table_for(g: pd.DataFrame, pres: analysis.Presentation, spec: dict) -> pd.DataFrame:
    """What ``gradbench predict`` prints: per method the predicted time with its interval
    (or why there is none), the largest P measured and, at a given N and L, the memory."""
    laws = laws_of(g, pres)
    P, N, L = size_of(spec, laws.bias)
    times = predict_times(laws, P)
    memory = predict_memory(laws, N, L) if N is not None else {}
    rows = []
    for r in times.itertuples():
        m = memory.get(r.method)
        rows.append(
            {
                "method": r.method,
                "predicted seconds": "–" if r.no_prediction else f"{r.predicted_s:.3g}",
                "95 % interval": "–" if r.no_prediction else f"{r.lo_s:.3g} – {r.hi_s:.3g}",
                "in words": "–" if r.no_prediction else plain_duration(r.predicted_s),
                "largest measured P": r.largest_measured_P,
                "predicted memory (95 %)": f"{m.value:.3g} B ({m.lo:.3g} – {m.hi:.3g})"
                if m
                else "–",
                "no prediction because": r.no_prediction or "–",
            }
        )
    return pd.DataFrame(rows)
