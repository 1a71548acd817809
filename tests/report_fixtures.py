"""Hand-made result tables with known laws, for the analysis, fits, plots, predict and
report tests: every status, an unavailable method, a plugin, a second machine, the
second wave's columns (paired intervals, memory, expression sizes)."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd

B = 64
NS = (4, 8, 16, 32, 64, 128, 256, 512)
LS = (1, 2, 4)
BUDGET = 2.0
# ratio_to_forward of each method as a function of P (the law the fits must recover)
LAWS = {
    "backprop": ("exact", lambda P: 3.0 + 0 * P),
    "backprop-checkpoint": ("exact", lambda P: 4.0 + 0 * P),
    "fd-central": ("approximate", lambda P: 2.0 * P),
    "scipy-fprime": ("approximate", lambda P: 6.0 * P),
    "forward-mode": ("exact", lambda P: 0.5 * P),
    "spsa": ("stochastic", lambda P: 3.5 + 0 * P),
    "my-plugin": ("approximate", lambda P: 10.0 + 0 * P),
}
MEMORY = {"backprop": "activations", "backprop-checkpoint": "checkpoint", "fd-central": "layer"}


def forward_time(P: int, L: int) -> float:
    """A per-layer dispatch of 15 µs plus 4 ns per weight."""
    return 15e-6 * L + 4e-9 * P


def _base(N: int, L: int, fingerprint: str = "fp-new", day: int = 28) -> dict:
    return {
        "N": N, "L": L, "P": L * (N * N + N), "B": B, "dtype": "float64",
        "activation": "tanh", "loss": "cross_entropy", "bias": True, "seed": 0,
        "budget_s": BUDGET, "run_id": f"run-{fingerprint}", "fingerprint": fingerprint,
        "timestamp": f"2026-11-{day}T10:{N % 60:02d}:00+00:00", "machine": "Test CPU",
        "numpy": "2.0", "blas_threads": 1, "gradbench": "0.2.0",
    }  # fmt: skip


def gradients(seed: int = 0) -> pd.DataFrame:
    """The fixture gradients.csv: ok cells following LAWS with 3 % noise and paired
    intervals ±5 %, skipped cells past the budget, one wrong, error, crashed and timeout
    cell, an unavailable method, and a few rows of another (older) machine."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in NS:
        for L in LS:
            base = _base(N, L)
            P = base["P"]
            fwd = forward_time(P, L)
            rows.append(base | {"method": "forward", "kind": "reference", "status": "ok",
                                "time_median_s": fwd, "loss_evals": 1.0})  # fmt: skip
            back = 3.0 * fwd
            for method, (kind, law) in LAWS.items():
                r = float(law(P)) * float(np.exp(rng.normal(0, 0.03)))
                t = r * fwd
                row = base | {"method": method, "kind": kind, "loss_evals": float(law(P))}
                if t > BUDGET:
                    why = f"projected {t:.3g} s > budget {BUDGET:g} s"
                    rows.append(row | {"status": "skipped", "projected_s": t, "reason": why})
                    continue
                model = MEMORY.get(method, "layer")
                layers = {"activations": L, "checkpoint": np.sqrt(L), "layer": 1}[model]
                rows.append(
                    row | {
                        "status": "ok", "time_median_s": t, "forward_time_s": fwd,
                        "ratio_to_forward": r, "ratio_to_forward_lo": 0.95 * r,
                        "ratio_to_forward_hi": 1.05 * r, "ratio_to_backprop": t / back,
                        "ratio_to_backprop_lo": 0.95 * t / back,
                        "ratio_to_backprop_hi": 1.05 * t / back, "pairs": 9,
                        "grad_error": 0.0 if kind == "exact" else 1e-9, "tolerance": 1e-6,
                        "cosine": 1.0 if kind != "stochastic" else 1 / np.sqrt(P),
                        "peak_rss_bytes": 1.2 * 8 * (layers * B * N + P),
                        "memory_model_bytes": 8 * (layers * B * N + P),
                        "ratio_to_floor": 1.1 if method == "backprop" else np.nan,
                        "prepare_s": 1e-3,
                    }
                )  # fmt: skip
            if P <= 72:
                ops_fwd = 12.0 * P
                rows.append(
                    base | {
                        "method": "symbolic-cse", "kind": "exact", "status": "ok",
                        "time_median_s": 5 * fwd, "forward_time_s": fwd, "ratio_to_forward": 5.0,
                        "ratio_to_forward_lo": 4.8, "ratio_to_forward_hi": 5.2,
                        "ratio_to_backprop": 5 / 3, "ops_forward": ops_fwd,
                        "ops_derivatives": ops_fwd * P**1.5, "ops_cse": ops_fwd * 1.3,
                        "prepare_s": 1e-3 * P**2, "grad_error": 0.0,
                    }
                )  # fmt: skip
            rows.append(base | {"method": "torch-backprop", "kind": "exact", "status": "error",
                                "reason": "unavailable: No module named 'torch'"})  # fmt: skip
    first = _base(4, 1)
    rows += [
        first | {"method": "fd-central", "kind": "approximate", "status": "wrong",
                 "time_median_s": 1e-4, "grad_error": 3e-3, "tolerance": 1e-6,
                 "ratio_to_forward": 2.0, "N": 8, "L": 4, "P": 288},
        first | {"method": "broken", "kind": "approximate", "status": "error",
                 "reason": "RuntimeError: boom"},
        first | {"method": "crashy", "kind": "exact", "status": "crashed",
                 "reason": "worker died (signal 9)"},
        first | {"method": "slowpoke", "kind": "exact", "status": "timeout",
                 "reason": "stopped after 20 s"},
    ]  # fmt: skip
    for N in (8, 16):  # an older machine: must never appear in the report
        old = _base(N, 1, fingerprint="fp-old", day=1)
        rows.append(old | {"method": "backprop", "kind": "exact", "status": "ok",
                           "time_median_s": 777.0, "ratio_to_forward": 777.0})  # fmt: skip
    frame = pd.DataFrame(rows)
    # the wrong cell replaces fd-central's ok cell at N=8, L=4
    dup = (frame.method == "fd-central") & (frame.N == 8) & (frame.L == 4) & (frame.status == "ok")
    return frame[~dup].reset_index(drop=True)


