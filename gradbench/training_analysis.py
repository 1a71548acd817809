"""Training results, summarised: per run, per optimizer and size, crossovers and slopes.

Pure pandas and numpy, reading only the training table (``training.csv``), so the report
can be redrawn from the CSV alone.

* **Target**: a tenth of the run's initial training loss, ``TARGET_FRACTION · L(θ₀)``.
  Every optimizer starts from the same θ₀ at a given size and seed, so all share the
  target; it asks for real fitting (the initial cross-entropy is about ln N), and the
  tracker records the exact evaluation count at which the best loss first crosses it.
* **Evaluations to target**: per run, the forward-pass equivalents spent when the best
  loss first reached the target; per optimizer and size, the median over the seeds that
  reached it, with the share of seeds that did.
* **Intervals** over seeds: for a median, the distribution-free order-statistic interval
  [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] with coverage ≥ 95 % (k from the Binomial(n, ½) tail; with n = 10
  seeds it is [x₍₂₎, x₍₉₎], 97.9 %); for a share, Wilson's 95 % score interval.
* **Crossover P** of an optimizer: the smallest P at which it no longer reaches the
  target in a majority of seeds.
* **Slopes**: log₁₀(evaluations to target) against log₁₀ P, over the sizes where the
  majority reached the target; per optimizer, and per family with one intercept per
  optimizer (theory: about 0 for exact gradients, 1 for zeroth-order search).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TARGET_FRACTION = 0.1
LEVEL = 0.95
Z95 = 1.959963984540054
RUN = ["optimizer", "gradient_method", "N", "L", "P", "seed"]
CELL = ["optimizer", "gradient_method", "N", "L", "P"]
FAMILIES = ("gradient", "approximate gradient", "stochastic gradient", "gradient-free")


def label(optimizer: str, method: str) -> str:
    """'gd/backprop', or 'powell' for a gradient-free optimizer."""
    return f"{optimizer}/{method}" if method else optimizer


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a ``label`` column; gradient_method and kind, read back from CSV
    as NaN for gradient-free runs, as ''."""
    out = frame.assign(gradient_method=frame.gradient_method.fillna(""))
    if "kind" in out:
        out["kind"] = out.kind.fillna("")
    out["label"] = [label(o, m) for o, m in zip(out.optimizer, out.gradient_method, strict=True)]
    return out


def family(kind: str, method: str) -> str:
    """'gradient' (exact), 'approximate gradient', 'stochastic gradient', 'gradient-free'."""
    if not method:
        return "gradient-free"
    return "gradient" if kind in ("exact", "") else f"{kind} gradient"


# -- intervals ---------------------------------------------------------------------------------


def median_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(median, lo, hi): the order-statistic interval of the median, coverage ≥ level
    (the whole range when there are too few values for that coverage)."""
    x = np.asarray(values, dtype=float)
    x = np.sort(x[~np.isnan(x)])
    n = len(x)
    if not n:
        return math.nan, math.nan, math.nan
    tail, k = 0.0, 0
    while k < n // 2:  # P(Bin(n, ½) ≤ k) ≤ (1 − level)/2 → x₍ₖ₊₁₎ is a safe lower bound
        tail += math.comb(n, k) / 2**n
        if tail > (1 - level) / 2:
            break
        k += 1
    k = max(k, 1)
    return float(np.median(x)), float(x[k - 1]), float(x[n - k])


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95 % score interval for a share successes/n."""
    if not n:
        return math.nan, math.nan
    p, z2 = successes / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# -- per run and per cell ----------------------------------------------------------------------


def runs(trajectories: pd.DataFrame) -> pd.DataFrame:
    """One row per run: initial and final loss, accuracies, held-out metrics, evaluations
    and time spent, the target, evaluations to reach it (NaN if never), mean cosine."""
    # pandas sorts on several columns stably: the final point stays last
    t = tidy(trajectories).sort_values(RUN + ["evals"])
    groups = t.groupby(RUN)
    first = groups.head(1).set_index(RUN)
    last = groups.tail(1).set_index(RUN)
    out = last.drop(columns=["loss"]).assign(initial_loss=first["loss"], final_loss=last["loss"])
    out["target_loss"] = TARGET_FRACTION * out.initial_loss
    hit = t.join(out.target_loss, on=RUN)
    hit = hit[hit.loss <= hit.target_loss]
    out["evals_to_target"] = hit.groupby(RUN)["evals"].min()
    out["reached"] = out.evals_to_target.notna()
    if "cosine" in t:
        out["cosine"] = groups["cosine"].mean()
    return out.reset_index()


