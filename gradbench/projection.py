"""Projection: whether a cell is worth running, decided from the cells measured before it.

Cells run by growing P, so when a cell comes up, its method's smaller cells are on file.
Two projections, each with its own budget:

* **time per gradient** — the method's largest measured cell so far, scaled by the larger
  of two growths: the measured forward time × cost model, and the operation count
  P × cost (small sizes are overhead-bound, so the measured forward time alone understates
  growth). Without a measured cell: forward time × cost model.
* **set-up time** (``prepare``) — the largest measured ``prepare_s`` so far, scaled by the
  method's ``prepare_cost(net)``; no projection without a measured cell or a cost model.

A cell over either budget is skipped, and so is every cell at least as large in both N
and L (``<=``) as one that was skipped or timed out over its budget: larger cells are
slower. These are pure functions of hand-made rows (dicts with the CSV's columns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEASURED = ("ok", "wrong", "timeout")  # statuses whose time (or projection) is known
TOO_SLOW = ("skipped", "timeout")


@dataclass(frozen=True)
class Budgets:
    """Seconds per gradient, and seconds of ``prepare``."""

    time_s: float
    prepare_s: float


def _value(row: dict, column: str) -> float:
    value = row.get(column)
    return math.nan if value is None or value == "" else float(value)


def project_time(P: int, cost: float, forward_s: float, history: list[dict]) -> float:
    """Projected seconds per gradient of a cell with ``P`` weights and ``cost`` forward
    passes, where the shared forward pass takes ``forward_s``; ``history`` is the
    method's rows at smaller or equal P. A timed-out row counts with its projection."""
    base = forward_s * cost
    measured = [r for r in history if r["status"] in MEASURED and r["P"] <= P]
    if not measured:
        return base
    last = max(measured, key=lambda r: r["P"])
    seconds = _value(last, "time_median_s" if last["status"] != "timeout" else "projected_s")
    by_forward = base * seconds / (_value(last, "forward_time_s") * last["loss_evals"])
    by_operations = seconds * (P * cost) / (last["P"] * last["loss_evals"])
    return max(by_forward, by_operations)


def project_prepare(prepare_cost: float | None, history: list[dict]) -> float:
    """Projected seconds of ``prepare``: the largest measured cell's ``prepare_s`` × the
    ratio of ``prepare_cost`` (this cell's) to that cell's; NaN without either."""
    measured = [r for r in history if not math.isnan(_value(r, "prepare_s"))]
    if prepare_cost is None or not measured:
        return math.nan
    last = max(measured, key=lambda r: r["P"])
    return _value(last, "prepare_s") * prepare_cost / _value(last, "prepare_cost")


def too_slow(row: dict, budgets: Budgets) -> bool:
    """Whether a row was skipped or timed out for being over a budget."""
    return row["status"] in TOO_SLOW and (
        _value(row, "projected_s") > budgets.time_s
        or _value(row, "projected_prepare_s") > budgets.prepare_s
    )


def skip_reason(
    N: int, L: int, seconds: float, prepare_s: float, history: list[dict], budgets: Budgets
) -> str:
    """Why a cell at (N, L) projected at ``seconds`` per gradient and ``prepare_s`` of
    set-up is not run, or "" to run it."""
    if seconds > budgets.time_s:
        return f"projected {seconds:.3g} s > budget {budgets.time_s:g} s"
    if prepare_s > budgets.prepare_s:
        return f"prepare projected {prepare_s:.3g} s > budget {budgets.prepare_s:g} s"
    for r in history:
        if r["N"] <= N and r["L"] <= L and too_slow(r, budgets):
            return f"{r['status']} at smaller N={r['N']}, L={r['L']}: larger cells are slower"
    return ""
