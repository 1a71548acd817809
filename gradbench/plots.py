"""Figures drawn from the result tables alone (no re-measurement), as PNG and SVG.

One colour per family and one marker per method (report.toml), the same in every figure;
depth is a line style, never another colour; one panel per family, so no panel holds more
than a family's few methods. Sizes are numbers on log axes. Each figure function takes
tidy frames and returns a matplotlib Figure; ``draw_all`` saves them under results/plots/.
This module imports no training code and no scipy.optimize.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from gradbench import analysis, fits  # noqa: E402
from gradbench.analysis import Presentation  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P")
DEPTH_STYLES = ("-", "--", ":", "-.")
ERROR_FLOOR = 1e-17  # ρ = 0 (bitwise equal) is drawn here on the log axis
HEADLINE_FAMILIES = ("reverse", "per-weight", "finite-differences", "symbolic")


def style(g: pd.DataFrame, pres: Presentation) -> dict[str, dict]:
    """Method → colour (its family's, lighter for later methods), marker and family. A
    method's place is its place in the family's list in report.toml (plugins after, by
    name), so it looks the same in every figure, whichever methods a figure shows."""
    out = {}
    for fam in pres.families:
        extra = sorted(
            {m for m, k in zip(g.method, g.kind, strict=True) if pres.family_of(m, k) is fam}
            - set(fam.methods)
        )
        for i, m in enumerate([*fam.methods, *extra]):
            out[m] = {
                "color": shade(fam.colour, i),
                "marker": MARKERS[i % len(MARKERS)],
                "family": fam,
            }
    return out


def shade(colour: str, i: int) -> tuple:
    """The family's colour for its first method, mixed toward white for later ones."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    return tuple(rgb + (1 - rgb) * min(0.6, 0.2 * i))


def depth_style(depths) -> dict[int, str]:
    """Depth → line style, shallowest solid; at most four depths get their own style."""
    ordered = sorted(set(depths))
    return {L: DEPTH_STYLES[min(i, len(DEPTH_STYLES) - 1)] for i, L in enumerate(ordered)}


def _log_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xscale="log", yscale="log")
    ax.grid(True, which="major", alpha=0.3)


def _families_present(g: pd.DataFrame, pres: Presentation) -> list:
    names = {pres.family_of(m, k).name for m, k in zip(g.method, g.kind, strict=True)}
    return [f for f in pres.families if f.name in names]


# ---------------------------------------------------------------- the headline figure


def _interval_errors(cells: pd.DataFrame) -> np.ndarray | None:
    """Asymmetric error bars from ratio_to_forward_lo/_hi (None where not recorded)."""
    lo, hi, mid = cells.ratio_to_forward_lo, cells.ratio_to_forward_hi, cells.ratio_to_forward
    if lo.isna().all() or hi.isna().all():
        return None
    return np.vstack([(mid - lo).clip(lower=0).fillna(0), (hi - mid).clip(lower=0).fillna(0)])


def cost_panel(ax, g: pd.DataFrame, laws: pd.DataFrame, pres: Presentation) -> None:
    """Forward passes per gradient against P for each family's headline method, with
    intervals, the fitted law over the cells it used and the theory lines."""
    ok = analysis.measured(g)
    styles = style(g, pres)
    for fam in HEADLINE_FAMILIES:
        method = pres.headline.get(fam)
        cells = ok[ok.method == method].sort_values("P")
        if cells.empty:
            continue
        s = styles[method]
        law = laws[laws.method == method]
        label = method
        if len(law):
            r = law.iloc[0]
            label += f": slope {r.slope:.2f} ± {r.slope_se:.2f} (theory {_theory(r.theory)})"
            P = np.geomspace(r.P_min, r.P_max, 20)
            ax.plot(P, np.exp(r.intercept) * P**r.slope, color=s["color"], lw=2.2, alpha=0.9)
        ax.errorbar(
            cells.P,
            cells.ratio_to_forward,
            yerr=_interval_errors(cells),
            ls="none",
            marker=s["marker"],
            ms=4,
            color=s["color"],
            mfc="none",
            elinewidth=0.8,
            label=label,
        )
    if ok.empty:
        return
    P = np.geomspace(ok.P.min(), ok.P.max(), 50)
    ax.plot(P, np.full_like(P, 3.0), "k:", lw=1, label="theory: constant (≈ 3)")
    ax.plot(P, P, "k--", lw=1, label="theory: ∝ P (= P)")
    _log_axes(ax, "Cost of one gradient", "parameters P (log)", "time ÷ forward-pass time (log)")
    ax.legend(fontsize=7, loc="upper left")


