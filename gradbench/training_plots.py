"""Training figures, drawn from the training table and its summary alone.

* ``training_evals_to_target``: evaluations to reach the target against P (median over
  the seeds that reached it, with its interval), each family's fitted slope; beside it
  the share of seeds reaching the target against P (Wilson intervals), where the
  crossovers show.
* ``training_curves``: per size, the median over seeds of the best loss so far ÷ the
  initial loss against evaluations, with the interquartile band: one line per
  optimizer, no single runs; the axis ends at 10⁻⁴ (curves going lower leave it).
* ``training_heldout``: final training loss ÷ initial (axis from 10⁻⁴) and held-out
  accuracy against P.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gradbench import training_analysis as ta  # noqa: E402

CURVE_POINTS = 60
CURVE_FLOOR = 1e-4  # the axis ends here: curves that go lower leave the panel, not pile up
STYLE = {"gradient": "-", "approximate gradient": "--", "stochastic gradient": "-.",
         "gradient-free": ":"}  # fmt: skip
MARKER = {"gradient": "o", "approximate gradient": "s", "stochastic gradient": "D",
          "gradient-free": "^"}  # fmt: skip


def _palette(names) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab20")
    return {name: cmap(i % 20) for i, name in enumerate(sorted(names))}


def _errorbars(ax, x, mid, lo, hi, **style) -> None:
    below, above = np.clip(mid - lo, 0, None), np.clip(hi - mid, 0, None)
    ax.errorbar(x, mid, yerr=[below.fillna(0), above.fillna(0)], capsize=3, **style)


def evals_to_target(summary: pd.DataFrame) -> Figure:
    """Left: evaluations to target vs P, log–log, with family fits. Right: share of
    seeds that reached it vs P."""
    s = ta.tidy(summary)
    palette = _palette(s.label.unique())
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    fits = ta.slopes(summary).set_index("group")
    for name, g in s.sort_values("P").groupby("label"):
        fam, color = g.family.iloc[0], palette[name]
        style = {"color": color, "marker": MARKER[fam], "ls": STYLE[fam], "label": name}
        ok = g[g.reached > 0.5]
        if len(ok):
            _errorbars(left, ok.P, ok.evals_to_target, ok.evals_to_target_lo,
                       ok.evals_to_target_hi, **style)  # fmt: skip
        _errorbars(right, g.P, g.reached, g.reached_lo, g.reached_hi, **style)
    for fam in s.family.unique():
        if fam in fits.index and np.isfinite(fits.slope[fam]):
            _family_line(left, s[(s.family == fam) & (s.reached > 0.5)], fits.loc[fam], fam)
    budget = s.budget_evals.max()
    left.axhline(budget, color="k", lw=0.8, alpha=0.5)
    left.annotate(f"budget {budget:g}", (s.P.min(), budget), va="bottom", fontsize=8)
    left.set(xscale="log", yscale="log", xlabel="parameters P (log)",
             ylabel="forward-pass equivalents to target (log)",
             title=f"Evaluations to reach {ta.TARGET_FRACTION:g} × the initial loss "
             "(median, 95 % interval)")  # fmt: skip
    right.axhline(0.5, color="k", lw=0.8, alpha=0.5)
    right.set(xscale="log", ylim=(-0.05, 1.05), xlabel="parameters P (log)",
              ylabel="share of seeds reaching the target",
              title="Where each optimizer stops reaching it (crossover: share ≤ ½)")  # fmt: skip
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _family_line(ax, rows: pd.DataFrame, fit: pd.Series, fam: str) -> None:
    """The family's fitted slope drawn through the geometric mean of its points."""
    x = np.log10(rows.P.astype(float))
    y = np.log10(rows.evals_to_target.astype(float))
    P = np.geomspace(rows.P.min(), rows.P.max(), 20)
    ax.plot(P, 10 ** (y.mean() + fit.slope * (np.log10(P) - x.mean())), color="k",
            ls=STYLE[fam], lw=2, alpha=0.35,
            label=f"{fam}: slope {fit.slope:.2f} ± {fit.se:.2f}")  # fmt: skip