def legacy(frame: pd.DataFrame) -> pd.DataFrame:
    """The same cells as a first-wave CSV: none of the second wave's columns or statuses."""
    new = [
        "fingerprint", "gradbench", "prepare_s", "pairs", "tolerance", "memory_model_bytes",
        "peak_rss_bytes", "ops_forward", "ops_derivatives", "ops_cse",
        *[c for c in frame if c.endswith(("_lo", "_hi"))],
    ]  # fmt: skip
    old = frame[frame.status.isin(["ok", "skipped", "error", "timeout"])]
    old = old[~old.method.isin(["symbolic-cse"]) & (old.fingerprint == "fp-new")]
    return old.drop(columns=new)


CROSSOVERS = pd.DataFrame(
    {
        "optimizer": ["nelder-mead", "cobyla", "powell"],
        "family": ["gradient-free"] * 3,
        "largest_P_reached": [40, 144, 544],
        "crossover_P": [144, 544, np.nan],
    }
)


def fake_training_modules(tmp_figure) -> dict[str, types.ModuleType]:
    """Stand-ins for the training helper's modules, with the agreed signatures."""
    analysis = types.ModuleType("gradbench.training_analysis")
    analysis.summarize = lambda t: pd.DataFrame({"optimizer": ["nelder-mead"], "P": [6]})
    analysis.crossovers = lambda summary: CROSSOVERS.copy()
    plots = types.ModuleType("gradbench.training_plots")
    plots.draw_all = lambda t, s, folder: [tmp_figure]
    report = types.ModuleType("gradbench.training_report")
    report.section = lambda t, s: "TRAINING SECTION FROM THE TRAINING HELPER"
    return {
        "gradbench.training_analysis": analysis,
        "gradbench.training_plots": plots,
        "gradbench.training_report": report,
    }


def training_csv() -> pd.DataFrame:
    """A minimal training.csv so the training modules are called."""
    from gradbench.results import TRAINING_COLUMNS

    row = dict.fromkeys(TRAINING_COLUMNS, 0) | {"optimizer": "gd", "gradient_method": "backprop",
                                                "status": "ok", "reason": ""}  # fmt: skip
    return pd.DataFrame([row], columns=TRAINING_COLUMNS)
