"""Figures drawn from the result tables alone (no re-measurement), as PNG and SVG.

Each figure function takes the tidy frame(s) and returns a matplotlib Figure; ``draw_all``
saves them under ``results/plots/``. Sizes are numbers on log axes, never categories.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

REFERENCE_KIND = "reference"
MARKERS = {"exact": "o", "approximate": "s", "stochastic": "^", REFERENCE_KIND: "x"}
ERROR_FLOOR = 1e-17  # ρ = 0 (bitwise equal) is drawn here on the log axis


def colors(methods) -> dict[str, tuple]:
    """One stable colour per method name, whichever subset a figure shows."""
    cmap = plt.get_cmap("tab20")
    return {m: cmap(i % 20) for i, m in enumerate(sorted(methods))}


def _methods(g: pd.DataFrame) -> pd.DataFrame:
    return g[g.kind != REFERENCE_KIND]


def _per_method(ax, frame: pd.DataFrame, x: str, y: str, palette: dict, **kw) -> None:
    for method, cells in frame.sort_values(x).groupby("method", sort=True):
        marker = MARKERS.get(cells.kind.iloc[0], "o")
        ax.plot(
            cells[x],
            cells[y],
            marker=marker,
            ms=4,
            lw=1.2,
            color=palette[method],
            label=method,
            **kw,
        )


def _finish(ax, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xscale="log", yscale="log")
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        ax.legend(fontsize=7, ncol=2, loc="best")


def time_vs_P(g: pd.DataFrame) -> Figure:
    """Time per gradient against P; skipped cells hollow at their projected time."""
    palette = colors(g.method.unique())
    fig, ax = plt.subplots(figsize=(9, 6))
    ok = _methods(g[g.status == "ok"])
    for method, cells in ok.sort_values("P").groupby("method"):
        # one line per depth, so that different L at the same P do not zig-zag
        for i, (_, by_L) in enumerate(cells.groupby("L")):
            ax.plot(
                by_L.P,
                by_L.time_median_s,
                marker=MARKERS.get(by_L.kind.iloc[0], "o"),
                ms=4,
                lw=1,
                color=palette[method],
                label=method if i == 0 else None,
            )
    skipped = _methods(g[(g.status == "skipped") & g.projected_s.notna()])
    for method, cells in skipped.groupby("method"):
        ax.scatter(
            cells.P, cells.projected_s, facecolors="none", edgecolors=palette[method], s=18, lw=0.8
        )
    ax.scatter([], [], facecolors="none", edgecolors="grey", label="skipped: projected time")
    _guides(ax, ok)
    if g.budget_s.notna().any():
        ax.axhline(
            g.budget_s.max(), color="red", ls=":", lw=1, label=f"budget {g.budget_s.max():g} s"
        )
    _finish(
        ax,
        "Time per gradient: backprop grows like P, per-weight methods like P²",
        "parameters P (log)",
        "seconds per gradient (median, log)",
    )
    return fig


def _guides(ax, ok: pd.DataFrame) -> None:
    """Dashed theory lines: slope 1 through backprop, slope 2 through the per-weight methods."""
    P = np.geomspace(ok.P.min(), ok.P.max(), 50)
    back = ok[ok.method == "backprop"]
    if len(back):
        c = np.exp(np.median(np.log(back.time_median_s / back.P)))
        ax.plot(P, c * P, "k--", lw=0.8, alpha=0.6, label="slope 1 (∝ P)")
    per_weight = ok[ok.loss_evals >= ok.P]
    if len(per_weight):
        c = np.exp(np.median(np.log(per_weight.time_median_s / per_weight.P**2)))
        ax.plot(P, c * P**2, "k-.", lw=0.8, alpha=0.6, label="slope 2 (∝ P²)")


def small_multiples(g: pd.DataFrame, x: str, panel: str) -> Figure:
    """Time against N at each L (or against L at each N), one panel per value."""
    ok = _methods(g[g.status == "ok"])
    values = sorted(ok[panel].unique())
    if len(values) > 4:
        values = [values[i] for i in np.linspace(0, len(values) - 1, 4).round().astype(int)]
    palette = colors(g.method.unique())
    fig, axes = plt.subplots(
        1, max(1, len(values)), figsize=(4 * max(1, len(values)), 4.2), sharey=True, squeeze=False
    )
    for ax, value in zip(axes[0], values, strict=False):
        _per_method(ax, ok[ok[panel] == value], x, "time_median_s", palette)
        _finish(ax, f"{panel} = {value}", f"{x} (log)", "seconds per gradient (log)", legend=False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=6, fontsize=7)
    fig.suptitle(
        f"Time per gradient against {'width N' if x == 'N' else 'depth L'}, at fixed {panel}"
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return fig


def ratio_to_forward(g: pd.DataFrame) -> Figure:
    """The cheap-gradient principle: gradient time ÷ forward time, with P and 2P guides."""
    ok = _methods(g[g.status == "ok"])
    fig, ax = plt.subplots(figsize=(9, 6))
    _per_method(ax, ok, "P", "ratio_to_forward", colors(g.method.unique()), ls="none")
    P = np.geomspace(ok.P.min(), ok.P.max(), 50)
    ax.plot(P, P, "k--", lw=0.8, alpha=0.6, label="= P")
    ax.plot(P, 2 * P, "k-.", lw=0.8, alpha=0.6, label="= 2P")
    ax.axhline(3, color="k", ls=":", lw=0.8, label="= 3 (backprop's theory)")
    _finish(
        ax,
        "Cheap gradient principle: backprop stays near a few forward passes",
        "parameters P (log)",
        "gradient time ÷ forward time (log)",
    )
    return fig


def speedup(g: pd.DataFrame) -> Figure:
    """How many times longer each method takes than backprop, at the same (N, L)."""
    ok = _methods(g[(g.status == "ok") & (g.method != "backprop")])
    fig, ax = plt.subplots(figsize=(9, 6))
    _per_method(ax, ok, "P", "ratio_to_backprop", colors(g.method.unique()), ls="none")
    ax.axhline(1, color="k", lw=0.8)
    _finish(
        ax,
        "Backprop's speed-up over every other method",
        "parameters P (log)",
        "method time ÷ backprop time (log)",
    )
    return fig


def accuracy(g: pd.DataFrame) -> Figure:
    """Gradient error ρ against backprop; cosine similarity for the stochastic methods."""
    ok = _methods(g[(g.status == "ok") & (g.method != "backprop")]).copy()
    palette = colors(g.method.unique())
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    det = ok[ok.kind != "stochastic"].assign(
        grad_error=lambda d: d.grad_error.clip(lower=ERROR_FLOOR)
    )
    _per_method(left, det, "P", "grad_error", palette, ls="none")
    _finish(
        left,
        f"Max error ρ against backprop (0 drawn at {ERROR_FLOOR:g})",
        "parameters P (log)",
        "max ρ = |g−g*| / max(1, |g|+|g*|) (log)",
    )
    sto = ok[ok.kind == "stochastic"]
    _per_method(right, sto, "P", "cosine", palette, ls="none")
    P = np.geomspace(max(1, ok.P.min()), max(2, ok.P.max()), 50)
    right.plot(P, 1 / np.sqrt(P), "k--", lw=0.8, alpha=0.6, label="1/√P")
    _finish(
        right,
        "Stochastic estimates: cosine to the true gradient",
        "parameters P (log)",
        "cosine similarity (log)",
    )
    fig.tight_layout()
    return fig


def draw_all(gradients: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure the tables allow, as PNG and SVG; returns the PNG paths."""
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "time_vs_P": lambda: time_vs_P(gradients),
        "time_vs_N": lambda: small_multiples(gradients, "N", "L"),
        "time_vs_L": lambda: small_multiples(gradients, "L", "N"),
        "ratio_to_forward": lambda: ratio_to_forward(gradients),
        "speedup_of_backprop": lambda: speedup(gradients),
        "gradient_error": lambda: accuracy(gradients),
    }
    paths = []
    for name, draw in figures.items():
        fig = draw()
        for ext in ("png", "svg"):
            fig.savefig(out / f"{name}.{ext}", dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(out / f"{name}.png")
    return paths
