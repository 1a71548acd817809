"""results/REPORT.md: the student's question answered with this machine's numbers.

Everything is read from the CSV files (gradients.csv, training.csv) and the tables derived
from them (fits.csv, training_summary.csv), so anyone can redraw the report from shared
CSVs. Every number in the sections between "The answer" and "Machine and software" is a
value of one of those tables, printed to three significant digits.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pandas as pd

from gradbench import fits, plots, training_analysis, training_plots, training_report
from gradbench.results import (
    GRADIENT_COLUMNS,
    TRAINING_COLUMNS,
    read_table,
    write_atomic,
    write_text_atomic,
)

QUESTION = """\
An MLP with L dense layers of N neurons is one big function of its P = L·(N² + N)
weights. Why do we train it with **backpropagation** rather than differentiating that
function weight by weight, estimating each derivative numerically, or searching for good
weights without any gradient at all? Theory says: reverse mode gives the whole gradient
for a small constant times one forward pass, whatever P is; per-weight methods (finite
differences, forward mode one weight at a time, complex step) need work proportional to P
forward passes, so their time grows like P²; gradient-free search uses no derivative and
degrades as P grows. This report puts this machine's measurements beside that theory."""

CHECKED_END = "## Machine and software"


def fmt(x: float) -> str:
    """Three significant digits, no thousands separators."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def fmt_time(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError  # unreachable


def table(frame: pd.DataFrame) -> str:
    """A Markdown table of strings."""
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def reference_size(g: pd.DataFrame) -> tuple[int, int]:
    """The (N, L) where the most methods were measured, the largest such."""
    ok = g[(g.status == "ok") & (g.kind != "reference")]
    counts = ok.groupby(["N", "L"]).agg(n=("method", "count"), P=("P", "first")).reset_index()
    best = counts.sort_values(["n", "P"]).iloc[-1]
    return int(best.N), int(best.L)


def answer(g: pd.DataFrame, fit: pd.DataFrame) -> str:
    N, L = reference_size(g)
    at = g[(g.N == N) & (g.L == L)].set_index("method")
    ok = g[(g.status == "ok") & (g.kind != "reference")]
    lines = []
    if "backprop" in at.index and at.loc["backprop", "status"] == "ok":
        b = at.loc["backprop"]
        slow = at[(at.status == "ok") & (at.kind == "approximate")]
        worst = slow.sort_values("ratio_to_backprop").iloc[-1] if len(slow) else None
        text = (
            f"At N = {N}, L = {L} (P = {int(b.P)}) backprop takes {fmt_time(b.time_median_s)} "
            f"per gradient, {fmt(b.ratio_to_forward)}× the forward pass"
        )
        if worst is not None:
            text += (
                f"; {worst.name} takes {fmt_time(worst.time_median_s)}, "
                f"{fmt(worst.ratio_to_backprop)}× longer than backprop"
            )
        lines.append(text + ".")
        if worst is not None:
            mine = ok[ok.method == worst.name].sort_values("P")
            small, large = mine.iloc[0], mine.iloc[-1]
            lines.append(
                f"The gap grows with P: {worst.name} is {fmt(small.ratio_to_backprop)}× backprop's "
                f"time at P = {int(small.P)} and {fmt(large.ratio_to_backprop)}× at "
                f"P = {int(large.P)}, the largest size it finished within the budget."
            )
    for method in ("backprop", "fd-central"):
        row = fit[fit.method == method]
        if len(row):
            r = row.iloc[0]
            lines.append(
                f"Fitted on the cells of at least {fmt_time(r.min_time_s)}, {method}'s time grows "
                f"as N^{fmt(r.a)}·L^{fmt(r.b)}; its cost model predicts "
                f"N^{fmt(r.a_theory)}·L^{fmt(r.b_theory)}."
            )
    return " ".join(lines)


def method_table(g: pd.DataFrame, fit: pd.DataFrame) -> str:
    """The question's table, one row per method, at the reference size."""
    N, L = reference_size(g)
    at = g[(g.N == N) & (g.L == L) & (g.kind != "reference")].set_index("method")
    fit = fit.set_index("method")
    ok = g[g.status == "ok"]
    rows = []
    for method, r in at.iterrows():
        f = fit.loc[method] if method in fit.index else None
        largest = ok[ok.method == method].P.max()
        rows.append(
            {
                "method": method,
                "kind": r.kind,
                "forward passes per gradient (cost model)": fmt(r.loss_evals),
                f"time per gradient at N={N}, L={L}": fmt_time(r.time_median_s)
                if r.status == "ok"
                else r.status,
                "÷ forward pass": fmt(r.ratio_to_forward),
                "÷ backprop": fmt(r.ratio_to_backprop),
                "exponent of N (theory)": f"{fmt(f.a)} ({fmt(f.a_theory)})"
                if f is not None
                else "–",
                "exponent of L (theory)": f"{fmt(f.b)} ({fmt(f.b_theory)})"
                if f is not None
                else "–",
                "largest P measured": fmt(largest) if not math.isnan(largest) else "–",
            }
        )
    return table(pd.DataFrame(rows))


