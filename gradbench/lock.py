"""One run per results folder.

``gradbench run`` and ``gradbench train`` hold ``<folder>/.lock`` for as long as they run:
an operating-system lock (``flock`` through the maintained ``filelock`` library), which
the kernel releases when its process ends, however it ends. Beside it, ``.lock.json``
names the holder (pid, command, run id, start time), so that

* a second run into the same folder is refused at once with one line naming the first;
* a lock left by a run that was killed (its ``.lock.json`` still there, its ``flock``
  gone with its process) is taken over, and one line says whose it was.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from gradbench.errors import GradbenchError
from gradbench.results import write_text_atomic

LOCK = ".lock"
HOLDER = ".lock.json"


def describe(holder: dict) -> str:
    """``gradbench run (pid 123, run 20261128-213000, started 2026-11-28T21:30:00)``."""
    return (
        f"gradbench {holder.get('command', '?')} (pid {holder.get('pid', '?')}, "
        f"run {holder.get('run_id', '?')}, started {holder.get('started', '?')})"
    )


def read_holder(folder: Path) -> dict | None:
    """What ``.lock.json`` says about the run holding (or last holding) the folder."""
    try:
        holder = json.loads((Path(folder) / HOLDER).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def note_run(folder: Path, run_id: str) -> None:
    """Name the run id in the holder's record once the run knows it (a resumed run keeps
    the id of the run it continues)."""
    if (holder := read_holder(folder)) is not None:
        write_text_atomic(json.dumps(holder | {"run_id": run_id}), Path(folder) / HOLDER)


@contextlib.contextmanager
def hold(
    folder: Path, command: str, run_id: str, echo: Callable[[str], None] = print
) -> Iterator[dict]:
    """Hold ``folder`` for one run; a GradbenchError (one line) if another run holds it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradbenchError(
            f"cannot create the results folder {folder}: {exc.strerror or exc}"
        ) from None
    try:  # a folder that cannot be written is said so, not taken for a busy one
        (folder / LOCK).touch()
    except OSError as exc:
        raise GradbenchError(
            f"cannot write to the results folder {folder}: {exc.strerror or exc}"
        ) from None
    lock = FileLock(str(folder / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = read_holder(folder)
        who = describe(holder) if holder else "another gradbench run"
        raise GradbenchError(
            f"{folder} is in use by {who}; wait for it to finish or choose another --out"
        ) from None
    try:
        if (stale := read_holder(folder)) is not None:
            echo(f"gradbench: took over the lock of {describe(stale)}, which is no longer running")
        holder = {
            "pid": os.getpid(),
            "command": command,
            "run_id": run_id,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_text_atomic(json.dumps(holder), folder / HOLDER)
        yield holder
    finally:
        (folder / HOLDER).unlink(missing_ok=True)
        lock.release()