def _theory(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:g}"


def crossover_panel(ax, crossovers: pd.DataFrame | None) -> None:
    """Per gradient-free optimizer: the largest P where it reached the target (filled) and
    the P where it stopped reaching it (hollow)."""
    ax.set(title="Training without gradients", xscale="log", xlabel="parameters P (log)")
    if crossovers is None or crossovers.empty:
        ax.text(0.5, 0.5, "no training results", ha="center", va="center", transform=ax.transAxes)
        ax.set(xscale="linear", xticks=[], yticks=[], xlabel="")
        return
    rows = crossovers.sort_values("optimizer").reset_index(drop=True)
    y = np.arange(len(rows))
    ax.scatter(rows.largest_P_reached, y, color="#2ca02c", label="largest P reaching the target")
    ax.scatter(
        rows.crossover_P,
        y,
        facecolors="none",
        edgecolors="#d62728",
        s=50,
        label="P where it stops reaching it",
    )
    ax.set_yticks(y, rows.optimizer, fontsize=8)
    ax.set_ylim(-1.5, len(rows) - 0.5)  # room below the last optimizer for the legend
    ax.margins(x=0.15)
    ax.minorticks_off()
    sizes = sorted(set(rows.largest_P_reached.dropna()) | set(rows.crossover_P.dropna()))
    ax.set_xticks(sizes, [f"{int(P)}" for P in sizes], fontsize=8)  # the sizes trained
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)


