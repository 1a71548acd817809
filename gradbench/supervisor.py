"""Crash isolation: a supervisor runs the measuring in a worker process and outlives it.

A plugin may kill the interpreter that measures it (``os._exit``, a segfault in a C
extension, the kernel's OOM killer). So ``gradbench run`` is a supervisor: it starts a
worker — the same command line plus ``--worker K`` — which does all the measuring, in one
process, through pytest-benchmark, as before. Around each unit of work (one cell) the
worker writes an **in-flight marker**, ``<folder>/.inflight.json``, naming it, and removes
it when the unit ends, however it ends in Python (a result, an exception, Ctrl-C).

* The worker exits and the marker is gone: the run is over; its exit status is the run's.
* The worker dies and the marker is there: the unit in flight killed it. The supervisor
  writes how it died (signal or exit status) into the marker and starts worker K+1, which
  records that unit ``crashed`` with that reason and resumes after it.
* The whole run was killed (SIGKILL, power loss): the marker is still there when the next
  run starts, and its first worker records that unit ``crashed`` the same way (the sweep's
  ``--retry-crashed`` tries such cells again).

Nothing here knows what a unit is: the sweep marks cells and records them, and any other
long command (``gradbench train``) can mark its own units the same way.

Per-round timing data is kept too: pytest-benchmark writes its JSON only when its session
ends, so the worker also appends each finished benchmark to a journal (``.jsonl`` beside
the JSON it will write); the journal of a worker that died is sealed by the supervisor
into the gzipped JSON file the worker would have written, in pytest-benchmark's format.

The worker dies with the supervisor (``PR_SET_PDEATHSIG`` on Linux), so a killed run
leaves nothing running. SIGTERM, to either, is handled like Ctrl-C: the unit in flight
is abandoned (not crashed), finished ones are kept, one line, exit 128 + the signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gzip
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

MARKER = ".inflight.json"
SUPERVISOR_ENV = "GRADBENCH_SUPERVISOR"  # the supervisor's pid, set in every worker
PR_SET_PDEATHSIG = 1
received: int | None = None  # the interrupting signal, once one arrived


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, with the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def handle_termination() -> None:
    """SIGINT and SIGTERM both raise :class:`Interrupted` in the main thread."""

    def interrupt(signum, frame):
        global received
        received = signum
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def exit_status(exc: BaseException) -> int:
    """The exit status for an interruption: 128 + its signal (130 for Ctrl-C)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def death(returncode: int) -> str:
    """How a worker ended, in words: 'was killed by signal 11 (SIGSEGV)', 'exited with
    status 3'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        hint = " — out of memory?" if -returncode == signal.SIGKILL else ""
        return f"was killed by signal {-returncode} ({name}{hint})"
    return f"exited with status {returncode}"


# -- the in-flight marker -----------------------------------------------------------------


class InFlight:
    """The marker file naming the unit of work in flight, if any."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / MARKER

    def read(self) -> dict | None:
        try:
            marker = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) else None

    def write(self, marker: dict) -> None:
        """Replace the marker atomically. Not fsynced: it must survive its process's
        death, which the page cache does, and an fsync per cell cost ~10 ms here."""
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def around(self, what: str, key: list) -> Iterator[None]:
        """Mark ``what`` (with its ``key``) in flight for the duration of the block."""
        self.write(
            {"what": what, "key": key, "pid": os.getpid(), "started": _now()}
        )  # fmt: skip
        try:
            yield
        finally:
            self.path.unlink(missing_ok=True)

    def take(self) -> dict | None:
        """The marker of a process that died (there is no other while the folder is
        locked), with ``reason`` filled in, and remove it; None when there is none."""
        marker = self.read()
        if marker is None:
            self.path.unlink(missing_ok=True)
            return None
        how = marker.get("death") or "was killed with the whole run (found by the next run)"
        marker["reason"] = f"the process measuring it {how}"
        self.path.unlink(missing_ok=True)
        return marker


# -- the supervisor -----------------------------------------------------------------------


