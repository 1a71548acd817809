"""`gradbench merge`: folders of different machines in one table, duplicates kept once,
conflicts refused in one line."""

import pandas as pd
import pytest

from gradbench.cli import main
from gradbench.cluster import COLUMNS


def row(fingerprint, method, N, L, ratio, **fields):
    """A measured cell as a sweep writes it, at the default configuration."""
    return {"method": method, "kind": "exact", "N": N, "L": L, "B": 64, "P": L * (N * N + N),
            "dtype": "float64", "activation": "tanh", "loss": "cross_entropy", "bias": True,
            "seed": 0, "status": "ok", "time_median_s": ratio * 1e-4, "ratio_to_forward": ratio,
            "budget_s": 2.0, "run_id": f"run-{fingerprint}", "machine": f"cpu {fingerprint}",
            "numpy": "2.0", "blas_threads": 1, "fingerprint": fingerprint, **fields}  # fmt: skip


def folder(path, rows, columns=COLUMNS):
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).reindex(columns=columns).to_csv(path / "gradients.csv", index=False)
    return str(path)


def machine(fingerprint, backprop=2.5):
    return [row(fingerprint, "forward", 2, 1, 1.0), row(fingerprint, "backprop", 2, 1, backprop),
            row(fingerprint, "fd-central", 2, 1, 13.0)]  # fmt: skip


def test_two_machines_merge_into_one_table_and_a_block_each(tmp_path, capsys):
    a, b = folder(tmp_path / "a", machine("aaaa")), folder(tmp_path / "b", machine("bbbb", 3.5))
    assert main(["merge", a, b, "--out", str(tmp_path / "m")]) == 0
    assert "6 rows from 2 machine(s)" in capsys.readouterr().out
    merged = pd.read_csv(tmp_path / "m" / "gradients.csv")
    assert len(merged) == 6 and sorted(merged.fingerprint.unique()) == ["aaaa", "bbbb"]
    assert list(merged.columns) == COLUMNS
    text = (tmp_path / "m" / "MACHINES.md").read_text()
    assert text.count("### Machine `aaaa`") == 1 and text.count("### Machine `bbbb`") == 1
    assert "| backprop | 2 | 1 | 2.5 | 3.5 |" in text  # side by side, one column each


def test_the_same_rows_given_twice_are_kept_once(tmp_path):
    a = folder(tmp_path / "a", machine("aaaa"))
    assert main(["merge", a, a, "--out", str(tmp_path / "m")]) == 0
    assert len(pd.read_csv(tmp_path / "m" / "gradients.csv")) == 3
    # a merged folder merged again with one of its inputs: nothing new, nothing doubled
    b = folder(tmp_path / "b", machine("bbbb"))
    assert main(["merge", str(tmp_path / "m"), b, a, "--out", str(tmp_path / "m")]) == 0
    assert len(pd.read_csv(tmp_path / "m" / "gradients.csv")) == 6


def test_one_cell_measured_twice_on_one_machine_is_refused_in_one_line(tmp_path, capsys):
    a = folder(tmp_path / "a", machine("aaaa"))
    again = folder(tmp_path / "again", machine("aaaa", backprop=2.7))
    assert main(["merge", a, again, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"gradbench: error: backprop at N=2, L=1 on machine aaaa differs between {a} and "
        f"{again}: merge only one run of each machine\n"
    )
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no fingerprint", "no column 'fingerprint'"),  # older than fingerprints
        ("not an input", "exists: name"),
        ("missing", "results file not found"),
    ],
)
def test_bad_folders_are_one_line_and_exit_2(tmp_path, capsys, case, expected):
    a = folder(tmp_path / "a", machine("aaaa"))
    out = tmp_path / "m"
    other = str(tmp_path / "missing")
    if case == "no fingerprint":
        other = folder(tmp_path / "old", machine("old"), [c for c in COLUMNS if c != "fingerprint"])
    elif case == "not an input":
        folder(out, machine("cccc"))  # a table in --out that the merge would replace
        other = folder(tmp_path / "b", machine("bbbb"))
    assert main(["merge", a, other, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