def answer(g, laws, pres, crossovers=None) -> Figure:
    """The whole answer in one picture: cost of a gradient (left), gradient-free (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    cost_panel(left, g, laws, pres)
    crossover_panel(right, crossovers)
    fig.suptitle("Why backpropagation: a gradient's cost in forward passes, and search without one")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- small multiples by family


def by_family(
    g: pd.DataFrame, pres: Presentation, y: str, ylabel: str, title: str, floor: float | None = None
) -> Figure:
    """One panel per family present: ``y`` against P, one marker per method, one line
    style per depth; skipped cells hollow at their projected time when y is the time."""
    ok = analysis.measured(g)
    ok = ok[ok[y].notna()]
    families = _families_present(ok, pres) or [pres.families[0]]
    styles, depths = style(g, pres), depth_style(ok.L)
    cols = min(3, len(families))
    rows = -(-len(families) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False, sharex=True, sharey=True
    )
    for ax, fam in zip(axes.flat, families, strict=False):
        mine = ok[ok.method.map(lambda m: styles[m]["family"].name) == fam.name]
        for method, cells in mine.groupby("method", sort=False):
            s = styles[method]
            for L, line in cells.sort_values("P").groupby("L"):
                values = line[y].clip(lower=floor) if floor else line[y]
                ax.plot(
                    line.P,
                    values,
                    ls=depths[L],
                    marker=s["marker"],
                    ms=3.5,
                    lw=1,
                    color=s["color"],
                    label=method if L == cells.L.min() else None,
                )
        if y == "time_median_s":
            _projected(ax, g, fam, styles)
        _log_axes(ax, fam.label, "parameters P (log)", ylabel)
        ax.minorticks_off()  # decades are enough on these wide axes, and layout stays fast
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(families) :]:
        ax.axis("off")
    for i, ax in enumerate(axes.flat):  # axis labels on the outer panels only
        lowest = i + cols >= len(families)
        ax.xaxis.set_tick_params(labelbottom=lowest)
        ax.set_xlabel(ax.get_xlabel() if lowest else "")
        ax.set_ylabel(ax.get_ylabel() if i % cols == 0 else "")
    handles = [Line2D([], [], color="k", ls=ls, label=f"L = {L}") for L, ls in depths.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(title)
    fig.subplots_adjust(
        left=0.07, right=0.98, bottom=0.1 + 0.04 / rows, top=0.9, wspace=0.08, hspace=0.3
    )
    return fig


def _projected(ax, g: pd.DataFrame, fam, styles: dict) -> None:
    skipped = analysis.methods_only(g[(g.status == "skipped") & g.projected_s.notna()])
    skipped = skipped[skipped.method.map(lambda m: m in styles and styles[m]["family"] is fam)]
    if len(skipped):
        ax.scatter(
            skipped.P,
            skipped.projected_s,
            facecolors="none",
            s=14,
            lw=0.7,
            edgecolors=[styles[m]["color"] for m in skipped.method],
        )


def family_figures(g: pd.DataFrame, pres: Presentation) -> dict[str, callable]:
    """The small-multiple figures, by file name."""
    methods = g[g.method != "backprop"]
    return {
        "cost_by_family": lambda: by_family(
            g,
            pres,
            "ratio_to_forward",
            "time ÷ forward pass (log)",
            "Cost of one gradient in forward passes, by family",
        ),
        "time_by_family": lambda: by_family(
            g,
            pres,
            "time_median_s",
            "seconds per gradient (log)",
            "Time per gradient (hollow: skipped, at its projected time)",
        ),
        "speedup_by_family": lambda: by_family(
            methods,
            pres,
            "ratio_to_backprop",
            "time ÷ backprop's (log)",
            "How many times backprop's time each method takes",
        ),
        "error_by_family": lambda: by_family(
            methods,
            pres,
            "grad_error",
            f"max ρ against backprop (log; 0 at {ERROR_FLOOR:g})",
            "Gradient error against backprop",
            floor=ERROR_FLOOR,
        ),
    }


# ---------------------------------------------------------------- memory


def memory_against(g: pd.DataFrame, pres: Presentation, x: str) -> Figure:
    """Peak memory above baseline against L (or B) per method at the most common other
    sizes, with each method's theory line scaled through its median."""
    ok = analysis.measured(g)
    ok = ok[ok.peak_rss_bytes > 0]
    fixed = [c for c in ("N", "L", "B") if c != x]
    at = _busiest(ok, fixed)
    cells = ok[(ok[fixed[0]] == at[0]) & (ok[fixed[1]] == at[1])]
    styles = style(g, pres)
    fig, ax = plt.subplots(figsize=(7, 5))
    for method, rows in cells.sort_values(x).groupby("method"):
        s = styles[method]
        ax.plot(
            rows[x], rows.peak_rss_bytes, marker=s["marker"], color=s["color"], lw=1.2, label=method
        )
        model = pres.memory_model(method, rows.kind.iloc[0])
        if model:
            theory = analysis.memory_theory(model, rows.N, rows.L, rows.B, rows.P)
            scale = np.median(rows.peak_rss_bytes / theory)
            ax.plot(rows[x], scale * theory, ls=":", color=s["color"], lw=1)
    fixed_text = ", ".join(f"{c} = {v}" for c, v in zip(fixed, at, strict=True))
    _log_axes(
        ax,
        f"Peak memory of one gradient against {x} ({fixed_text}); dotted: theory",
        f"{x} (log)",
        "peak resident memory above baseline, bytes (log)",
    )
    ax.legend(fontsize=7)
    return fig


def _busiest(ok: pd.DataFrame, keys: list[str]) -> tuple:
    """The value of ``keys`` with the most methods measured; among ties the largest (in the
    order of ``keys``), where memory differences show most."""
    counts = ok.groupby(keys).method.nunique()
    return max(counts[counts == counts.max()].index)