def sizes_table(g: pd.DataFrame, value: str, fmt_value) -> str:
    """Methods × a few sizes spread over the grid; unmeasured cells say why."""
    sizes = g[g.method == "backprop"].sort_values("P")[["N", "L", "P"]].drop_duplicates()
    if len(sizes) > 5:
        sizes = sizes.iloc[[round(i) for i in pd.Series(range(5)) * (len(sizes) - 1) / 4]]
    rows = []
    for method, cells in g[g.kind != "reference"].groupby("method"):
        row = {"method": method}
        for s in sizes.itertuples():
            cell = cells[(cells.N == s.N) & (cells.L == s.L)]
            label = f"N={s.N} L={s.L} P={s.P}"
            if not len(cell):
                row[label] = "–"
            elif cell.status.iloc[0] == "ok":
                row[label] = fmt_value(cell[value].iloc[0])
            elif str(cell.reason.iloc[0]).startswith("unavailable"):
                row[label] = "unavailable"
            elif cell.status.iloc[0] == "skipped" and not math.isnan(cell.projected_s.iloc[0]):
                row[label] = f"skipped (≈{fmt_time(cell.projected_s.iloc[0])})"
            else:
                row[label] = cell.status.iloc[0]
        rows.append(row)
    return table(pd.DataFrame(rows))


def fits_table(fit: pd.DataFrame) -> str:
    rows = [
        {
            "method": r.method,
            "a (N)": f"{fmt(r.a)} ± {fmt(r.a_se)}",
            "theory a": fmt(r.a_theory),
            "b (L)": f"{fmt(r.b)} ± {fmt(r.b_se)}",
            "theory b": fmt(r.b_theory),
            "cells used": int(r.cells),
            "N range": f"{int(r.N_min)}–{int(r.N_max)}",
            "L range": f"{int(r.L_min)}–{int(r.L_max)}",
        }
        for r in fit.itertuples()
    ]
    return table(pd.DataFrame(rows)) if rows else "_Too few cells above the overhead floor to fit._"


def correctness_table(g: pd.DataFrame) -> str:
    ok = g[(g.status == "ok") & (g.kind != "reference") & (g.method != "backprop")]
    rows = []
    for method, cells in ok.groupby("method"):
        small, large = cells.sort_values("P").iloc[[0, -1]].itertuples()
        stochastic = cells.kind.iloc[0] == "stochastic"
        rows.append(
            {
                "method": method,
                "kind": cells.kind.iloc[0],
                "worst ρ over all cells": fmt(cells.grad_error.max()),
                "ρ at the smallest P": fmt(small.grad_error),
                "cosine to backprop: smallest P → largest P": (
                    f"{fmt(small.cosine)} (P={small.P}) → {fmt(large.cosine)} (P={large.P})"
                    if stochastic
                    else "–"
                ),
            }
        )
    return table(pd.DataFrame(rows))


# The targets of "as fast as the best", each: a description and a test on one size's rows.
TARGETS = {
    "backprop ≤ 1.0× the faster of torch-backprop and jax-grad": lambda r: (
        min(
            r.get("torch-backprop", {}).get("ratio_to_backprop", math.inf),
            r.get("jax-grad", {}).get("ratio_to_backprop", math.inf),
        )
        >= 1.0
    ),
    "backprop ≤ 1.25× the bare-matmul floor (N ≥ 128)": lambda r: (
        r["backprop"]["N"] < 128 or r["backprop"]["ratio_to_floor"] <= 1.25
    ),
    "forward-mode ≤ 1.0× jax-forward": lambda r: (
        r["forward-mode"]["time_median_s"] <= r["jax-forward"]["time_median_s"]
    ),
    "fd-forward ≥ 20× faster than scipy-fprime (P ≤ 3000)": lambda r: (
        r["backprop"]["P"] > 3000
        or r["scipy-fprime"]["time_median_s"] >= 20 * r["fd-forward"]["time_median_s"]
    ),
}


def references_section(g: pd.DataFrame) -> str:
    """gradbench's methods against PyTorch, JAX and the bare-matmul floor, where measured."""
    others = ["torch-backprop", "jax-grad", "torch-forward", "jax-forward"]
    ok = g[g.status == "ok"]
    if not ok.method.isin(others).any():
        return "_Not measured: install `.[torch,jax]` and run `gradbench run --profile reference`._"
    rows, checks = [], []
    for (N, L), cells in ok.groupby(["N", "L"]):
        by = {m: r.to_dict() for m, r in cells.set_index("method").iterrows()}
        if "backprop" not in by or not any(m in by for m in others):
            continue
        by = {m: r | {"N": N, "L": L} for m, r in by.items()}

        def t(m, by=by):
            return fmt_time(by[m]["time_median_s"]) if m in by else "–"

        def ratio(m, by=by):
            return fmt(by[m]["ratio_to_backprop"]) if m in by else "–"

        rows.append(
            {
                "N": N,
                "L": L,
                "P": by["backprop"]["P"],
                "backprop": t("backprop"),
                "÷ floor": fmt(by["backprop"]["ratio_to_floor"]),
                "torch-backprop ÷ backprop": ratio("torch-backprop"),
                "jax-grad ÷ backprop": ratio("jax-grad"),
                "forward-mode": t("forward-mode"),
                "jax-forward": t("jax-forward"),
                "torch-forward": t("torch-forward"),
                "fd-forward": t("fd-forward"),
                "scipy-fprime": t("scipy-fprime"),
            }
        )
        for name, test in TARGETS.items():
            with contextlib.suppress(KeyError):  # a method it needs was not measured here
                checks.append((name, N, L, test(by)))
    verdict = [
        {
            "target": name,
            "met": "yes, at every size" if not missed else "**no**",
            "missed at": ", ".join(missed) or "–",
        }
        for name in TARGETS
        if (sizes := [c for c in checks if c[0] == name])
        for missed in [[f"N={N} L={L}" for _, N, L, met in sizes if not met]]
    ]
    return table(pd.DataFrame(rows)) + "\n\n" + (table(pd.DataFrame(verdict)) if verdict else "")


