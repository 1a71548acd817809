"""A results folder's tables, tied to one run on one machine.

A results folder holds ONE run of each table (``gradients``, ``training``) and that run's
resumptions. Its state file ``.run.json`` says, per table, which run wrote the rows
(``run_id``), on which machine (``fingerprint``, see :func:`gradbench.environment.fingerprint`),
with which settings, and whether the run is ``running`` or ``finished``.

Opening a table decides what happens to the rows on file (:func:`decide`, pure):

==============================================  ===========================================
the state on file                               what happens
==============================================  ===========================================
``--fresh``                                     archive every row, measure everything
no state (a fresh clone, an old folder)         archive every row
another fingerprint                             archive every row
``--extend``, same fingerprint or no state      keep the rows of the same fingerprint and
                                                configuration, archive the rest, measure the
                                                missing cells (under the same run id)
running, same settings                          resume: keep every row, same run id
running, other settings                         archive every row
finished                                        archive every row (``--extend`` to add to it)
==============================================  ===========================================

Archived rows are moved to ``archive/<their run_id>/<table>.csv`` (appended to what is
there), and one line says so: never lost, never mixed in.

Rows are keyed: a row's key is its ``cell`` columns (what varies within a run, e.g.
method, N, L), the run's ``config`` columns (every setting that changes a measurement,
e.g. B, dtype, budget_s) and ``fingerprint``. :meth:`Store.put` stamps every row with the
config, the fingerprint and the run id, and replaces the rows of the same key; a key may
hold several rows (a training trajectory). The table is rewritten atomically on every
put, so an interrupted run leaves every finished cell on disk.

Typical use::

    store = Store(out, "gradients", COLUMNS, cell=["method", "N", "L"],
                  config={"B": 64, "dtype": "float64"}, settings=asdict(settings),
                  fingerprint=environment.fingerprint())
    if not store.get(method="backprop", N=8, L=2):
        store.put([{"method": "backprop", "N": 8, "L": 2, "status": "ok", ...}])
    store.finish()
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gradbench.errors import GradbenchError
from gradbench.results import TEXT_KEYS, read_table, write_atomic, write_text_atomic

STATE_FILE = ".run.json"
RUNNING, FINISHED = "running", "finished"
ARCHIVE = "archive"

RESUME, EXTEND, ARCHIVE_ALL = "resume", "extend", "archive"


@dataclass(frozen=True)
class Decision:
    """What opening a table does with the rows on file: ``resume`` (keep all, same run),
    ``extend`` (keep the rows of the same fingerprint and config, same run) or ``archive``
    (move all aside, new run); ``reason`` is said to the user when rows move."""

    action: str
    reason: str


def decide(
    state: dict | None, fingerprint: str, settings: dict, *, fresh: bool, extend: bool
) -> Decision:
    """The rules of the module docstring's table, in its order; ``state`` is this table's
    entry of the state file (None when there is none)."""
    if fresh:
        return Decision(ARCHIVE_ALL, "--fresh")
    if state is None and extend:  # the rows themselves say their machine and configuration
        return Decision(
            EXTEND, "--extend: no run state on file; rows of other machines or configurations"
        )
    if state is None:
        return Decision(ARCHIVE_ALL, "no run state on file (a fresh clone or an older run)")
    if state.get("fingerprint") != fingerprint:
        return Decision(
            ARCHIVE_ALL,
            f"measured on another machine (fingerprint {state.get('fingerprint')}, "
            f"this one {fingerprint})",
        )
    if extend:
        return Decision(EXTEND, "--extend: other configurations")
    if state.get("status") != RUNNING:
        return Decision(ARCHIVE_ALL, "the run on file is finished (--extend adds cells to it)")
    changed = sorted(k for k in {*state.get("settings", {}), *settings}
                     if state.get("settings", {}).get(k) != settings.get(k))  # fmt: skip
    if changed:
        return Decision(ARCHIVE_ALL, f"the unfinished run on file has other {', '.join(changed)}")
    return Decision(RESUME, "")


def plain(value: object) -> object:
    """A key value as Python compares it: numpy scalars unwrapped, NaN and None as ""
    (a CSV reads an empty cell back as NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def split_extend(rows: list[dict], fingerprint: str, config: dict) -> tuple[list[dict], list[dict]]:
    """(kept, archived): ``--extend`` keeps the rows measured under this fingerprint and
    this configuration, and archives the others."""

    def same(row: dict) -> bool:
        return plain(row.get("fingerprint")) == fingerprint and all(
            plain(row.get(k)) == plain(v) for k, v in config.items()
        )

    kept = [r for r in rows if same(r)]
    return kept, [r for r in rows if not same(r)]


def archive(rows: list[dict], folder: Path, table: str, columns: list[str]) -> list[str]:
    """Move ``rows`` to ``folder/archive/<run_id>/<table>.csv``, one file per run id
    (appended to rows archived there before). Returns the run ids, in order."""
    frame = pd.DataFrame(rows)
    if "run_id" not in frame:
        frame["run_id"] = ""
    frame["run_id"] = frame["run_id"].map(lambda r: str(plain(r)) or "unknown")
    ids = list(dict.fromkeys(frame["run_id"]))
    for run_id, group in frame.groupby("run_id", sort=False):
        path = folder / ARCHIVE / run_id / f"{table}.csv"
        before = pd.read_csv(path, dtype=dict.fromkeys(TEXT_KEYS, str)) if path.exists() else None
        extra = [c for c in group.columns if c not in columns]
        group = group.reindex(columns=[*columns, *extra])
        write_atomic(pd.concat([before, group], ignore_index=True), path)
    return ids


def new_run_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


class Store:
    """One table (``<folder>/<table>.csv``) of one run; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        table: str,
        columns: list[str],
        *,
        cell: list[str],
        config: dict,
        settings: dict,
        fingerprint: str,
        fresh: bool = False,
        extend: bool = False,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.folder, self.table, self.columns = Path(folder), table, columns
        self.path = self.folder / f"{table}.csv"
        self.cell, self.config, self.fingerprint = list(cell), dict(config), fingerprint
        self.key = [*self.cell, *self.config, "fingerprint"]
        self.settings = json.loads(json.dumps(settings, default=str))  # as the file holds it
        state = self._states().get(table)
        on_file = self._read()
        self.decision = decide(state, fingerprint, self.settings, fresh=fresh, extend=extend)
        if self.decision.action == ARCHIVE_ALL:
            kept, moved = [], on_file
        elif self.decision.action == EXTEND:
            kept, moved = split_extend(on_file, fingerprint, self.config)
        else:
            kept, moved = on_file, []
        keep_id = state is not None and self.decision.action != ARCHIVE_ALL
        self.run_id = state["run_id"] if keep_id else new_run_id()
        if moved:
            ids = archive(moved, self.folder, table, columns)
            echo(
                f"gradbench: moved {len(moved)} rows of {self.path.name} (run "
                f"{', '.join(ids)}) to {self.folder / ARCHIVE}/: {self.decision.reason}"
            )
        self._rows: dict[tuple, list[dict]] = {}
        for row in kept:
            self._rows.setdefault(self._key_of(row), []).append(row)
        self._save_state(RUNNING)
        if moved:
            self._write()

    # -- the rows ------------------------------------------------------------------------

    def get(self, **cell) -> list[dict]:
        """This run's rows of one cell (at this config and fingerprint); [] if none."""
        return self._rows.get(self._key_of(cell | self.config, self.fingerprint), [])

    def put(self, rows: Iterable[dict], write: bool = True) -> list[dict]:
        """Stamp ``rows`` with config, fingerprint and run id; replace the rows on file of
        the same keys; rewrite the table atomically (or, not ``write``, with the next put
        that does). Returns the stamped rows."""
        stamp = {**self.config, "fingerprint": self.fingerprint, "run_id": self.run_id}
        stamped = [{**row, **stamp} for row in rows]
        fresh: dict[tuple, list[dict]] = {}
        for row in stamped:
            fresh.setdefault(self._key_of(row), []).append(row)
        self._rows.update(fresh)
        if write:
            self._write()
        return stamped

    def rows(self) -> list[dict]:
        """Every row of this run, in the order first put."""
        return [r for group in self._rows.values() for r in group]

    def frame(self) -> pd.DataFrame:
        """Every row of this run, in the schema's columns."""
        return pd.DataFrame(self.rows()).reindex(columns=self.columns)

    def finish(self) -> None:
        """Mark the run finished: the next run into this folder starts afresh."""
        self._save_state(FINISHED)

    # -- on disk -------------------------------------------------------------------------

    def _key_of(self, row: dict, fingerprint: str | None = None) -> tuple:
        values = {**row, **({"fingerprint": fingerprint} if fingerprint else {})}
        return tuple(plain(values.get(k)) for k in self.key)

    def _read(self) -> list[dict]:
        frame = read_table(self.path, [*self.cell, "status"], missing_ok=True)
        return frame.to_dict("records")

    def _write(self) -> None:
        write_atomic(self.frame(), self.path)

    def _states(self) -> dict:
        path = self.folder / STATE_FILE
        if not path.exists():
            return {}
        try:
            states = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise GradbenchError(f"{path} is corrupt; delete it (the rows are kept)") from None
        return states if isinstance(states, dict) else {}

    def _save_state(self, status: str) -> None:
        states = self._states()
        states[self.table] = {
            "run_id": self.run_id,
            "fingerprint": self.fingerprint,
            "status": status,
            "settings": self.settings,
        }
        write_text_atomic(json.dumps(states, indent=2), self.folder / STATE_FILE)
