"""gradbench.training_plots: the figures show the data they claim (series, axes, values)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from test_training_analysis import frame, trajectory

from gradbench import training_analysis as ta
from gradbench import training_plots as tp


@pytest.fixture(scope="module")
def data():
    runs = []
    for P, N, L in [(6, 2, 1), (40, 4, 2)]:
        for seed in range(3):
            for opt, method, final in [("gd", "backprop", 0.01), ("cma-es", "", 0.05 * P / 6)]:
                points = [(0, 2.0), (10 * (seed + 1), 1.0), (100, final)]
                rows = trajectory(opt, method, P, seed, points)
                runs.append([{**row, "N": N, "L": L} for row in rows])
    t = frame(*runs)
    return t, ta.summarize(t)


def test_draw_all_writes_every_figure(data, tmp_path):
    paths = tp.draw_all(*data, tmp_path)
    names = [p.stem for p in paths]
    assert names == ["training_evals_to_target", "training_curves", "training_heldout"]
    assert all(p.exists() and p.with_suffix(".svg").exists() for p in paths)


def test_evals_to_target_draws_each_optimizer_where_it_reached(data):
    fig = tp.evals_to_target(data[1])
    left, right = fig.axes
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert "gd/backprop" in labels and "cma-es" in labels
    assert any(label.startswith("gradient: slope") for label in labels)
    assert left.get_xscale() == left.get_yscale() == "log"
    assert "target" in left.get_ylabel() and "P" in left.get_xlabel()
    # cma-es reached the target (0.2 = 0.1 × 2.0) at P = 6 (0.05) but not at P = 40
    cma = next(c for c in left.containers if c.get_label() == "cma-es")
    x, y = cma.lines[0].get_data()
    assert list(x) == [6] and list(y) == [100]
    shares = {c.get_label(): c.lines[0].get_data() for c in right.containers}
    assert list(shares["cma-es"][1]) == [1.0, 0.0] and list(shares["gd/backprop"][1]) == [1, 1]
    plt.close(fig)


def test_curves_show_one_median_line_per_optimizer_and_size(data):
    fig = tp.curves(data[0])
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 2
    for ax in panels:
        names = sorted(
            line.get_label() for line in ax.lines if not line.get_label().startswith("_")
        )
        assert names == ["cma-es", "gd/backprop"]
        assert ax.get_ylim()[0] == pytest.approx(tp.CURVE_FLOOR)
    gd = next(line for line in panels[0].lines if line.get_label() == "gd/backprop")
    x, y = gd.get_data()
    # median over seeds of loss ÷ initial: at 15 evaluations seeds 0 (reached 1.0 at 10)
    # and 1, 2 (still 2.0) → median 1.0
    assert y[np.searchsorted(x, 15)] == pytest.approx(1.0)
    assert y[-1] == pytest.approx(0.01 / 2.0)
    plt.close(fig)


def test_heldout_draws_accuracy_against_P(data):
    fig = tp.heldout(data[1])
    right = fig.axes[1]
    gd = next(c for c in right.containers if c.get_label() == "gd/backprop")
    x, y = gd.lines[0].get_data()
    assert list(x) == [6, 40] and np.allclose(y, 0.31)  # median of 0.30, 0.31, 0.32
    assert right.get_ylabel() == "held-out accuracy"
    plt.close(fig)