def summarize(trajectories: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and size, over seeds: medians with their intervals (final training
    loss, held-out loss and accuracy, evaluations to target), the share of seeds reaching
    the target with its interval, and the run settings."""
    per_run = runs(trajectories)
    rows = [_cell(key, group) for key, group in per_run.groupby(CELL, sort=False)]
    summary = pd.DataFrame(rows)
    return summary.sort_values(["P", "family", "optimizer", "gradient_method"]).reset_index(
        drop=True
    )


def _cell(key: tuple, g: pd.DataFrame) -> dict:
    row = dict(zip(CELL, key, strict=True))
    ok = g[g.status == "ok"]
    kind = str(g["kind"].iloc[0]) if "kind" in g else ""
    row |= {
        "label": label(row["optimizer"], row["gradient_method"]),
        "family": family(kind, row["gradient_method"]),
        "seeds": len(g),
        "errors": int((g.status != "ok").sum()),
        "reason": "; ".join(sorted(set(g.loc[g.status != "ok", "reason"].astype(str)))),
    }
    for column, name in (
        ("final_loss", "final_loss"),
        ("accuracy", "final_accuracy"),
        ("test_loss", "test_loss"),
        ("test_accuracy", "test_accuracy"),
        ("evals_to_target", "evals_to_target"),
    ):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = median_interval(ok[column])
    reached = int(ok.reached.sum())
    row["reached"] = reached / len(g)
    row["reached_lo"], row["reached_hi"] = wilson(reached, len(g))
    for column in ("initial_loss", "target_loss", "evals", "wall_s", "cosine"):
        row[column] = float(ok[column].median()) if column in ok else math.nan
    for column in ("budget_evals", "lr", "n_train", "n_test"):
        row[column] = g[column].iloc[0] if column in g else math.nan
    return row


# -- what the report states ------------------------------------------------------------------


def crossovers(summary: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer: the largest P at which a majority of seeds reached the target and
    the crossover P, the smallest P at which a majority did not (NaN: reached at every
    size tried, or never)."""
    s = tidy(summary)
    rows = []
    for name, g in s.groupby("label", sort=False):
        majority = g.reached > 0.5
        rows.append(
            {
                "optimizer": name,
                "family": g.family.iloc[0],
                "largest_P_reached": g.P[majority].max(),  # NaN when there is none
                "crossover_P": g.P[~majority].min(),
            }
        )
    out = pd.DataFrame(rows, columns=["optimizer", "family", "largest_P_reached", "crossover_P"])
    return out.sort_values(["family", "optimizer"]).reset_index(drop=True)


def slopes(summary: pd.DataFrame) -> pd.DataFrame:
    """Fitted growth of evaluations to target with P: per optimizer (``group`` = its
    label) and per family (one intercept per optimizer), over the sizes where a
    majority of seeds reached the target. Columns: group, family, slope, se, sizes."""
    s = tidy(summary)
    s = s[(s.reached > 0.5) & (s.evals_to_target > 0)]
    rows = [
        {"group": name, "family": g.family.iloc[0], **_fit(g, "label")}
        for name, g in s.groupby("label", sort=False)
    ]
    rows += [{"group": fam, "family": fam, **_fit(g, "label")} for fam, g in s.groupby("family")]
    return pd.DataFrame(rows, columns=["group", "family", "slope", "se", "sizes"])


def _fit(g: pd.DataFrame, by: str) -> dict:
    """Least squares of log₁₀ evals on log₁₀ P with one intercept per ``by`` group:
    slope = Σx̃ỹ / Σx̃² on values centred within groups; se from the residuals."""
    x = np.log10(g.P.astype(float))
    y = np.log10(g.evals_to_target.astype(float))
    xc = x - x.groupby(g[by]).transform("mean")
    yc = y - y.groupby(g[by]).transform("mean")
    sxx = float((xc * xc).sum())
    dof = len(g) - g[by].nunique() - 1
    if sxx == 0 or len(g) < 2:
        return {"slope": math.nan, "se": math.nan, "sizes": len(g)}
    slope = float((xc * yc).sum()) / sxx
    rss = float(((yc - slope * xc) ** 2).sum())
    se = math.sqrt(rss / dof / sxx) if dof > 0 else math.nan
    return {"slope": slope, "se": se, "sizes": len(g)}


def layerwise(summary: pd.DataFrame) -> pd.DataFrame:
    """The student's layer-wise update beside gd/backprop, per size: final training loss
    (median over seeds) of each, their ratio, and the median cosine between the
    layer-wise gradient and the whole gradient."""
    s = tidy(summary)
    whole = s[(s.optimizer == "gd") & (s.gradient_method == "backprop")].set_index(["N", "L", "P"])
    lw = s[(s.optimizer == "gd-layerwise") & (s.gradient_method == "backprop")]
    lw = lw.set_index(["N", "L", "P"])
    out = pd.DataFrame(
        {
            "gd_loss": whole.final_loss,
            "layerwise_loss": lw.final_loss,
            "gd_test_accuracy": whole.test_accuracy,
            "layerwise_test_accuracy": lw.test_accuracy,
            "cosine": lw.cosine,
        }
    ).dropna(subset=["gd_loss", "layerwise_loss"])
    out["loss_ratio"] = out.layerwise_loss / out.gd_loss
    return out.reset_index()
