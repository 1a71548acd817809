"""Several machines in one results table, side by side and never pooled.

Timings from different machines are different measurements: a laptop's seconds and a
server's do not average, and a scaling law fitted to rows of several machines describes
none of them. A table with several fingerprints (a cluster run over unlike nodes, or
``gradbench merge`` of folders from different computers) therefore gets one block per
machine — what it is and what it measured — and one table of ratios side by side, where
each ratio (gradient time ÷ forward-pass time, both timed on that machine) is read
within its own column. Nothing here fits a law; fits are made per machine or not at all.
"""

from __future__ import annotations

import math

import pandas as pd

UNKNOWN = "unknown"  # rows without a fingerprint (a unit lost with its worker)
CONFIGURATION = ["B", "dtype", "activation", "loss", "bias", "seed"]


def by_machine(gradients: pd.DataFrame) -> pd.DataFrame:
    """One row per fingerprint: CPU, numpy, BLAS threads, runs and cells by status."""
    g = gradients.assign(fingerprint=gradients["fingerprint"].fillna(UNKNOWN))
    rows = []
    for fingerprint, rows_of in g.groupby("fingerprint", sort=False):
        counts = rows_of["status"].value_counts()
        rows.append({
            "fingerprint": fingerprint,
            "machine": _values(rows_of["machine"]),
            "numpy": _values(rows_of["numpy"]),
            "blas_threads": _values(rows_of["blas_threads"]),
            "runs": _values(rows_of["run_id"]),
            "cells": ", ".join(f"{n} {status}" for status, n in counts.items()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def side_by_side(gradients: pd.DataFrame, value: str = "ratio_to_forward") -> pd.DataFrame:
    """``value`` of every measured cell, one column per fingerprint, one row per cell
    (method, N, L, and the configuration columns that differ between rows). The
    interval's bounds follow the value where the table has them (``value_lo``/``_hi``)."""
    g = gradients[(gradients["status"] == "ok") & (gradients["method"] != "forward")]
    g = g.assign(fingerprint=g["fingerprint"].fillna(UNKNOWN), shown=_shown(g, value))
    cell = ["method", "N", "L", *(c for c in CONFIGURATION if gradients[c].nunique() > 1)]
    g = g.drop_duplicates([*cell, "fingerprint"], keep="last")
    wide = g.pivot(index=["P", *cell], columns="fingerprint", values="shown")
    wide = wide.reindex(columns=list(dict.fromkeys(g["fingerprint"])))
    return wide.fillna("–").reset_index().drop(columns="P").rename_axis(columns=None)


def section(gradients: pd.DataFrame) -> str:
    """The report's Markdown for a table of one or more machines: a block per machine,
    then their ratios side by side."""
    from gradbench.report import table  # report.build calls this section: import it late

    machines = by_machine(gradients)
    lines = [
        "## Machines",
        "",
        f"{len(machines)} machine(s) measured these results, each named by its fingerprint "
        "(CPU and instruction set, cores, BLAS and its threads, Python, numpy and gradbench "
        "versions). Each machine's numbers stand on their own: ratios are compared column "
        "by column, and no law is fitted across machines.",
    ]
    for m in machines.itertuples(index=False):
        lines += [
            "",
            f"### Machine `{m.fingerprint}`",
            "",
            f"- CPU: {m.machine}",
            f"- numpy {m.numpy}, BLAS threads {m.blas_threads}",
            f"- runs: {m.runs}",
            f"- cells: {m.cells}",
        ]
    lines += [
        "",
        "### Gradient time ÷ forward-pass time, machine by machine",
        "",
        "Both times from the same machine; one column per fingerprint (– where that "
        "machine did not measure the cell).",
        "",
        table(side_by_side(gradients)),
    ]
    return "\n".join(lines)


def _shown(g: pd.DataFrame, value: str) -> pd.Series:
    """Each value with three significant digits, and its interval where one is on file."""
    lo, hi = (g.get(f"{value}_{end}", pd.Series(math.nan, index=g.index)) for end in ("lo", "hi"))
    return pd.Series(
        [
            f"{v:.3g}" + ("" if pd.isna(a) or pd.isna(b) else f" [{a:.3g}, {b:.3g}]")
            for v, a, b in zip(g[value], lo, hi, strict=True)
        ],
        index=g.index,
        dtype=object,
    )


def _values(column: pd.Series) -> str:
    """The distinct values, in order of appearance (whole numbers without a '.0')."""
    shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in column.dropna()]
    return ", ".join(dict.fromkeys(shown)) or "–"
