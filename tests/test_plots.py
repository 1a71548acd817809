"""Figures from a fixture table: what each panel draws, not how large the file is."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import report_fixtures as fx

from gradbench import analysis, fits, plots


@pytest.fixture(scope="module")
def laws(g, pres):
    return fits.cost_laws(g, pres)


def legend_labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_answer_draws_the_three_headline_methods_with_their_fitted_slopes(g, laws, pres):
    fig = plots.answer(g, laws, pres, fx.CROSSOVERS)
    left, right = fig.axes
    labels = legend_labels(left)
    for method in ("backprop", "forward-mode", "fd-central", "symbolic-cse"):
        entry = next(text for text in labels if text.startswith(method))
        if method != "symbolic-cse":  # too few cells above the overhead floor for a law
            law = laws.set_index("method").loc[method]
            assert f"slope {law.slope:.2f} ± {law.slope_se:.2f}" in entry
    assert any("constant" in t for t in labels) and any("∝ P" in t for t in labels)
    assert left.get_xlabel() == "parameters P (log)" and "forward" in left.get_ylabel()
    # the points drawn for backprop are its measured ratios
    container = next(
        c for c in left.containers if c.get_label() and c.get_label().startswith("backprop")
    )
    drawn = np.sort(np.asarray(container.lines[0].get_ydata(), float))
    ok = g[(g.method == "backprop") & (g.status == "ok")]
    np.testing.assert_allclose(drawn, np.sort(ok.ratio_to_forward.to_numpy(float)))
    # the crossover panel: one row per optimizer, reached (filled) and crossover (hollow)
    assert [t.get_text() for t in right.get_yticklabels()] == sorted(fx.CROSSOVERS.optimizer)
    assert len(right.collections) == 2
    plt.close(fig)


def test_answer_draws_without_training_results(g, laws, pres):
    fig = plots.answer(g, laws, pres, None)
    assert "no training results" in [t.get_text() for t in fig.axes[1].texts]
    plt.close(fig)


def test_one_panel_per_family_at_most_six_methods_each(g, pres):
    fig = plots.by_family(g, pres, "ratio_to_forward", "ratio", "title")
    panels = [ax for ax in fig.axes if ax.axison]
    titles = [ax.get_title() for ax in panels]
    assert titles == [
        "reverse mode and references", "per-weight exact", "finite differences",
        "stochastic estimates", "symbolic (whole function)", "other (plugins)",
    ]  # fmt: skip
    by_title = {ax.get_title(): legend_labels(ax) for ax in panels}
    assert by_title["reverse mode and references"] == ["backprop", "backprop-checkpoint"]
    assert by_title["finite differences"] == ["fd-central", "scipy-fprime"]
    assert by_title["other (plugins)"] == ["my-plugin"]
    assert all(len(labels) <= 6 for labels in by_title.values())
    names = {label for labels in by_title.values() for label in labels}
    assert not names & {"torch-backprop", "broken", "crashy", "slowpoke", "forward"}
    plt.close(fig)


def test_one_colour_per_family_one_line_style_per_depth(g, pres):
    fig = plots.by_family(g, pres, "ratio_to_forward", "ratio", "title")
    reverse = fig.axes[0]
    family = np.array(matplotlib.colors.to_rgb(pres.by_name("reverse").colour))
    colour = {ln.get_label(): np.array(ln.get_color()) for ln in reverse.lines}
    np.testing.assert_allclose(colour["backprop"], family)  # the family's own colour first
    lighter = colour["backprop-checkpoint"]  # then a lighter shade of it, same hue
    assert (lighter >= family).all() and (lighter > family).any()
    styles = {line.get_linestyle() for line in reverse.lines}
    assert len(styles) == len(fx.LS)  # one style per depth
    # backprop at L = 1: the points drawn are the cells' values
    line = next(ln for ln in reverse.lines if ln.get_label() == "backprop")
    cells = g[(g.method == "backprop") & (g.L == 1) & (g.status == "ok")].sort_values("P")
    np.testing.assert_allclose(line.get_xdata(), cells.P)
    np.testing.assert_allclose(line.get_ydata(), cells.ratio_to_forward)
    plt.close(fig)


def test_time_panels_show_skipped_cells_at_their_projection(g, pres):
    fig = plots.by_family(g, pres, "time_median_s", "seconds", "title")
    fd = next(ax for ax in fig.axes if ax.get_title() == "finite differences")
    projected = np.concatenate([c.get_offsets()[:, 1] for c in fd.collections])
    skipped = g[g.method.isin(["fd-central", "scipy-fprime"]) & (g.status == "skipped")]
    np.testing.assert_allclose(np.sort(projected), np.sort(skipped.projected_s))
    plt.close(fig)


def test_memory_figure_draws_measured_points_and_theory(pres):
    g = analysis.latest_machine(fx.gradients())
    fig = plots.memory_against(g, pres, "L")
    ax = fig.axes[0]
    assert "L" in ax.get_xlabel() and "bytes" in ax.get_ylabel()
    assert "backprop" in legend_labels(ax) and "backprop-checkpoint" in legend_labels(ax)
    plt.close(fig)


def test_every_figure_is_drawn_from_the_table_alone(tmp_path, g, laws, pres):
    drawn = plots.figures(g, pres, laws, fx.CROSSOVERS)
    drawn |= plots.memory_figures(analysis.latest_machine(fx.gradients()), pres)
    assert list(drawn)[0] == "answer"
    assert set(drawn) == {
        "answer", "cost_by_family", "time_by_family", "speedup_by_family", "error_by_family",
        "symbolic_sizes", "memory_vs_L", "time_memory",
    }  # fmt: skip
    paths = plots.save({k: drawn[k] for k in ("answer", "symbolic_sizes", "time_memory")},
                       tmp_path, formats=("png",))  # fmt: skip
    assert [p.name for p in paths] == ["answer.png", "symbolic_sizes.png", "time_memory.png"]
    assert all(p.exists() for p in paths)


def test_without_the_new_columns_memory_and_symbolic_figures_are_left_out(pres):
    old = analysis.load_gradients_frame(fx.legacy(fx.gradients()))
    drawn = plots.figures(old, pres, fits.cost_laws(old, pres)) | plots.memory_figures(old, pres)
    assert set(drawn) == {
        "answer",
        "cost_by_family",
        "time_by_family",
        "speedup_by_family",
        "error_by_family",
    }


def test_drawing_imports_no_training_code():
    import subprocess
    import sys

    code = (
        "import sys, gradbench.plots, gradbench.report, gradbench.predict;"
        "bad = [m for m in sys.modules if m in ('gradbench.training', 'scipy.optimize')];"
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