def _medians(runs: pd.DataFrame, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Median and quartiles over runs of best loss ÷ initial at each evaluation count
    of ``grid`` (each run's best so far is a step function of evaluations)."""
    curves = []
    for _, run in runs.groupby("seed"):
        run = run.dropna(subset=["loss"]).sort_values("evals", kind="stable")
        if not len(run):
            continue
        at = np.searchsorted(run.evals.to_numpy(), grid, side="right") - 1
        values = run.loss.to_numpy()[np.maximum(at, 0)] / run.loss.iloc[0]
        curves.append(np.where(at >= 0, values, np.nan))
    q = np.nanpercentile(np.array(curves), [25, 50, 75], axis=0)
    return q[1], q[0], q[2]


def curves(trajectories: pd.DataFrame) -> Figure:
    """Best loss ÷ initial loss against evaluations, one panel per size: the median
    over seeds with its interquartile band."""
    t = ta.tidy(trajectories)
    sizes = sorted(t.groupby(["P", "N", "L"]).groups)
    cols = min(3, len(sizes))
    rows = -(-len(sizes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4 * rows), squeeze=False)
    palette = _palette(t.label.unique())
    kinds = t.groupby("label")["kind"].first() if "kind" in t else None
    grid = np.geomspace(1, max(2.0, t.evals.max()), CURVE_POINTS)
    for ax, (P, N, L) in zip(axes.flat, sizes, strict=False):
        for name, runs in t[(t.P == P) & (t.N == N) & (t.L == L)].groupby("label"):
            fam = ta.family(kinds[name] if kinds is not None else "", name.partition("/")[2])
            mid, lo, hi = _medians(runs, grid)
            ax.plot(grid, mid, color=palette[name], ls=STYLE[fam], lw=1.4, label=name)
            ax.fill_between(grid, lo, hi, color=palette[name], alpha=0.12, lw=0)
        ax.axhline(ta.TARGET_FRACTION, color="k", lw=0.8, alpha=0.5)
        ax.set(title=f"N={N:.0f}, L={L:.0f} (P={P:.0f})", xscale="log", yscale="log",
               ylim=(CURVE_FLOOR, 1.5),
               xlabel="forward-pass equivalents (log)",
               ylabel="best loss ÷ initial loss (log)")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(sizes) :]:
        ax.axis("off")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle("Training at equal evaluation budgets: median over seeds, interquartile "
                 f"band; the line marks the target ({ta.TARGET_FRACTION:g} × initial)")  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return fig


def heldout(summary: pd.DataFrame) -> Figure:
    """Final training loss ÷ initial (left) and held-out accuracy (right) against P."""
    s = ta.tidy(summary)
    palette = _palette(s.label.unique())
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    for name, g in s.sort_values("P").groupby("label"):
        fam = g.family.iloc[0]
        style = {"color": palette[name], "marker": MARKER[fam], "ls": STYLE[fam], "label": name}
        scale = g.initial_loss
        _errorbars(left, g.P, g.final_loss / scale, g.final_loss_lo / scale,
                   g.final_loss_hi / scale, **style)  # fmt: skip
        _errorbars(right, g.P, g.test_accuracy, g.test_accuracy_lo, g.test_accuracy_hi, **style)
    left.set(xscale="log", yscale="log", xlabel="parameters P (log)", ylim=(CURVE_FLOOR, 1.5),
             ylabel="final training loss ÷ initial (log; under 10⁻⁴ off the axis)",
             title="Training loss at the budget (median, 95 % interval)")  # fmt: skip
    right.set(xscale="log", xlabel="parameters P (log)", ylabel="held-out accuracy",
              title="Held-out accuracy at the best θ (median, 95 % interval)")  # fmt: skip
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def draw_all(trajectories: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> list[Path]:
    """Every training figure as PNG and SVG in ``folder``; returns the PNG paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "training_evals_to_target": lambda: evals_to_target(summary),
        "training_curves": lambda: curves(trajectories),
        "training_heldout": lambda: heldout(summary),
    }
    paths = []
    for name, draw in figures.items():
        fig = draw()
        for ext in ("png", "svg"):
            fig.savefig(folder / f"{name}.{ext}", dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(folder / f"{name}.png")
    return paths
