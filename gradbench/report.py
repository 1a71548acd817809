"""results/REPORT.md: the student's question answered with this machine's numbers.

Everything is read from the CSV files (gradients.csv, training.csv) and the tables derived
from them (fits.csv, training_summary.csv). The report describes the rows of one machine
(the latest fingerprint) and one configuration; it opens with the answer: a first screen
whose every number carries its interval or names its source column.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gradbench import (
    analysis,
    fits,
    plots,
    predict,
    training_analysis,
    training_plots,
    training_report,
)
from gradbench.errors import GradbenchError
from gradbench.results import TRAINING_COLUMNS, read_table, write_atomic, write_text_atomic

FIRST_SCREEN_END = "![answer](plots/answer.png)"
QUESTION = """\
An MLP with L dense layers of N neurons is one function of its P = L·(N² + N) weights.
Why train it with **backpropagation** rather than differentiating that function weight by
weight, estimating each derivative numerically, or searching without any gradient? Theory:
reverse mode gives the whole gradient for a few forward passes whatever P is; per-weight
methods need work ∝ P forward passes; gradient-free search degrades as P grows."""


# ---------------------------------------------------------------- formatting


def fmt(x: float | None) -> str:
    """Three significant digits; '–' for a missing value (never 'nan')."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError  # unreachable


def fmt_interval(iv: analysis.Interval) -> str:
    """'2.31× [2.2, 2.4]', or the value with '(unpaired: no interval)'."""
    if iv.has_interval:
        return f"{fmt(iv.value)}× [{fmt(iv.lo)}, {fmt(iv.hi)}]"
    return f"{fmt(iv.value)}× (unpaired: no interval)"


def fmt_range(value: float, lo: float, hi: float, f=fmt) -> str:
    """A prediction with its interval: '1.2 s (0.5 s – 3 s)'."""
    return f"{f(value)} ({f(lo)} – {f(hi)})"


def fmt_slope(row: pd.Series) -> str:
    return f"{row.slope:.2f} ± {row.slope_se:.2f}"


