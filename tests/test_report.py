"""Fits, figures and REPORT.md from fixture CSVs written here (never from a real run)."""

import re

import numpy as np
import pandas as pd
import pytest

from gradbench import fits, report
from gradbench.cli import main
from gradbench.results import TRAINING_COLUMNS, write_atomic
from gradbench.sweep import tidy


def fixture_gradients() -> pd.DataFrame:
    rows = []
    for N in (2, 4, 8, 16, 32):
        for L in (1, 2, 4):
            P = L * (N * N + N)
            base = {
                "N": N,
                "L": L,
                "P": P,
                "B": 64,
                "dtype": "float64",
                "activation": "tanh",
                "loss": "cross_entropy",
                "bias": True,
                "seed": 0,
                "budget_s": 2.0,
                "run_id": "r1",
                "machine": "test cpu",
                "numpy": "2",
                "blas_threads": 1,
            }
            fwd = 1e-5 + 1e-9 * P
            rows.append(
                base
                | {
                    "method": "forward",
                    "kind": "reference",
                    "status": "ok",
                    "time_median_s": fwd,
                    "loss_evals": 1,
                }
            )
            rows.append(
                base
                | {
                    "method": "backprop",
                    "kind": "exact",
                    "status": "ok",
                    "time_median_s": 3 * fwd,
                    "loss_evals": 3,
                    "grad_error": 0.0,
                    "cosine": 1.0,
                }
            )
            t = 2 * P * fwd
            fd = {"method": "fd-central", "kind": "approximate", "loss_evals": 2 * P}
            if t < 2.0 and N < 32:
                rows.append(
                    base
                    | fd
                    | {"status": "ok", "time_median_s": t, "grad_error": 1e-10 * P, "cosine": 1.0}
                )
            else:
                rows.append(
                    base
                    | fd
                    | {
                        "status": "skipped",
                        "projected_s": t,
                        "reason": f"projected {t:.3g} s > budget 2 s",
                    }
                )
            rows.append(
                base
                | {
                    "method": "spsa",
                    "kind": "stochastic",
                    "status": "ok",
                    "time_median_s": 3.5 * fwd,
                    "loss_evals": 3,
                    "grad_error": 0.5,
                    "cosine": 1 / np.sqrt(P),
                }
            )
    rows.append(
        rows[0]
        | {
            "method": "broken",
            "kind": "approximate",
            "status": "error",
            "reason": "RuntimeError: boom",
        }
    )
    return tidy(pd.DataFrame(rows))


def fixture_training() -> pd.DataFrame:
    rows = []
    for N, L, P in [(2, 1, 6), (8, 2, 144)]:
        for seed in (0, 1):
            for opt, method, final in [
                ("gd", "backprop", 0.01),
                ("nelder-mead", "", 0.0102 if P == 6 else 1.5),
            ]:
                for k, (evals, loss) in enumerate([(0, 2.0), (10, 0.5), (100, final)]):
                    rows.append(
                        {
                            "run_id": "t1",
                            "optimizer": opt,
                            "gradient_method": method,
                            "kind": "exact" if method else "",
                            "N": N,
                            "L": L,
                            "P": P,
                            "seed": seed,
                            "evals": evals,
                            "wall_s": 0.1 * (k + 1),
                            "loss": loss,
                            "accuracy": 0.5,
                            "test_accuracy": 0.4 if k == 2 else None,
                            "status": "ok",
                            "reason": "",
                            "budget_evals": 100,
                            "n_train": P,
                            "n_test": 50,
                        }
                    )
    return pd.DataFrame(rows, columns=TRAINING_COLUMNS)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    write_atomic(fixture_gradients(), out / "gradients.csv")
    write_atomic(fixture_training(), out / "training.csv")
    assert main(["report", "--out", str(out)]) == 0
    return out


def test_every_figure_is_written_and_not_empty(built):
    names = [
        "time_vs_P",
        "time_vs_N",
        "time_vs_L",
        "ratio_to_forward",
        "speedup_of_backprop",
        "gradient_error",
        "training_curves",
        "training_evals_to_target",
        "training_heldout",
    ]
    for name in names:
        for ext in ("png", "svg"):
            path = built / "plots" / f"{name}.{ext}"
            assert path.stat().st_size > 5000, path


def test_report_lists_unmeasured_cells_and_embeds_figures(built):
    text = (built / "REPORT.md").read_text()
    assert "RuntimeError: boom" in text and "projected" in text
    assert "![time_vs_P](plots/time_vs_P.png)" in text
    assert "- **nelder-mead**: crossover at **P = 144** (last reached at P = 6)" in text


UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}


def test_every_number_in_the_report_comes_from_a_csv(built):
    text = (built / "REPORT.md").read_text()
    checked = text[text.index("## The answer") : text.index(report.CHECKED_END)]
    checked = re.sub(r"\]\([^)]*\)", "]", checked)  # figure paths are not numbers
    # the training section's numbers are tied to their rows in tests/test_training_report.py
    checked = re.sub(r"## Training.*?## Figures", "", checked, flags=re.S)
    values = []
    for name in ("gradients.csv", "fits.csv", "training_summary.csv"):
        frame = pd.read_csv(built / name)
        values += list(frame.select_dtypes("number").to_numpy().ravel())
    values = np.array([v for v in values if np.isfinite(v)])
    pattern = r"(?<![\w.^])(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?:\s*(µs|ms|s)\b)?"
    found = re.findall(pattern, checked)
    assert len(found) > 50
    for number, unit in found:
        x = float(number) * UNITS.get(unit, 1.0)
        assert np.any(np.isclose(values, x, rtol=5e-3, atol=0)) or x == 0, (
            f"{number} {unit} is in no CSV"
        )


def test_fit_recovers_known_exponents_from_noisy_timings():
    rng = np.random.default_rng(0)
    N, L = np.meshgrid([8, 16, 32, 64, 128], [1, 2, 4, 8])
    N, L = N.ravel().astype(float), L.ravel().astype(float)
    for a, b in [(2.0, 1.0), (4.0, 2.0), (3.0, 0.5)]:
        t = 1e-6 * N**a * L**b * np.exp(rng.normal(0, 0.05, N.size))
        a_hat, a_se, b_hat, b_se = fits.fit(N, L, t)
        assert abs(a_hat - a) < 0.05 and abs(b_hat - b) < 0.05
        assert 0 < a_se < 0.05 and 0 < b_se < 0.05


def test_fits_use_only_the_asymptotic_cells(built):
    fit = pd.read_csv(built / "fits.csv").set_index("method")
    g = pd.read_csv(built / "gradients.csv")
    used = g[(g.method == "fd-central") & (g.status == "ok") & (g.time_median_s >= fits.MIN_TIME_S)]
    assert fit.loc["fd-central", "cells"] == len(used)
    assert "forward" not in fit.index or fit.loc["forward", "kind"] == "reference"


@pytest.mark.parametrize("content", [None, "method,kind\nx,y\n", '"broken\n'])
def test_missing_or_corrupt_csv_gives_one_line_and_exit_2(tmp_path, capsys, content):
    if content is not None:
        (tmp_path / "gradients.csv").write_text(content)
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gradients.csv" in err
