"""What the report and the figures say, computed from the result tables alone.

Pure pandas on the tidy frames: which rows describe one machine and one configuration,
which family each method belongs to, the paired ratios with their intervals, the cells
that went wrong, the targets the report checks. Plots and the report import this module;
it imports neither the training code nor scipy.optimize, nor matplotlib.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradbench.errors import GradbenchError
from gradbench.results import read_table

DATA_FILE = Path(__file__).with_name("report.toml")
REFERENCE_KIND = "reference"  # the shared forward pass and the matmul floor: not methods
FORWARD = "forward"
# Statuses in the order the report lists them: wrong results first, then failures.
STATUSES = ("ok", "wrong", "crashed", "error", "timeout", "skipped")
NOT_OK_ORDER = ("wrong", "crashed", "error", "timeout", "skipped")
# Every column the report reads; those absent from an older CSV are filled with NaN.
REQUIRED = ["method", "kind", "N", "L", "P", "time_median_s"]
OPTIONAL = [
    "B", "dtype", "activation", "loss", "bias", "seed", "reason", "projected_s",
    "forward_time_s", "ratio_to_forward", "ratio_to_forward_lo", "ratio_to_forward_hi",
    "ratio_to_backprop", "ratio_to_backprop_lo", "ratio_to_backprop_hi",
    "ratio_to_floor", "ratio_to_floor_lo", "ratio_to_floor_hi", "pairs", "loss_evals",
    "grad_error", "grad_error_mean", "cosine", "tolerance", "prepare_s",
    "memory_model_bytes", "projected_bytes", "peak_rss_bytes", "allocator_bytes",
    "peak_mem_bytes",
    "ops_forward", "ops_derivatives", "ops_cse", "layer_steps", "budget_s",
    "run_id", "timestamp", "fingerprint", "machine", "numpy", "blas_threads", "gradbench",
]  # fmt: skip
# What makes two cells one configuration (besides the method and the size).
CONFIGURATION = ["B", "dtype", "activation", "loss", "bias", "seed"]


# ---------------------------------------------------------------- reading and selecting


def load_gradients(path: Path) -> pd.DataFrame:
    """gradients.csv with every column the report reads (NaN where an older file lacks
    one); refused with one line when corrupt or carrying a status the report does not
    know (checked here, so that a newer sweep's statuses are read by this report)."""
    frame = read_table(path, REQUIRED)
    if "status" not in frame:
        raise GradbenchError(f"{path} is corrupt or not a gradbench table: no column 'status'")
    unknown = sorted(set(frame.status.astype(str)) - set(STATUSES))
    if unknown:
        raise GradbenchError(f"{path} is corrupt or truncated: status {unknown[0]!r} in a row")
    return load_gradients_frame(frame)


def load_gradients_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every column the report reads, NaN where absent."""
    return frame.reindex(
        columns=list(dict.fromkeys(REQUIRED + ["status"] + OPTIONAL + list(frame)))
    )


def machine_key(g: pd.DataFrame) -> str:
    """The column naming the machine: the fingerprint where recorded, else the CPU name."""
    return "fingerprint" if g["fingerprint"].notna().any() else "machine"


def latest_machine(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of the machine (fingerprint) of the most recent row: a report describes
    one machine only."""
    key = machine_key(g)
    when = pd.to_datetime(g["timestamp"], errors="coerce", utc=True)
    last = g.loc[when.idxmax(), key] if when.notna().any() else g[key].iloc[-1]
    return g[g[key].astype(str) == str(last)]


def main_configuration(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of the configuration (B, dtype, activation, loss, bias, seed) with the most
    cells: the time tables and fits never mix configurations."""
    keys = g[CONFIGURATION].astype(str).agg("|".join, axis=1)
    return g[keys == keys.value_counts().index[0]]


def unavailable(g: pd.DataFrame) -> pd.Series:
    """True for rows of a method that could not be loaded (a missing optional package)."""
    return g["reason"].astype("string").fillna("").str.startswith("unavailable").astype(bool)


def methods_only(g: pd.DataFrame) -> pd.DataFrame:
    """Gradient methods' rows: no reference timings (forward, floor), no unavailable method."""
    return g[(g.kind != REFERENCE_KIND) & ~unavailable(g)]


def measured(g: pd.DataFrame) -> pd.DataFrame:
    """Cells with a trusted time: status ok, method rows only."""
    return methods_only(g[g.status == "ok"])


# ---------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    colour: str
    methods: tuple[str, ...]
    theory_slope: float | None = None


@dataclass(frozen=True)
class Presentation:
    """report.toml: the families in display order, the kind → family fallback, the
    headline method per family, and the targets."""

    families: tuple[Family, ...]
    kinds: dict[str, str]
    headline: dict[str, str]
    targets: tuple[dict, ...] = field(default_factory=tuple)
    memory: dict = field(default_factory=dict)

    def family_of(self, method: str, kind: str) -> Family:
        """The family listing ``method``; a method listed nowhere goes by its kind."""
        for f in self.families:
            if method in f.methods:
                return f
        return self.by_name(self.kinds.get(str(kind), "other"))

    def by_name(self, name: str) -> Family:
        return next(f for f in self.families if f.name == name)

    def memory_model(self, method: str, kind: str) -> str | None:
        """The name of the memory theory for ``method`` (None: no model stated)."""
        by_method = self.memory.get("methods", {})
        if method in by_method:
            return by_method[method]
        return self.memory.get("families", {}).get(self.family_of(method, kind).name)


def load_presentation(path: Path = DATA_FILE) -> Presentation:
    doc = tomllib.loads(Path(path).read_text())
    families = tuple(
        Family(f["name"], f["label"], f["colour"], tuple(f["methods"]), f.get("theory_slope"))
        for f in doc["family"]
    )
    return Presentation(
        families, doc["kinds"], doc["headline"], tuple(doc.get("target", ())), doc.get("memory", {})
    )


# How the activations a memory model keeps grow with L: L, √L or one layer's
MEMORY_EXPONENT = {"activations": 1.0, "checkpoint": 0.5, "layer": 0.0}


def memory_theory(model: str, N, L, B, P):
    """Numbers one gradient keeps beyond θ and the data, by the named model:
    activations L·B·N + P, checkpoint √L·B·N + P, layer B·N + P (works on arrays)."""
    return L ** MEMORY_EXPONENT[model] * B * N + P


def theory_slope(method: str, kind: str, pres: Presentation) -> float:
    """The family's theoretical slope of log(time ÷ forward) against log P (NaN: none)."""
    slope = pres.family_of(method, kind).theory_slope
    return math.nan if slope is None else float(slope)


# ---------------------------------------------------------------- ratios and intervals


@dataclass(frozen=True)
class Interval:
    """A value and its 95 % interval (NaN bounds: not paired, no interval recorded)."""

    value: float
    lo: float = math.nan
    hi: float = math.nan

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))