def table(frame: pd.DataFrame) -> str:
    """A Markdown table of strings."""
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def folded(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


# ---------------------------------------------------------------- the first screen


def law_words(law: pd.Series) -> str:
    """What a fitted slope says, in words that cannot contradict it."""
    verdict = fits.agrees(law.slope, law.slope_se, law.theory)
    if verdict is None:
        return f"slope {fmt_slope(law)} against log P (no theory stated)"
    shape = "constant in P" if law.theory == 0 else "∝ P"
    said = "as theory says" if verdict else "**not** as theory says"
    return f"slope {fmt_slope(law)} against log P: {shape}, {said} (theory {law.theory:g})"


def cost_line(g: pd.DataFrame, laws: pd.DataFrame, pres, family: str) -> str | None:
    """One line of the answer: a family's headline method, its cost in forward passes at
    its largest measured P with the interval, and its fitted slope."""
    method = pres.headline.get(family)
    cell = analysis.largest_cell(g, method) if method else None
    if cell is None:
        return None
    law = laws[laws.method == method]
    slope = law_words(law.iloc[0]) if len(law) else "too few cells above the overhead floor to fit"
    name = pres.by_name(family).label
    return (
        f"- {name}, **{method}**: {fmt_interval(analysis.ratio(cell, 'ratio_to_forward'))} a "
        f"forward pass at P = {int(cell.P)}; {slope} — `ratio_to_forward`, `fits.csv`"
    )


def spread_line(g: pd.DataFrame, pres) -> str | None:
    """At the reference size: the fastest and the slowest per-weight or finite-difference
    method, as multiples of backprop's time."""
    N, L = analysis.reference_size(g)
    names = [m for f in ("per-weight", "finite-differences") for m in pres.by_name(f).methods]
    pair = analysis.extremes(g, names, N, L)
    if pair is None:
        return None
    at = analysis.measured(g)[lambda d: (d.N == N) & (d.L == L)].set_index("method")
    fast, slow = (fmt_interval(analysis.ratio(at.loc[m], "ratio_to_backprop")) for m in pair)
    return (
        f"- At N = {N}, L = {L} the per-weight methods take from {fast} backprop's time "
        f"(fastest, {pair[0]}) to {slow} (slowest, {pair[1]}) — `ratio_to_backprop`"
    )


def crossover_line(crossovers: pd.DataFrame | None, missing: str) -> str:
    """The second question: where gradient-free optimizers stop reaching the target
    (``missing`` says why there is no answer when there are no crossovers)."""
    if crossovers is None or crossovers.empty:
        return f"- Gradient-free training: {missing}."
    parts = []
    free = crossovers[crossovers.family == "gradient-free"]
    for r in free.sort_values("optimizer").itertuples():
        if pd.notna(r.crossover_P):
            parts.append(f"{r.optimizer} at P = {int(r.crossover_P)}")
        else:
            parts.append(f"{r.optimizer} never (reached it up to P = {int(r.largest_P_reached)})")
    exact = crossovers[(crossovers.family == "gradient") & crossovers.crossover_P.isna()]
    with_gradient = (
        f"; with backprop's gradient, {', '.join(sorted(exact.optimizer))} reached it at every "
        f"size tried (up to P = {int(exact.largest_P_reached.min())})"
        if len(exact)
        else ""
    )
    return (
        "- **Without gradients**, the optimizers stop reaching the target loss: "
        f"{'; '.join(parts)}{with_gradient} — `crossover_P`, `largest_P_reached`"
    )


def first_screen(g, laws, pres, crossovers, missing: str) -> list[str]:
    """At most ~10 lines answering both questions, every number with interval or source."""
    lines = [cost_line(g, laws, pres, f) for f in plots.HEADLINE_FAMILIES]
    lines += [spread_line(g, pres), crossover_line(crossovers, missing)]
    return [
        "**Why backprop: its gradient costs a few forward passes whatever P is; a gradient "
        "weight by weight costs ∝ P of them.** Measured on this machine (paired intervals "
        "in brackets):",
        "",
        *[line for line in lines if line],
        "",
        FIRST_SCREEN_END,
    ]


# ---------------------------------------------------------------- tables


def machine_line(g: pd.DataFrame) -> str:
    key = analysis.machine_key(g)
    first = g.iloc[-1]
    runs = ", ".join(map(str, g.run_id.dropna().unique()))
    config = ", ".join(f"{c} = {first[c]}" for c in analysis.CONFIGURATION if pd.notna(first[c]))
    if pd.notna(passes := first.get("passes")) and passes > 1:
        config += f"; each cell timed in {passes:g} passes over the grid"
    return (
        f"Machine **{first[key]}** ({first.machine}; BLAS threads {first.blas_threads}, numpy "
        f"{first.numpy}); run {runs}; {config}. Every table and fit below is this machine's."
    )


def method_table(g: pd.DataFrame, laws: pd.DataFrame, pres) -> str:
    """One row per measured method at the reference size: time, ratios with intervals,
    slope of its cost law, largest P measured."""
    N, L = analysis.reference_size(g)
    at = analysis.methods_only(g)[lambda d: (d.N == N) & (d.L == L)]
    laws = laws.set_index("method")
    order = {m: i for i, m in enumerate(m for f in pres.families for m in f.methods)}
    rows = []
    for r in sorted(at.itertuples(), key=lambda r: (order.get(r.method, 99), r.method)):
        row = pd.Series(r._asdict())
        law = laws.loc[r.method] if r.method in laws.index else None
        ok = r.status == "ok"
        largest = analysis.largest_cell(g, r.method)
        rows.append(
            {
                "method": r.method,
                "family": pres.family_of(r.method, r.kind).label,
                f"time at N={N}, L={L}": fmt_time(r.time_median_s) if ok else r.status,
                "÷ forward [95 %]": fmt_interval(analysis.ratio(row, "ratio_to_forward"))
                if ok
                else "–",
                "÷ backprop [95 %]": fmt_interval(analysis.ratio(row, "ratio_to_backprop"))
                if ok
                else "–",
                "slope vs log P (theory)": f"{fmt_slope(law)} ({fmt(law.theory)})"
                if law is not None
                else "–",
                "largest P measured": int(largest.P) if largest is not None else "–",
            }
        )
    return table(pd.DataFrame(rows))


def laws_table(laws: pd.DataFrame) -> str:
    if laws.empty:
        return "_Too few cells above the overhead floor to fit a law._"
    rows = [
        {
            "law": r.method,
            "slope ± se": fmt_slope(r),
            "theory": fmt(r.theory),
            "agrees": {True: "yes", False: "**no**", None: "–"}[
                fits.agrees(r.slope, r.slope_se, r.theory)
            ],
            "cells": int(r.cells),
            "P range": f"{int(r.P_min)}–{int(r.P_max)}",
        }
        for r in laws.itertuples()
    ]
    used = "\n".join(f"- {r.method}: {r.cells_used}" for r in laws.itertuples())
    return table(pd.DataFrame(rows)) + "\n\n" + folded("Cells used by each law (N×L)", used)


def nl_table(nl: pd.DataFrame) -> str:
    rows = [
        {
            "method": r.method,
            "a (N) ± se": f"{fmt(r.a)} ± {fmt(r.a_se)}",
            "cost model a": fmt(r.a_theory),
            "b (L) ± se": f"{fmt(r.b)} ± {fmt(r.b_se)}",
            "cost model b": fmt(r.b_theory),
            "cells": int(r.cells),
        }
        for r in nl.itertuples()
    ]
    return table(pd.DataFrame(rows)) if rows else "_Too few cells to fit._"


def correctness_table(g: pd.DataFrame) -> str:
    ok = analysis.methods_only(g[g.status.isin(["ok", "wrong"])])
    rows = []
    for method, cells in ok[ok.method != "backprop"].groupby("method"):
        small, large = cells.sort_values("P").iloc[[0, -1]].itertuples()
        stochastic = cells.kind.iloc[0] == "stochastic"
        rows.append(
            {
                "method": method,
                "worst ρ": fmt(cells.grad_error.max()),
                "tolerance": fmt(cells.tolerance.max()),
                "cells wrong": int((cells.status == "wrong").sum()),
                "cosine, smallest → largest P": (
                    f"{fmt(small.cosine)} (P={small.P}) → {fmt(large.cosine)} (P={large.P})"
                    if stochastic
                    else "–"
                ),
            }
        )
    return table(pd.DataFrame(rows)) if rows else "_No method measured besides backprop._"


def targets_section(g: pd.DataFrame, pres) -> str:
    checked = analysis.check_targets(g, pres.targets)
    checked["worst"] = checked["worst"].map(fmt)
    notes = [f"- {t['name']}: {t['note']}." for t in pres.targets if t.get("note")]
    return table(checked.rename(columns={"worst": "worst ratio"})) + "\n\n" + "\n".join(notes)


def not_measured(g: pd.DataFrame) -> str:
    """Wrong cells listed openly first; every other cell not measured, folded, with reasons."""
    bad = analysis.not_ok(g)
    parts = []
    wrong = bad[bad.status == "wrong"]
    if len(wrong):
        shown = wrong[["method", "N", "L", "P", "grad_error", "tolerance"]].copy()
        shown[["grad_error", "tolerance"]] = shown[["grad_error", "tolerance"]].map(fmt)
        parts.append(
            f"**Wrong results ({len(wrong)} cells outside their tolerance):**\n\n{table(shown)}"
        )
    rest = bad[bad.status != "wrong"]
    if len(rest):
        shown = rest[["method", "N", "L", "P", "status", "reason", "projected_s"]].copy()
        shown["projected_s"] = shown.projected_s.map(fmt_time)
        shown["reason"] = shown.reason.fillna("–")
        counts = ", ".join(f"{n} {s}" for s, n in analysis.status_counts(rest).items())
        parts.append(folded(f"Cells not measured: {counts} (click to open)", table(shown)))
    missing = analysis.unavailable_methods(g)
    if missing:
        parts.append(
            "Not available here: " + "; ".join(f"{m} ({r})" for m, r in missing.items()) + "."
        )
    return "\n\n".join(parts) or "Every cell of the grid was measured."


# ---------------------------------------------------------------- predictions


def predictions_section(g, pres, summary) -> str:
    laws = predict.laws_of(g, pres)

    def size_of(spec: dict) -> int:
        return predict.size_of(spec, laws.bias)[0]

    rows, words = [], {}
    for name, spec in predict.NAMED_SIZES:
        P, N, L = predict.size_of(spec, laws.bias)
        for r in predict.predict_times(laws, P).itertuples():
            if r.no_prediction:
                continue
            rows.append(
                {
                    "size": name,
                    "P": P,
                    "method": r.method,
                    "predicted time (95 % interval)": fmt_range(
                        r.predicted_s, r.lo_s, r.hi_s, fmt_time
                    ),
                    "largest P measured": r.largest_measured_P,
                }
            )
            if N is not None and r.family not in words:
                words[r.family] = (r.method, r.predicted_s, r.lo_s, r.hi_s)
    if not rows:
        return "_No law passes the rules for prediction (see the README's honesty rules)._"
    refused = predict.predict_times(laws, 10**6).query("no_prediction != ''")
    sentences = [
        f"- {pres.by_name(f).label}: one gradient by {m} of the "
        f"N=1024, L=8 MLP would take about {predict.plain_duration(v)} "
        f"(between {predict.plain_duration(lo)} and {predict.plain_duration(hi)})."
        for f, (m, v, lo, hi) in words.items()
    ]
    no = "\n".join(
        f"- no prediction for {r.method}: {r.no_prediction}" for r in refused.itertuples()
    )
    cutoff, held = predict.backtest_at_median(g, pres)
    inside, width = predict.coverage(held)
    check = (
        f"Backtest: cost laws fitted on the cells below P = {cutoff:.0f} (the median P of the "
        f"cells a law admits) put {int(held.inside.sum())} of {len(held)} measured cells above "
        f"it inside their intervals ({inside:.0%}; median width ×{width:.3g}, hi ÷ lo), each "
        "cell predicted from its own measured forward pass."
        if len(held)
        else "Backtest: no cell above the median P had a law to predict it."
    )
    parts = [
        "Every row below is **predicted**, not measured: forward-time law × cost law, with a "
        "95 % prediction interval from both fits' errors and, beyond the measured range, the "
        "gap between each law's slope and its theory (predict.py). " + check,
        "",
        "\n".join(sentences),
        "",
        folded("Predicted time of one gradient at named sizes", table(pd.DataFrame(rows))),
    ]
    if no:
        parts += ["", no]
    evals = pd.concat(
        [
            predict.predict_evals(predict.crossover_laws(summary), size_of(spec))
            for _, spec in predict.NAMED_SIZES
        ],
        ignore_index=True,
    )
    if len(evals):
        evals["predicted evaluations to target (95 %)"] = [
            fmt_range(r.evals, r.lo, r.hi, fmt) for r in evals.itertuples()
        ]
        parts += [
            "",
            "Gradient-free training, **predicted** evaluations to reach the target:",
            "",
            table(
                evals[
                    [
                        "optimizer",
                        "P",
                        "predicted evaluations to target (95 %)",
                        "largest_measured_P",
                    ]
                ]
            ),
        ]
    return "\n".join(parts)


# ---------------------------------------------------------------- optional sections


def memory_section(g: pd.DataFrame, pres) -> str | None:
    ok = analysis.measured(g)
    ok = ok[ok.peak_rss_bytes > 0]
    if not plots.memory_figures(g, pres):
        return None
    rows = []
    for (method, N, B), cells in ok.groupby(["method", "N", "B"]):
        line = fits.growth(cells, "L", "peak_rss_bytes")
        model = pres.memory_model(method, cells.kind.iloc[0])
        if line is None:
            continue
        theory = (
            fits.growth(
                cells.assign(t=analysis.memory_theory(model, cells.N, cells.L, cells.B, cells.P)),
                "L",
                "t",
            )
            if model
            else None
        )
        declared = (cells.memory_model_bytes / cells.peak_rss_bytes).median()
        # s only where activations are kept: a one-layer method's peak less its gradient
        # still grows like P (its P-sized tangents and buffers), which s would misread
        kept = activations(cells) if model and analysis.MEMORY_EXPONENT[model] > 0 else None
        rows.append(
            {
                "method": method,
                "N": N,
                "B": B,
                "slope vs log L ± se": f"{line.slope:.2f} ± {line.slope_se:.2f}",
                "theory slope (same cells)": fmt(theory.slope) if theory else "–",
                "s of a + b·L^s ± se": f"{kept.value:.2f} ± {kept.se:.2f}" if kept else "–",
                "theory s": fmt(analysis.MEMORY_EXPONENT[model]) if model else "–",
                "declared ÷ measured (median)": fmt(declared),
                "library's own count ÷ measured": fmt(
                    (cells.allocator_bytes / cells.peak_rss_bytes).median()
                ),
            }
        )
    return (
        checkpoint_sentence(ok)
        + "Peak resident memory above the worker's baseline for one gradient "
        "(`peak_rss_bytes`). Theory: backprop ∝ L·B·N + P, checkpointed ∝ √L·B·N + P, "
        "forward mode and finite differences ∝ B·N + P. Since P grows like L too, the "
        "log-log slope of the whole mixes both terms; *s* separates them: the peak less the "
        "gradient returned (P numbers) is fitted as a + b·L^s, the exponent with which the "
        "activations kept grow (theory 1 and ½; not fitted for the methods that keep one "
        "layer's, whose other buffers are P-sized). Where a library states what one call "
        "allocates (XLA's compiled memory analysis, `allocator_bytes`), its count is "
        "compared too: XLA's CPU runtime keeps buffers from call to call, which the resident "
        "peak then misses.\n\n"
        + (table(pd.DataFrame(rows)) if rows else "_Too few depths per method to fit._")
    )


def activations(cells: pd.DataFrame) -> fits.Exponent | None:
    """The growth with L of the peak less the gradient returned (P numbers): the
    activations a method keeps, fitted as a + b·L^s (fits.growth_exponent)."""
    kept = cells.peak_rss_bytes - cells.P * cells.dtype.map(lambda d: np.dtype(d).itemsize)
    rows = kept > 0
    return fits.growth_exponent(cells.L[rows], kept[rows])


def checkpoint_sentence(ok: pd.DataFrame) -> str:
    """What backprop pays in memory and what checkpointing buys back, at the deepest (then
    widest) size where both were measured (empty when they were not)."""
    both = ok[ok.method.isin(["backprop", "backprop-checkpoint"])]
    pairs = both.pivot_table(index=["N", "L", "B"], columns="method", values="peak_rss_bytes")
    pairs = pairs.dropna()
    if pairs.empty or len(pairs.columns) < 2:
        return ""
    N, L, B = max(pairs.index, key=lambda k: (k[1], k[0], k[2]))  # deepest, then widest
    cell = ok[(ok.method == "backprop-checkpoint") & (ok.N == N) & (ok.L == L) & (ok.B == B)]
    back, check = pairs.loc[(N, L, B), "backprop"], pairs.loc[(N, L, B), "backprop-checkpoint"]
    return (
        f"At N = {N}, L = {L}, B = {B} backprop's gradient needs {back / 2**20:.3g} MiB above "
        f"the baseline (`peak_rss_bytes`); checkpointing needs {check / 2**20:.3g} MiB "
        f"({check / back:.2f} of it) and takes "
        f"{fmt_interval(analysis.ratio(cell.iloc[0], 'ratio_to_backprop'))} backprop's time "
        "(`ratio_to_backprop`).\n\n"
    )


def symbolic_section(g: pd.DataFrame) -> str | None:
    if not plots.has_symbolic(g):
        return None
    cells = analysis.measured(g)[lambda d: d.ops_forward > 0]
    shown = cells[
        [
            "method",
            "N",
            "L",
            "P",
            "ops_forward",
            "ops_derivatives",
            "ops_cse",
            "prepare_s",
            "time_median_s",
        ]
    ].copy()
    back = (
        analysis.measured(g)[lambda d: d.method == "backprop"].set_index(["N", "L"]).time_median_s
    )
    shown["÷ backprop's time"] = [
        fmt(t / back.get((n, l), math.nan))
        for n, l, t in zip(shown.N, shown.L, shown.time_median_s, strict=True)
    ]
    shown["raw ÷ forward"] = (shown.ops_derivatives / shown.ops_forward).map(fmt)
    shown["CSE ÷ forward"] = (shown.ops_cse / shown.ops_forward).map(fmt)
    shown["prepare_s"] = shown.prepare_s.map(fmt_time)
    shown["time_median_s"] = shown.time_median_s.map(fmt_time)
    raw = fits.growth(cells.assign(r=cells.ops_derivatives / cells.ops_forward), "P", "r")
    cse = fits.growth(cells.assign(r=cells.ops_cse / cells.ops_forward), "P", "r")
    said = ""
    if raw and cse:
        said = (
            f"Differentiating the whole loss symbolically gives P derivatives whose size ÷ the "
            f"forward pass's grows as P^{raw.slope:.2f} ± {raw.slope_se:.2f}; after common-"
            f"subexpression elimination it grows as P^{cse.slope:.2f} ± {cse.slope_se:.2f}. "
            "Sharing the common pieces is what reverse mode does by construction.\n\n"
        )
    return said + table(shown.map(str))


# ---------------------------------------------------------------- training (helper modules)


NO_TRAINING = "no training results for this machine (run `gradbench train`)"


def training_parts(out: Path):
    """(trajectories, summary, crossovers, section text, figure paths) from training.csv;
    Nones and a one-line note when nothing was trained."""
    t = read_table(out / "training.csv", TRAINING_COLUMNS, missing_ok=True)
    if t.empty:
        return t, None, None, NO_TRAINING, []
    summary = training_analysis.summarize(t)
    write_atomic(summary, out / "training_summary.csv")
    crossovers = training_analysis.crossovers(summary)
    figures = training_plots.draw_all(t, summary, out / "plots")
    return t, summary, crossovers, training_report.section(t, summary), figures


def training_section(text: str, crossovers: pd.DataFrame | None) -> str:
    """The training helper's section, or why there is none (a sentence of its own)."""
    return text if crossovers is not None else f"_{text[0].upper()}{text[1:]}._"


# ---------------------------------------------------------------- the whole report


def build(out: Path) -> Path:
    """Read the CSVs under ``out``; write fits.csv, fits_NL.csv, the figures and REPORT.md
    for the latest machine's rows. Returns the report's path."""
    everything = analysis.load_gradients(out / "gradients.csv")
    if not (everything.status == "ok").any():
        raise GradbenchError(f"{out / 'gradients.csv'} has no measured cell to report")
    pres = analysis.load_presentation()
    mine = analysis.latest_machine(everything)
    g = analysis.main_configuration(mine)
    laws = pd.concat([fits.forward_law(g), fits.cost_laws(g, pres)], ignore_index=True)
    write_atomic(laws, out / "fits.csv")
    nl = fits.fit_all(g)
    write_atomic(nl, out / "fits_NL.csv")
    _, summary, crossovers, training_text, training_figures = training_parts(out)
    missing = training_text if crossovers is None else "no gradient-free optimizer was trained"
    drawn = plots.figures(g, pres, laws, crossovers) | plots.memory_figures(mine, pres)
    figures = plots.save(drawn, out / "plots")
    cost = laws[laws.method != analysis.FORWARD]
    sections = [
        ("Per method, at the size where most were measured", method_table(g, cost, pres)),
        ("Scaling laws: cost in forward passes against P", laws_table(laws)),
        (
            "What it would cost at sizes nobody can time (predicted)",
            predictions_section(g, pres, summary),
        ),
        ("Training with and without gradients", training_section(training_text, crossovers)),
        ("Differentiate the whole function directly?", symbolic_section(g)),
        ("Memory", memory_section(mine, pres)),
        ("As fast as the best: targets", targets_section(g, pres)),
        ("Correctness against backprop", correctness_table(g)),
        ("Secondary: time ∝ N^a · L^b", nl_table(nl)),
        (
            "Figures",
            "\n\n".join(f"![{p.stem}](plots/{p.name})" for p in figures[1:] + training_figures),
        ),
        ("Cells not measured", not_measured(g)),
    ]
    parts = [
        "# Why backpropagation? — gradbench report",
        "",
        machine_line(mine),
        "",
        *first_screen(g, cost, pres, crossovers, missing),
        "",
        QUESTION,
        "",
    ]
    for title, body in sections:
        if body:
            parts += [f"## {title}", "", body, ""]
    report = out / "REPORT.md"
    write_text_atomic("\n".join(parts), report)
    return report
