"""The results store: one run per folder, tied to its machine; each rule pinned by one
expected action and reason."""

import json
import re
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from gradbench.errors import GradbenchError
from gradbench.store import (
    ARCHIVE_ALL,
    EXTEND,
    RESUME,
    Store,
    archive,
    decide,
    new_run_id,
    plain,
    split_extend,
)

COLUMNS = ["method", "N", "status", "time", "dtype", "fingerprint", "run_id"]
SETTINGS = {"N": [2, 4], "budget_s": 2.0}


def state(status="running", fingerprint="fp1", settings=SETTINGS, run_id="r1"):
    return {"status": status, "fingerprint": fingerprint, "settings": settings, "run_id": run_id}


NO_STATE = "no run state on file (a fresh clone or an older run)"
OTHER_MACHINE = "measured on another machine (fingerprint fp2, this one fp1)"
EXTEND_OTHER = "--extend: other configurations"


@pytest.mark.parametrize(
    ("on_file", "fresh", "extend", "action", "reason"),
    [
        (state(), True, False, ARCHIVE_ALL, "--fresh"),
        (None, False, False, ARCHIVE_ALL, NO_STATE),
        (None, False, True, EXTEND,
         "--extend: no run state on file; rows of other machines or configurations"),
        (state(fingerprint="fp2"), False, False, ARCHIVE_ALL, OTHER_MACHINE),
        (state(fingerprint="fp2"), False, True, ARCHIVE_ALL, OTHER_MACHINE),
        (state(), False, False, RESUME, ""),
        (state(settings={"N": [2], "budget_s": 2.0}), False, False, ARCHIVE_ALL,
         "the unfinished run on file has other N"),
        (state(settings={"N": [2, 4]}), False, False, ARCHIVE_ALL,
         "the unfinished run on file has other budget_s"),
        (state(settings={"N": [2]}), False, False, ARCHIVE_ALL,
         "the unfinished run on file has other N, budget_s"),
        (state(settings={**SETTINGS, "threads": 1}), False, False, ARCHIVE_ALL,
         "the unfinished run on file has other threads"),  # a setting no longer given
        (state("finished"), False, False, ARCHIVE_ALL,
         "the run on file is finished (--extend adds cells to it)"),
        (state("finished"), False, True, EXTEND, EXTEND_OTHER),
        (state(settings={"N": [2]}), False, True, EXTEND, EXTEND_OTHER),
    ],
)  # fmt: skip
def test_decide(on_file, fresh, extend, action, reason):
    decision = decide(on_file, "fp1", SETTINGS, fresh=fresh, extend=extend)
    assert (decision.action, decision.reason) == (action, reason)


def test_a_state_without_settings_resumes_only_a_run_without_settings():
    on_file = {"status": "running", "fingerprint": "fp1", "run_id": "r1"}
    assert decide(on_file, "fp1", {}, fresh=False, extend=False).action == RESUME
    other = decide(on_file, "fp1", {"N": [2]}, fresh=False, extend=False)
    assert (other.action, other.reason) == (ARCHIVE_ALL, "the unfinished run on file has other N")


def test_plain_makes_csv_values_comparable():
    assert plain(np.int64(3)) == 3 and plain(float("nan")) == "" and plain(None) == ""
    assert plain(np.bool_(True)) is True


def test_split_extend_keeps_only_this_fingerprint_and_configuration():
    rows = [
        {"method": "a", "dtype": "float64", "fingerprint": "fp1"},
        {"method": "b", "dtype": "float32", "fingerprint": "fp1"},
        {"method": "c", "dtype": "float64", "fingerprint": "fp2"},
        {"method": "d", "dtype": "float64"},  # an old row: no fingerprint
    ]
    kept, moved = split_extend(rows, "fp1", {"dtype": "float64"})
    assert [r["method"] for r in kept] == ["a"]
    assert [r["method"] for r in moved] == ["b", "c", "d"]


def test_archive_writes_one_file_per_run_and_appends(tmp_path):
    rows = [
        {"method": "a", "run_id": "r1"},
        {"method": "b", "run_id": "r2"},
        {"method": "c", "run_id": float("nan")},
    ]
    assert archive(rows, tmp_path, "gradients", ["method", "run_id"]) == ["r1", "r2", "unknown"]
    archive([{"method": "d", "run_id": "r1"}], tmp_path, "gradients", ["method", "run_id"])
    r1 = pd.read_csv(tmp_path / "archive" / "r1" / "gradients.csv")
    assert r1.method.tolist() == ["a", "d"]
    assert pd.read_csv(tmp_path / "archive" / "unknown" / "gradients.csv").method.tolist() == ["c"]