def ratio(row: pd.Series, column: str) -> Interval:
    """``column`` of one cell with its paired interval ``column_lo`` … ``column_hi``."""
    return Interval(
        float(row[column]),
        float(row.get(f"{column}_lo", np.nan)),
        float(row.get(f"{column}_hi", np.nan)),
    )


def reference_size(g: pd.DataFrame) -> tuple[int, int]:
    """The (N, L) where the most methods were measured, the largest P among ties."""
    ok = measured(g)
    counts = ok.groupby(["N", "L"]).agg(n=("method", "nunique"), P=("P", "first")).reset_index()
    best = counts.sort_values(["n", "P"]).iloc[-1]
    return int(best.N), int(best.L)


def largest_cell(g: pd.DataFrame, method: str) -> pd.Series | None:
    """The measured cell of ``method`` with the largest P (deepest among equal P)."""
    mine = measured(g)[lambda d: d.method == method]
    return None if mine.empty else mine.sort_values(["P", "L"]).iloc[-1]


def extremes(g: pd.DataFrame, methods: list[str], N: int, L: int) -> tuple[str, str] | None:
    """(fastest, slowest) of ``methods`` measured at (N, L), by time per gradient."""
    at = measured(g)[lambda d: (d.N == N) & (d.L == L) & d.method.isin(methods)]
    if at.empty:
        return None
    order = at.sort_values("time_median_s").method
    return str(order.iloc[0]), str(order.iloc[-1])


# ---------------------------------------------------------------- cells not measured


def not_ok(g: pd.DataFrame) -> pd.DataFrame:
    """Cells that are not ``ok`` (unavailable methods excepted), wrong results first,
    then crashed, error, timeout and skipped; by method and P within each."""
    bad = methods_only(g[g.status != "ok"])
    rank = bad.status.map({s: i for i, s in enumerate(NOT_OK_ORDER)})
    return bad.assign(_rank=rank).sort_values(["_rank", "method", "P"]).drop(columns="_rank")


def status_counts(g: pd.DataFrame) -> dict[str, int]:
    """How many method cells of each status, in report order (zero counts left out)."""
    counts = methods_only(g).status.value_counts()
    return {s: int(counts[s]) for s in STATUSES if s in counts}


def unavailable_methods(g: pd.DataFrame) -> dict[str, str]:
    """Method → reason for every method that could not be loaded."""
    rows = g[unavailable(g)].drop_duplicates("method")
    return dict(zip(rows.method, rows.reason.astype(str), strict=True))


# ---------------------------------------------------------------- targets


def check_target(g: pd.DataFrame, target: dict) -> dict:
    """One target against the measured cells: met / missed (where) / not measured.

    The ratio checked at each size is ``method ÷ min(others)`` on ``column`` (or, with no
    ``others``, the value of ``column`` itself), required ≤ ``at_most``; only sizes with
    N ≥ ``min_N`` and P ≤ ``max_P`` count."""
    ok = measured(g)
    ok = ok[(ok.N >= target.get("min_N", 0)) & (ok.P <= target.get("max_P", math.inf))]
    column, others = target["column"], target.get("others", [])
    mine = ok[ok.method == target["method"]].set_index(["N", "L"])[column]
    if others:
        best = ok[ok.method.isin(others)].groupby(["N", "L"])[column].min()
        value = (mine / best).dropna()
    else:
        value = mine.dropna()
    if value.empty:
        return {"target": target["name"], "result": "not measured", "missed at": "–", "worst": None}
    missed = value[value > target["at_most"]]
    where = ", ".join(f"N={N} L={L}" for N, L in missed.index) or "–"
    result = "met at every size" if missed.empty else f"missed at {len(missed)} of {len(value)}"
    return {
        "target": target["name"],
        "result": result,
        "missed at": where,
        "worst": float(value.max()),
    }


def check_targets(g: pd.DataFrame, targets: tuple[dict, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [check_target(g, t) for t in targets], columns=["target", "result", "missed at", "worst"]
    )
