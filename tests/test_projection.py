"""Projection rules on hand-made rows: one expected number or reason each."""

import math

import pytest

from gradbench.projection import (
    Budgets,
    project_prepare,
    project_time,
    skip_reason,
    too_slow,
)

BUDGETS = Budgets(time_s=2.0, prepare_s=10.0)


def row(N, L, status="ok", **fields):
    return {"N": N, "L": L, "P": L * (N * N + N), "status": status, **fields}


def test_without_history_the_projection_is_forward_time_times_cost():
    assert project_time(P=40, cost=81.0, forward_s=1e-4, history=[]) == pytest.approx(8.1e-3)


def test_the_larger_of_forward_growth_and_operation_growth_wins():
    # last: P=6, 1 ms at cost 13 with a 10 µs forward pass
    last = row(2, 1, time_median_s=1e-3, loss_evals=13.0, forward_time_s=1e-5)
    # at P=40, cost 81, forward 20 µs: by forward 20e-6·81 · 1e-3/(1e-5·13) = 12.46 ms;
    # by operations 1e-3 · (40·81)/(6·13) = 41.5 ms
    assert project_time(40, 81.0, 2e-5, [last]) == pytest.approx(1e-3 * 40 * 81 / (6 * 13))
    # a forward pass 10× slower makes the forward view the larger: 124.6 ms
    assert project_time(40, 81.0, 2e-4, [last]) == pytest.approx(2e-4 * 81 * 1e-3 / (1e-5 * 13))


def test_a_timeout_projects_from_its_recorded_projection():
    last = row(2, 1, "timeout", projected_s=5.0, loss_evals=13.0, forward_time_s=1e-5)
    assert project_time(6, 13.0, 1e-5, [last]) == pytest.approx(5.0)


def test_larger_cells_and_failures_are_not_projected_from():
    history = [
        row(4, 1, time_median_s=10.0, loss_evals=1.0, forward_time_s=1.0),  # P=20 > 6
        row(2, 1, "error", time_median_s=9.0, loss_evals=1.0, forward_time_s=1.0),
    ]
    assert project_time(6, 1.0, 0.5, history) == 0.5
    assert project_time(6, 1.0, 0.5, history[:1]) == 0.5  # only a larger cell
    assert project_time(6, 1.0, 0.5, history[1:]) == 0.5  # only a failure


def test_prepare_projects_through_the_prepare_cost():
    history = [row(2, 1, prepare_s=0.2, prepare_cost=10.0), row(3, 1, prepare_s=0.5,
               prepare_cost=40.0)]  # fmt: skip
    assert project_prepare(400.0, history) == pytest.approx(0.5 * 400 / 40)
    assert math.isnan(project_prepare(None, history))
    assert math.isnan(project_prepare(400.0, [row(2, 1)]))


def test_over_the_time_budget():
    assert skip_reason(4, 1, 2.5, math.nan, [], BUDGETS) == "projected 2.5 s > budget 2 s"
    assert skip_reason(4, 1, 2.0, math.nan, [], BUDGETS) == ""


def test_over_the_prepare_budget():
    reason = skip_reason(4, 1, 0.1, 12.0, [], BUDGETS)
    assert reason == "prepare projected 12 s > budget 10 s"


@pytest.mark.parametrize(
    ("N", "L", "skipped"),
    [(4, 2, True), (8, 2, True), (4, 4, True), (8, 1, False), (2, 4, False)],
)
def test_a_cell_at_least_as_large_as_one_too_slow_is_skipped(N, L, skipped):
    """``<=`` in both N and L: the same N at a larger L is larger too."""
    history = [row(4, 2, "timeout", projected_s=20.0)]
    reason = skip_reason(N, L, 0.1, math.nan, history, BUDGETS)
    assert reason == ("timeout at smaller N=4, L=2: larger cells are slower" if skipped else "")


def test_equal_n_larger_l_after_a_skip_over_the_prepare_budget():
    history = [row(4, 1, "skipped", projected_s=0.1, projected_prepare_s=11.0)]
    assert skip_reason(4, 2, 0.1, math.nan, history, BUDGETS).startswith("skipped at smaller")


def test_a_skip_for_another_reason_does_not_propagate():
    history = [row(2, 1, "skipped", reason="declined: no"), row(2, 2, "skipped", projected_s=1.0)]
    assert skip_reason(4, 4, 0.1, math.nan, history, BUDGETS) == ""


def test_the_largest_smaller_cell_is_the_one_projected_from():
    """Two cells on file, P=6 (1 s per gradient) and P=12 (10 s), both one forward pass of
    1 s: at P=24 the operation count doubles from P=12, so 20 s (from P=6 it would be 4 s)."""
    history = [
        row(2, 1, time_median_s=1.0, loss_evals=1.0, forward_time_s=1.0),
        row(2, 2, time_median_s=10.0, loss_evals=1.0, forward_time_s=1.0),
    ]
    assert project_time(24, 1.0, 1.0, history) == pytest.approx(20.0)
    assert project_time(24, 1.0, 1.0, history[::-1]) == pytest.approx(20.0)


def test_too_slow_is_over_either_budget_and_not_at_it():
    assert too_slow(row(2, 1, "timeout", projected_s=2.5), BUDGETS)
    assert not too_slow(row(2, 1, "timeout", projected_s=2.0), BUDGETS)  # at the budget
    assert too_slow(row(2, 1, "skipped", projected_s=0.1, projected_prepare_s=10.5), BUDGETS)
    assert not too_slow(row(2, 1, "skipped", projected_s=0.1, projected_prepare_s=10.0), BUDGETS)
    assert not too_slow(row(2, 1, "error", projected_s=9.0), BUDGETS)


def test_an_empty_value_is_not_a_projection():
    """A cell left empty (a CSV's missing value) counts as no projection, not as zero."""
    assert too_slow(row(2, 1, "skipped", projected_s="", projected_prepare_s=11.0), BUDGETS)
    assert not too_slow(row(2, 1, "skipped", projected_s="", projected_prepare_s=""), BUDGETS)


def test_at_the_prepare_budget_the_cell_runs():
    assert skip_reason(4, 1, 0.1, 10.0, [], BUDGETS) == ""
