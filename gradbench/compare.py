"""Two results folders side by side, cell by cell (``gradbench compare A B``).

Users compare machines, or two runs on one machine. A cell is compared when it was
measured (``ok`` or ``wrong``) in both, at the same method, N, L and configuration (B,
dtype, activation, loss, bias, seed) — never a float64 cell with a float32 one. Per cell:

* ``time_ratio`` = time_B / time_A (absolute times: a machine comparison);
* ``ratio_to_forward`` of each, and ``change`` = r_B / r_A (paired ratios: what should
  reproduce on one machine);
* ``overlap``: whether the two 95 % intervals of ratio_to_forward overlap;
* ``within``: whether |change − 1| ≤ 10 %.

The last line gives the share of cells within ±10 % and the worst cell, by the factor
max(change, 1/change). The forward cells themselves (ratio 1 by definition) are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradbench.errors import GradbenchError
from gradbench.results import read_table

KEY = ["method", "N", "L", "B", "dtype", "activation", "loss", "bias", "seed"]
MEASURED = ("ok", "wrong")
TOLERANCE = 0.10
VALUES = ["P", "time_median_s", "ratio_to_forward", "ratio_to_forward_lo", "ratio_to_forward_hi"]
FORWARD = "forward"


def load(folder: Path) -> pd.DataFrame:
    """The measured rows of ``folder/gradients.csv`` (one line and exit 2 if unreadable)."""
    path = Path(folder) / "gradients.csv"
    if not Path(folder).is_dir():
        raise GradbenchError(f"not a results folder: {folder}")
    frame = read_table(path, [*KEY, "status", "time_median_s", "ratio_to_forward"])
    frame = frame.reindex(columns=[*KEY, "status", *VALUES])
    return frame[frame.status.isin(MEASURED) & (frame.method != FORWARD)]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per cell measured in both, with the columns of the module docstring."""
    both = a.merge(b, on=KEY, suffixes=("_a", "_b"))
    if both.empty:
        raise GradbenchError("no cell was measured in both folders at the same configuration")
    change = both.ratio_to_forward_b / both.ratio_to_forward_a
    overlap = (both.ratio_to_forward_lo_a <= both.ratio_to_forward_hi_b) & (
        both.ratio_to_forward_lo_b <= both.ratio_to_forward_hi_a
    )
    bounds = both[[f"ratio_to_forward_{s}_{f}" for s in ("lo", "hi") for f in "ab"]]
    return pd.DataFrame(
        {
            **{k: both[k] for k in KEY},
            "P": both.P_a,
            "time_a_s": both.time_median_s_a,
            "time_b_s": both.time_median_s_b,
            "time_ratio": both.time_median_s_b / both.time_median_s_a,
            "ratio_to_forward_a": both.ratio_to_forward_a,
            "ratio_to_forward_b": both.ratio_to_forward_b,
            "change": change,
            "overlap": overlap.where(bounds.notna().all(axis=1)),
            "within": (change - 1).abs() <= TOLERANCE,
        }
    ).sort_values(["P", "method"], kind="stable", ignore_index=True)


def summary(table: pd.DataFrame) -> str:
    """The last line: share within ±10 % and the worst cell."""
    factor = np.maximum(table.change, 1 / table.change)
    worst = table.loc[factor.idxmax()]
    share = table.within.mean()
    return (
        f"{share:.0%} of {len(table)} cells within ±{TOLERANCE:.0%} of ratio_to_forward; "
        f"worst: {worst.method} N={worst.N} L={worst.L} {worst['dtype']} "
        f"({worst.ratio_to_forward_a:.3g} → {worst.ratio_to_forward_b:.3g}, "
        f"×{factor.max():.3g})"
    )


def render(table: pd.DataFrame) -> str:
    """The table as text, then the summary line."""
    shown = table.drop(columns=["B", "activation", "loss", "bias", "seed"])
    text = shown.to_string(index=False, float_format=lambda x: f"{x:.3g}", na_rep="–")
    return f"{text}\n{summary(table)}"
