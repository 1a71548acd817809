"""The report's training section, in Markdown, from the training table and its summary.

It leads with the crossover P of each gradient-free optimizer, then the fitted growth of
evaluations to target, held-out accuracy, and the student's layer-wise update.
"""

from __future__ import annotations

import math

import pandas as pd

from gradbench import training_analysis as ta


def _P(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{int(value)}"


def _num(value: float, digits: int = 3) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{digits}g}"


def _interval(mid: float, lo: float, hi: float, digits: int = 2) -> str:
    if not math.isfinite(mid):
        return "—"
    return f"{mid:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def setup(trajectories: pd.DataFrame, summary: pd.DataFrame) -> str:
    """One paragraph: budget, target, seeds, data sizes, learning rates."""
    sizes = summary.drop_duplicates("P").sort_values("P")
    data = ", ".join(
        f"P = {int(r.P)}: {int(r.n_train)}" for r in sizes.itertuples() if math.isfinite(r.n_train)
    )
    rates = summary[summary.optimizer == "gd"].drop_duplicates("P").sort_values("P")
    lr = ", ".join(f"{r.lr:g}" for r in rates.itertuples() if math.isfinite(r.lr))
    return (
        f"Every run starts from the same θ₀ and gets the same budget of "
        f"**{summary.budget_evals.max():g} forward-pass equivalents** (a loss = 1, a gradient "
        f"= its method's cost model), enforced exactly: reruns give identical losses. "
        f"Target: **{ta.TARGET_FRACTION:g} × the initial training loss**. "
        f"{int(summary.seeds.max())} seeds per cell; intervals are 95 % (order statistics "
        f"for medians, Wilson for shares). Training samples (n_train) by size — {data}; "
        f"{int(summary.n_test.max())} held-out samples from the same teacher. Gradient "
        f"descent's learning rate (momentum 0.9) is the best of the profile's grid on a "
        f"tuning seed, by size: {lr or '—'}."
    )


def crossover_lines(summary: pd.DataFrame) -> str:
    """One line per optimizer that stops reaching the target (gradient-free first), one
    per gradient-free optimizer that never stops, and one for the gradient methods that
    reach it at every size."""
    cross = ta.crossovers(summary)
    cross = cross.assign(free=cross.family != "gradient-free").sort_values(["free", "optimizer"])
    lines = []
    for r in cross.itertuples():
        if math.isfinite(r.crossover_P):
            last = (
                f"last reached at P = {_P(r.largest_P_reached)}"
                if math.isfinite(r.largest_P_reached)
                else "never reached"
            )
            kind = "" if r.family == "gradient-free" else f" ({r.family})"
            lines.append(
                f"- **{r.optimizer}**{kind}: crossover at **P = {_P(r.crossover_P)}** ({last})"
            )
        elif r.family == "gradient-free":
            lines.append(
                f"- **{r.optimizer}**: reaches it at every size it ran at "
                f"(up to P = {_P(r.largest_P_reached)})"
            )
    steady = cross[(cross.family != "gradient-free") & cross.crossover_P.isna()]
    if len(steady):
        lines.append(
            f"- {', '.join(steady.optimizer)} reach it at every size tried, up to "
            f"P = {_P(steady.largest_P_reached.max())}"
        )
    return "\n".join(lines)


def slope_lines(summary: pd.DataFrame) -> str:
    fits = ta.slopes(summary)
    fams = fits[fits.group == fits.family]
    parts = [
        f"{r.family} {_num(r.slope, 2)} ± {_num(r.se, 2)} ({int(r.sizes)} cells)"
        for r in fams.itertuples()
    ]
    return (
        "Evaluations to target grow like P^slope, fitted over the sizes where a majority "
        "reached it (theory: about 0 for exact gradients, 1 for zeroth-order search): "
        + ("; ".join(parts) if parts else "too few sizes reached to fit")
        + "."
    )


def heldout_table(summary: pd.DataFrame) -> str:
    s = ta.tidy(summary)
    values = zip(s.test_accuracy, s.test_accuracy_lo, s.test_accuracy_hi, strict=True)
    cells = s.assign(value=[_interval(*v) for v in values])
    table = cells.pivot_table(index="label", columns="P", values="value", aggfunc="first")
    table = table.fillna("").reset_index().rename(columns={"label": "optimizer"})
    table.columns = [c if c == "optimizer" else f"P = {int(c)}" for c in table.columns]
    return _table(table)


def layerwise_paragraph(summary: pd.DataFrame) -> str:
    lw = ta.layerwise(summary)
    if not len(lw):
        return ""
    deep = lw[lw.L > 1]
    shown = deep if len(deep) else lw
    pieces = [
        f"P = {int(r.P)} (L = {int(r.L)}): {_num(r.layerwise_loss)} vs {_num(r.gd_loss)}, "
        f"cosine {_num(r.cosine, 3)}"
        for r in shown.itertuples()
    ]
    return (
        "**The student's layer-wise update** (`gd-layerwise/backprop`: update the last "
        "layer, then take the previous layer's gradient through the already-updated "
        "layers, and so on) against `gd/backprop` (whole gradient, all layers at once), "
        "same θ₀, learning rate, budget and seeds. Its steps cost (L² + L)/(3L − 1) times "
        "backprop's, since it reruns the updated layers above. Final training loss "
        "(median), layer-wise vs whole, and the median cosine between the layer-wise "
        "gradient and the whole gradient at the step's start: "
        + "; ".join(pieces)
        + ". At L = 1 the two are the same update."
    )


def section(trajectories: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The training section of REPORT.md (Markdown, without its heading)."""
    if summary is None or not len(summary):
        return "_No training results (run `gradbench train`)._"
    parts = [
        "**Where each optimizer stops reaching the target** (the crossover: the smallest P "
        "at which a majority of seeds no longer reaches it):",
        "",
        crossover_lines(summary),
        "",
        slope_lines(summary),
        "",
        setup(trajectories, summary),
        "",
        "Held-out accuracy at the best θ (median [95 % interval] over seeds):",
        "",
        heldout_table(summary),
        "",
        layerwise_paragraph(summary),
    ]
    return "\n".join(parts).rstrip() + "\n"