def test_archive_appends_without_turning_a_fingerprint_of_digits_into_a_number(tmp_path):
    row = {"method": "a", "run_id": "r1", "fingerprint": "001234567890"}
    columns = ["method", "run_id", "fingerprint"]
    archive([row], tmp_path, "gradients", columns)
    archive([row | {"method": "b"}], tmp_path, "gradients", columns)
    text = (tmp_path / "archive" / "r1" / "gradients.csv").read_text().splitlines()
    assert text == ["method,run_id,fingerprint", "a,r1,001234567890", "b,r1,001234567890"]


def open_store(folder, *, fingerprint="fp1", config=None, settings=SETTINGS, **kw):
    lines = []
    store = Store(
        folder,
        "gradients",
        COLUMNS,
        cell=["method", "N"],
        config=config or {"dtype": "float64"},
        settings=settings,
        fingerprint=fingerprint,
        echo=lines.append,
        **kw,
    )
    return store, lines


def test_put_stamps_and_replaces_rows_of_the_same_key(tmp_path):
    store, _ = open_store(tmp_path)
    store.put([{"method": "a", "N": 2, "status": "error", "time": 1.0}])
    (row,) = store.put([{"method": "a", "N": 2, "status": "ok", "time": 2.0}])
    assert row["fingerprint"] == "fp1" and row["run_id"] == store.run_id
    assert row["dtype"] == "float64"
    assert store.get(method="a", N=2) == [row]
    assert store.get(method="a", N=4) == []
    on_disk = pd.read_csv(tmp_path / "gradients.csv")
    assert list(on_disk.columns) == COLUMNS and on_disk.status.tolist() == ["ok"]


def test_a_put_without_write_is_written_with_the_next_put_that_writes(tmp_path):
    store, _ = open_store(tmp_path)
    store.put([{"method": "a", "N": 2, "status": "ok", "time": 1.0}])
    store.put([{"method": "a", "N": 2, "status": "ok", "time": 2.0}], write=False)
    store.put([{"method": "b", "N": 2, "status": "ok", "time": 3.0}], write=False)
    assert [r["time"] for r in store.rows()] == [2.0, 3.0]
    assert pd.read_csv(tmp_path / "gradients.csv").time.tolist() == [1.0]
    store.put([{"method": "c", "N": 2, "status": "ok", "time": 4.0}])
    assert pd.read_csv(tmp_path / "gradients.csv").time.tolist() == [2.0, 3.0, 4.0]


def test_a_key_can_hold_several_rows(tmp_path):
    """A training trajectory: several rows under one key, replaced together."""
    store, _ = open_store(tmp_path)
    store.put([{"method": "a", "N": 2, "status": "ok", "time": t} for t in (1, 2, 3)])
    store.put([{"method": "a", "N": 2, "status": "ok", "time": t} for t in (4, 5)])
    assert [r["time"] for r in store.get(method="a", N=2)] == [4, 5]


def test_interrupted_run_resumes_with_its_run_id(tmp_path, monkeypatch):
    first, _ = open_store(tmp_path)
    first.put([{"method": "a", "N": 2, "status": "ok", "time": 1.0}])
    monkeypatch.setattr("gradbench.store.new_run_id", lambda: "r-next")  # a later second
    again, lines = open_store(tmp_path)  # never finished: resumed
    assert again.run_id == first.run_id and lines == []
    assert again.get(method="a", N=2)[0]["time"] == 1.0


def test_finished_run_is_archived_and_a_new_one_starts(tmp_path, monkeypatch):
    first, _ = open_store(tmp_path)
    first.put([{"method": "a", "N": 2, "status": "ok", "time": 1.0}])
    first.finish()
    monkeypatch.setattr("gradbench.store.new_run_id", lambda: "r-next")
    again, lines = open_store(tmp_path)
    assert again.run_id == "r-next" and again.get(method="a", N=2) == []
    assert len(lines) == 1 and "moved 1 rows" in lines[0] and first.run_id in lines[0]
    archived = pd.read_csv(tmp_path / "archive" / first.run_id / "gradients.csv")
    assert archived.time.tolist() == [1.0]
    assert pd.read_csv(tmp_path / "gradients.csv").empty