def not_measured(g: pd.DataFrame) -> str:
    bad = g[g.status != "ok"]
    if not len(bad):
        return "Every cell of the grid was measured."
    shown = bad[["method", "N", "L", "P", "status", "reason", "projected_s"]].copy()
    shown["projected_s"] = shown.projected_s.map(fmt_time)
    shown = shown.rename(columns={"projected_s": "projected time"})
    return (
        "<details><summary>Every cell that was skipped, failed or timed out, with its "
        "reason (click to open)</summary>\n\n" + table(shown) + "\n\n</details>"
    )


def machine_section(g: pd.DataFrame, out: Path) -> str:
    env_file = out / "environment.json"
    lines = []
    if env_file.exists():
        try:
            env = json.loads(env_file.read_text())
            keys = (
                "machine",
                "cores",
                "platform",
                "python",
                "numpy",
                "scipy",
                "blas",
                "blas_threads",
                "malloc_keeps_freed",
                "git_commit",
                "run_id",
            )
            lines += [f"- {k}: {env.get(k)}" for k in keys if k in env]
        except json.JSONDecodeError:
            lines.append("- environment.json is unreadable; from the CSV instead:")
    runs = g[["run_id", "machine", "numpy", "blas_threads"]].drop_duplicates()
    lines.append(f"- runs in gradients.csv: {', '.join(map(str, runs.run_id.unique()))}")
    lines.append(
        f"- machines: {'; '.join(map(str, runs.machine.unique()))}; BLAS threads: "
        f"{', '.join(map(str, runs.blas_threads.unique()))}"
    )
    return "\n".join(lines)


def build(out: Path) -> Path:
    """Read the CSVs under ``out``, write fits.csv, training_summary.csv, the plots and
    REPORT.md. Returns the report's path."""
    g = read_table(out / "gradients.csv", GRADIENT_COLUMNS)
    if not (g.status == "ok").any():
        from gradbench.errors import GradbenchError

        raise GradbenchError(f"{out / 'gradients.csv'} has no measured cell to report")
    fit = fits.fit_all(g)
    write_atomic(fit, out / "fits.csv")
    t = read_table(out / "training.csv", TRAINING_COLUMNS, missing_ok=True)
    summary = training_analysis.summarize(t) if len(t) else None
    figures = plots.draw_all(g, out / "plots")
    if summary is not None:
        write_atomic(summary, out / "training_summary.csv")
        figures += training_plots.draw_all(t, summary, out / "plots")
    budget = g.budget_s.max()
    parts = [
        "# Why backpropagation? — gradbench report",
        "",
        QUESTION,
        "",
        "## The answer, measured on this machine",
        "",
        answer(g, fit),
        "",
        method_table(g, fit),
        "",
        f"Cells projected to take more than {fmt_time(budget)} per gradient were not run "
        "(listed at the end).",
        "",
        "## Time per gradient",
        "",
        sizes_table(g, "time_median_s", fmt_time),
        "",
        "## Gradient time ÷ forward-pass time",
        "",
        "The same forward pass (the shared reference at each size) is every method's denominator.",
        "",
        sizes_table(g, "ratio_to_forward", fmt),
        "",
        "## Scaling exponents: time ∝ N^a · L^b",
        "",
        fits_table(fit),
        "",
        "## Correctness against backprop",
        "",
        "ρ = |g − g*| / max(1, |g| + |g*|), elementwise, against backprop's gradient.",
        "",
        correctness_table(g),
        "",
        "## As fast as the best: against PyTorch, JAX and the matmul floor",
        "",
        "Ratios above 1 in the ÷ backprop columns mean backprop is faster; "
        "÷ floor is backprop over its bare matrix products alone.",
        "",
        references_section(g),
        "",
        "## Training with and without gradients, at equal evaluation budgets",
        "",
        training_report.section(t, summary),
        "",
        "## Figures",
        "",
        *[f"![{p.stem}](plots/{p.name})\n" for p in figures],
        "## Cells not measured",
        "",
        not_measured(g),
        "",
        CHECKED_END,
        "",
        machine_section(g, out),
        "",
    ]
    report = out / "REPORT.md"
    write_text_atomic("\n".join(parts), report)
    return report