def time_memory(g: pd.DataFrame, pres: Presentation) -> Figure:
    """One point per method at the size where the most methods have both time and memory."""
    ok = analysis.measured(g)
    ok = ok[ok.peak_rss_bytes > 0]
    size = _busiest(ok, ["L", "N", "B"])
    size = (size[1], size[0], size[2])
    at = ok[(ok.N == size[0]) & (ok.L == size[1]) & (ok.B == size[2])]
    styles = style(g, pres)
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in at.itertuples():
        s = styles[r.method]
        ax.scatter(
            r.time_median_s, r.peak_rss_bytes, marker=s["marker"], color=s["color"], label=r.method
        )
    _log_axes(
        ax,
        f"Time and memory of one gradient at N = {size[0]}, L = {size[1]}, B = {size[2]}",
        "seconds per gradient (log)",
        "peak memory above baseline, bytes (log)",
    )
    ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------- symbolic


def symbolic_sizes(g: pd.DataFrame, pres: Presentation) -> Figure:
    """Derivative size ÷ forward size (raw and after CSE) and derivation time against P."""
    cells = analysis.measured(g)[lambda d: d.ops_forward > 0].drop_duplicates(["N", "L"])
    cells = cells.sort_values("P")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for column, label, marker in (
        ("ops_derivatives", "P derivatives, raw", "o"),
        ("ops_cse", "after CSE", "s"),
    ):
        ratio = cells[column] / cells.ops_forward
        line = fits.growth(cells.assign(r=ratio), "P", "r")
        text = f" (∝ P^{line.slope:.2f} ± {line.slope_se:.2f})" if line else ""
        left.plot(
            cells.P,
            ratio,
            marker=marker,
            color="#9467bd",
            label=label + text,
            ls="-" if marker == "o" else "--",
        )
    _log_axes(
        left,
        "Expression size ÷ forward pass's",
        "parameters P (log)",
        "operations ÷ forward's (log)",
    )
    left.legend(fontsize=8)
    styles = style(g, pres)
    for method, rows in analysis.measured(g)[lambda d: d.ops_forward > 0].groupby("method"):
        line = fits.growth(rows, "P", "prepare_s")
        text = f" (∝ P^{line.slope:.2f} ± {line.slope_se:.2f})" if line else ""
        rows = rows.sort_values("P")
        s = styles[method]
        right.plot(
            rows.P, rows.prepare_s, marker=s["marker"], color=s["color"], label=f"{method}{text}"
        )
    _log_axes(
        right, "Derivation and compilation time", "parameters P (log)", "prepare seconds (log)"
    )
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def has_symbolic(g: pd.DataFrame) -> bool:
    return bool((analysis.measured(g).ops_forward > 0).sum() >= 2)


# ---------------------------------------------------------------- all of them


def save(figures: dict, out: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Draw and save each figure (PNG and SVG by default); returns the PNG paths in order."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in figures.items():
        fig = draw()
        for ext in formats:
            fig.savefig(out / f"{name}.{ext}", dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(out / f"{name}.png")
    return paths


def figures(
    g: pd.DataFrame, pres: Presentation, laws: pd.DataFrame, crossovers: pd.DataFrame | None = None
) -> dict:
    """Name → drawing function: the headline figure (first), the family figures and,
    where the columns have data, the symbolic figure, for one machine and configuration."""
    out = {"answer": lambda: answer(g, laws, pres, crossovers)} | family_figures(g, pres)
    if has_symbolic(g):
        out["symbolic_sizes"] = lambda: symbolic_sizes(g, pres)
    return out


def memory_figures(g: pd.DataFrame, pres: Presentation) -> dict:
    """Name → drawing function for the memory figures of one machine's rows (several batch
    sizes allowed), where the measured peak varies over L or over B."""
    ok = analysis.measured(g)
    ok = ok[ok.peak_rss_bytes > 0]
    out = {}
    if ok.L.nunique() >= 2:
        out["memory_vs_L"] = lambda: memory_against(g, pres, "L")
    if ok.B.nunique() >= 2:
        out["memory_vs_B"] = lambda: memory_against(g, pres, "B")
    if out:
        out["time_memory"] = lambda: time_memory(g, pres)
    return out