def test_another_fingerprint_is_archived_never_reused(tmp_path):
    first, _ = open_store(tmp_path, fingerprint="fp-other")
    first.put([{"method": "a", "N": 2, "status": "ok", "time": 1.0}])
    again, lines = open_store(tmp_path, fingerprint="fp1")
    assert again.get(method="a", N=2) == [] and "another machine" in lines[0]


def test_extend_keeps_this_configuration_and_archives_the_other(tmp_path, monkeypatch):
    first, _ = open_store(tmp_path)
    first.put([{"method": "a", "N": 2, "status": "ok", "time": 1.0}])
    first.finish()
    monkeypatch.setattr("gradbench.store.new_run_id", lambda: "r-next")  # a later second
    other, lines = open_store(tmp_path, config={"dtype": "float32"}, extend=True)
    assert other.run_id == first.run_id  # extending the same run
    assert other.get(method="a", N=2) == [] and "moved 1 rows" in lines[0]
    other.put([{"method": "a", "N": 2, "status": "ok", "time": 3.0}])
    other.finish()
    # the float32 row is kept by a float32 extension, never handed to a float64 lookup
    same, lines = open_store(tmp_path, config={"dtype": "float32"}, extend=True)
    assert same.get(method="a", N=2)[0]["time"] == 3.0 and lines == []


def test_rows_without_state_such_as_a_fresh_clone_are_archived(tmp_path):
    pd.DataFrame([{"method": "a", "N": 2, "status": "ok", "time": 1.0, "run_id": "old"}]).to_csv(
        tmp_path / "gradients.csv", index=False
    )
    store, lines = open_store(tmp_path)
    assert store.rows() == [] and "no run state" in lines[0]
    assert (tmp_path / "archive" / "old" / "gradients.csv").exists()
    assert json.loads((tmp_path / ".run.json").read_text())["gradients"]["status"] == "running"


def test_tables_keep_their_own_state(tmp_path):
    gradients, _ = open_store(tmp_path)
    gradients.finish()
    Store(tmp_path, "training", COLUMNS, cell=["method"], config={}, settings={},
          fingerprint="fp1", echo=print)  # fmt: skip
    states = json.loads((tmp_path / ".run.json").read_text())
    assert states["gradients"]["status"] == "finished"
    assert states["training"]["status"] == "running"


def test_key_columns_stay_text_when_they_look_like_numbers(tmp_path):
    """A fingerprint of digits only (or "12e4…") read back as a number would make a
    resume miss every row of its own machine."""
    from gradbench.results import read_table

    path = tmp_path / "t.csv"
    pd.DataFrame({"method": ["a"], "status": ["ok"], "fingerprint": ["001234567890"],
                  "run_id": ["12e4"]}).to_csv(path, index=False)  # fmt: skip
    row = read_table(path, ["method"]).iloc[0]
    assert (row.fingerprint, row.run_id) == ("001234567890", "12e4")


def test_plain_keeps_text_and_numbers():
    assert plain("fp1") == "fp1" and plain(2.5) == 2.5 and plain(0) == 0


def test_archive_rows_without_a_run_id_go_to_unknown_with_their_extra_columns_last(tmp_path):
    assert archive([{"x": 1, "method": "a"}], tmp_path, "gradients", ["method", "run_id"]) == [
        "unknown"
    ]
    archived = pd.read_csv(tmp_path / "archive" / "unknown" / "gradients.csv")
    assert list(archived.columns) == ["method", "run_id", "x"]
    assert (archived.method[0], archived.run_id[0], archived.x[0]) == ("a", "unknown", 1)


def test_a_run_id_is_the_utc_time_it_started():
    assert new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20260102-030405"
    assert re.fullmatch(r"\d{8}-\d{6}", new_run_id())


def test_archiving_says_how_many_rows_of_which_runs_went_where_and_why(tmp_path):
    first, _ = open_store(tmp_path)
    first.put([{"method": m, "N": 2, "status": "ok", "time": 1.0} for m in "ab"])
    first.finish()
    _, lines = open_store(tmp_path)
    assert lines == [
        f"gradbench: moved 2 rows of gradients.csv (run {first.run_id}) to "
        f"{tmp_path / 'archive'}/: the run on file is finished (--extend adds cells to it)"
    ]