def supervise(
    command: Callable[[int], list[str]],
    folder: Path,
    echo: Callable[[str], None],
) -> int:
    """Run workers ``command(1)``, ``command(2)``, … until one ends without dying in a
    unit of work; returns that worker's exit status."""
    inflight = InFlight(folder)
    seal_journals(folder)  # a run killed last time may have left one
    last = None
    worker = 1
    while True:
        returncode = _run_worker(command(worker))
        marker = inflight.read()
        if marker is None:
            if returncode < 0:  # died outside any unit: starting again would not help
                echo(f"gradbench: error: the worker {death(returncode)} outside any cell")
                return 128 - returncode
            return returncode
        marker["death"] = death(returncode)
        inflight.write(marker)
        seal_journals(folder)
        if marker["what"] == last:
            echo(f"gradbench: error: {marker['what']} crashed twice; stopping")
            return 1
        echo(
            f"gradbench: {marker['what']}: the worker {marker['death']}; recorded as crashed, "
            "continuing in a new worker"
        )
        last, worker = marker["what"], worker + 1


def _run_worker(argv: list[str]) -> int:
    """Run one worker to its end, forwarding SIGINT and SIGTERM to it."""
    proc: subprocess.Popen | None = None

    def forward(signum, frame):
        if proc is not None and proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
        # its own session: a terminal's Ctrl-C reaches the worker once, through `forward`
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``; a no-op
    elsewhere), so no measurement goes on timing behind a killed run."""
    name = ctypes.util.find_library("c")
    if name and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def become_worker() -> None:
    """Called first in a worker: die with the supervisor, and exit at once if it is
    already gone."""
    parent = os.environ.get(SUPERVISOR_ENV)
    die_with_parent()
    if parent and os.getppid() != int(parent):
        os._exit(1)


# -- per-round data of a worker that died ---------------------------------------------------


def journal_path(json_path: Path) -> Path:
    """Where a worker journals the benchmarks it will write to ``json_path``."""
    return json_path.with_name(json_path.name + "l")  # x.json → x.jsonl


def sealed_path(journal: Path) -> Path:
    """The gzipped JSON a journal stands for: x.jsonl → x.json.gz (as the harness keeps
    pytest-benchmark's JSON)."""
    return journal.with_name(journal.name[: -len("l")] + ".gz")


def seal_journals(folder: Path) -> list[Path]:
    """Turn every journal left in ``<folder>/raw`` into the JSON file its worker would have
    written (pytest-benchmark's format, with this machine's info); returns the files."""
    journals = sorted((Path(folder) / "raw").glob("*.jsonl"))
    if not journals:
        return []
    from pytest_benchmark import __version__
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.utils import get_commit_info

    machine, commit = pytest_benchmark_generate_machine_info(), get_commit_info()
    sealed = []
    for journal in journals:
        lines = [line for line in journal.read_text().splitlines() if line.strip()]
        benchmarks = []
        for line in lines:
            with contextlib.suppress(ValueError):  # a line cut short by the death
                benchmarks.append(json.loads(line))
        target = sealed_path(journal)
        if benchmarks:
            document = {
                "machine_info": machine,
                "commit_info": commit,
                "benchmarks": benchmarks,
                "datetime": _now(),
                "version": __version__,
            }
            with gzip.open(target, "wt") as f:
                json.dump(document, f)
            sealed.append(target)
        journal.unlink()
    return sealed


class Journal:
    """A pytest plugin for the worker: marks each test in flight and journals its
    benchmarks as soon as it ends. ``unit(item)`` gives (what, key) for a test that is a
    unit of work, or None."""

    name = "gradbench-journal"

    def __init__(
        self, folder: Path, json_path: Path, unit: Callable[[object], tuple[str, list] | None]
    ) -> None:
        self.inflight = InFlight(folder)
        self.path = journal_path(json_path)
        self.unit = unit
        self.seen = 0
        self.__name__ = self.name

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        unit = self.unit(item)
        with self.inflight.around(*unit) if unit else contextlib.nullcontext():
            result = yield
        self._append(item.config)
        return result

    def _append(self, config) -> None:
        session = getattr(config, "_benchmarksession", None)
        if session is None:
            return
        new = session.benchmarks[self.seen :]
        self.seen = len(session.benchmarks)
        from pytest_benchmark.utils import safe_dumps  # how pytest-benchmark writes it

        lines = [safe_dumps(b.as_dict(include_data=True)) + "\n" for b in new if not b.has_error]
        if lines:
            with self.path.open("a") as f:
                f.writelines(lines)

    def close(self) -> None:
        """After the session: pytest-benchmark's JSON is kept, and the journal goes; where
        there is none (an interrupted session), the journal is sealed instead."""
        if sealed_path(self.path).exists():
            self.path.unlink(missing_ok=True)
        else:
            seal_journals(self.path.parent.parent)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
