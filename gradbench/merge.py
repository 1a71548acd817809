"""``gradbench merge DIR… --out DIR``: results from several machines in one table.

A row is identified by its cell and configuration (the sweep's key) and the fingerprint
of the machine that measured it, so rows of different machines sit side by side in one
gradients.csv. The same row given twice (one folder named twice, a merged folder merged
again) is kept once; two different rows with one identity — one cell measured twice on
one machine — are refused in one line, for the user to choose the run to keep. The merged
folder gets MACHINES.md, a section per machine (:mod:`gradbench.machines`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradbench import machines
from gradbench.cluster import COLUMNS
from gradbench.errors import GradbenchError
from gradbench.results import GRADIENT_COLUMNS, read_table, write_atomic, write_text_atomic
from gradbench.sweep import KEY

IDENTITY = KEY


def combine(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The rows of every table (by folder name) in one, each identity once; a conflicting
    duplicate raises GradbenchError naming the cell, the machine and both folders."""
    both = pd.concat(
        [t.reindex(columns=COLUMNS).assign(_folder=f) for f, t in tables.items()],
        ignore_index=True,
    )
    both["fingerprint"] = both["fingerprint"].fillna(machines.UNKNOWN)
    unique = both.drop_duplicates(subset=COLUMNS)
    clash = unique[unique.duplicated(IDENTITY, keep=False)]
    if not clash.empty:
        first = clash.iloc[0]
        same = (clash[IDENTITY].fillna("") == first[IDENTITY].fillna("")).all(axis=1)
        where = clash[same]["_folder"].unique()
        raise GradbenchError(
            f"{first.method} at N={first.N}, L={first.L} on machine {first.fingerprint} "
            f"differs between {' and '.join(where) if len(where) > 1 else where[0]}: "
            "merge only one run of each machine"
        )
    merged = unique.drop(columns="_folder")
    return merged.sort_values(["fingerprint", "P", "N", "method"], kind="stable")


def merge(folders: list[Path], out: Path) -> pd.DataFrame:
    """Merge the gradients.csv of ``folders`` into ``out``/gradients.csv and write
    ``out``/MACHINES.md. A table already in ``out`` must be one of the inputs."""
    out = Path(out)
    inputs = [Path(f).resolve() for f in folders]
    if (out / "gradients.csv").exists() and out.resolve() not in inputs:
        raise GradbenchError(
            f"{out / 'gradients.csv'} exists: name {out} among the folders to merge into it, "
            "or choose another --out"
        )
    tables = {str(f): read_table(Path(f) / "gradients.csv", GRADIENT_COLUMNS) for f in folders}
    merged = combine(tables)
    write_atomic(merged, out / "gradients.csv")
    write_text_atomic(machines.section(merged) + "\n", out / "MACHINES.md")
    return merged