def test_settings_compare_as_the_state_file_holds_them(tmp_path):
    """A tuple is a list and a path is text once written to .run.json: the same settings
    resume."""
    settings = {"N": (2, 4), "out": tmp_path / "results"}
    first, _ = open_store(tmp_path, settings=settings)
    first.put([{"method": "a", "N": 2, "status": "ok", "time": 1.0}])
    again, lines = open_store(tmp_path, settings=settings)
    assert again.decision.action == RESUME and lines == [] and again.run_id == first.run_id


def test_extend_without_state_keeps_this_machines_rows_under_a_new_run(tmp_path, monkeypatch):
    pd.DataFrame([
        {"method": "a", "N": 2, "status": "ok", "time": 1.0, "dtype": "float64",
         "fingerprint": "fp1", "run_id": "old"},
        {"method": "a", "N": 4, "status": "ok", "time": 2.0, "dtype": "float64",
         "fingerprint": "fp2", "run_id": "old"},
    ]).to_csv(tmp_path / "gradients.csv", index=False)  # fmt: skip
    monkeypatch.setattr("gradbench.store.new_run_id", lambda: "r-new")
    store, lines = open_store(tmp_path, extend=True)
    assert store.decision.action == EXTEND and store.run_id == "r-new"
    assert [r["time"] for r in store.rows()] == [1.0] and "moved 1 rows" in lines[0]
    assert pd.read_csv(tmp_path / "gradients.csv").time.tolist() == [1.0]


def test_rows_keep_the_order_first_put_and_the_frame_the_schema(tmp_path):
    store, _ = open_store(tmp_path)
    store.put([{"method": "b", "N": 2, "status": "ok"}, {"method": "a", "N": 2, "status": "ok"}])
    store.put([{"method": "b", "N": 2, "status": "error"}])  # replaced in its place
    assert [(r["method"], r["status"]) for r in store.rows()] == [("b", "error"), ("a", "ok")]
    assert list(store.frame().columns) == COLUMNS


def test_a_lookup_sees_only_this_fingerprint(tmp_path):
    """A resumed table that holds another machine's row of the same cell (merged by hand)."""
    pd.DataFrame([
        {"method": "a", "N": 2, "status": "ok", "time": t, "dtype": "float64",
         "fingerprint": fp, "run_id": "r1"} for t, fp in ((1.0, "fp1"), (2.0, "fp2"))
    ]).to_csv(tmp_path / "gradients.csv", index=False)  # fmt: skip
    (tmp_path / ".run.json").write_text(json.dumps({"gradients": state()}))
    store, _ = open_store(tmp_path)
    assert store.decision.action == RESUME
    assert [r["time"] for r in store.get(method="a", N=2)] == [1.0]


def test_a_run_id_is_utc_whatever_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no summer time
    time.tzset()
    try:
        before = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_id = new_run_id()
        after = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert before <= run_id <= after


def test_finish_marks_the_run_finished_on_file(tmp_path):
    store, _ = open_store(tmp_path)
    store.finish()
    state = json.loads((tmp_path / ".run.json").read_text())["gradients"]
    assert state == {"run_id": store.run_id, "fingerprint": "fp1", "status": "finished",
                     "settings": SETTINGS}  # fmt: skip


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe"])
def test_unreadable_state_file_is_one_line(tmp_path, content):
    (tmp_path / ".run.json").write_bytes(content)
    with pytest.raises(GradbenchError) as info:
        open_store(tmp_path)
    assert str(info.value) == f"{tmp_path / '.run.json'} is corrupt; delete it (the rows are kept)"


def test_a_state_file_that_is_not_a_table_is_no_state(tmp_path):
    (tmp_path / ".run.json").write_text("[1, 2]")
    store, _ = open_store(tmp_path)
    assert store.decision.reason.startswith("no run state on file")


def test_rows_of_several_runs_are_named_in_one_line(tmp_path):
    rows = [
        {"method": m, "N": 2, "status": "ok", "run_id": r} for m, r in (("a", "o1"), ("b", "o2"))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "gradients.csv", index=False)
    _, lines = open_store(tmp_path)
    assert lines[0].startswith("gradbench: moved 2 rows of gradients.csv (run o1, o2) to ")


def test_a_table_from_before_passes_reads_as_one_pass(tmp_path):
    from gradbench.results import GRADIENT_COLUMNS, read_table

    path = tmp_path / "gradients.csv"
    pd.DataFrame([dict.fromkeys([c for c in GRADIENT_COLUMNS if c != "passes"], 1)]).assign(
        status="ok"
    ).to_csv(path, index=False)
    assert read_table(path, GRADIENT_COLUMNS)["passes"].tolist() == [1]
