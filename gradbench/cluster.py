"""``gradbench run --cluster``: the sweep spread over Dask distributed workers.

The unit of work is one size (N, L) with all its methods, so every ratio inside a size
(gradient ÷ forward pass, ÷ backprop) is measured on one machine. Inside a Dask worker a
unit runs the ordinary local sweep as a subprocess — ``python -m gradbench run`` at that
one size, with this run's settings — and returns its rows and pytest-benchmark's raw
JSON; the client alone writes the results folder, a unit's rows as soon as they arrive,
atomically. Each row carries the fingerprint of the machine that measured it.

* **order** — sizes go out by growing P, and a size waits until every size it dominates
  (N' ≤ N and L' ≤ L) is on file. Then the worker projects each method's time from the
  smaller sizes exactly as a local sweep does (it gets their rows), and the client does
  not even send a method that was skipped or timed out at a smaller size: it records it
  ``skipped`` with that reason, so slow methods never run at large sizes.
* **faults** — a worker lost mid-unit costs that unit only: Dask runs it again on
  another worker, up to ``--retries`` times (the scheduler's ``allowed-failures``, and
  the task's own ``retries`` for a unit that fails); past that, every cell of the size
  is recorded ``crashed`` with the reason and the run goes on.
* **resume** — a size whose every cell is on file (same configuration) is not sent
  again; Ctrl-C or SIGTERM keeps every row already written.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from gradbench import environment, supervisor
from gradbench.config import Settings
from gradbench.errors import GradbenchError, one_line
from gradbench.projection import Budgets, too_slow
from gradbench.registry import Entry
from gradbench.results import GRADIENT_COLUMNS, read_table, write_atomic, write_text_atomic
from gradbench.sweep import KEY, REFERENCE, REFERENCES, config_of

INSTALL = "--cluster needs Dask distributed: pip install 'gradbench[cluster]'"
PROFILE = "unit"  # the one profile of the settings file a worker's sweep reads
COLUMNS = [*GRADIENT_COLUMNS, *(c for c in ("fingerprint",) if c not in GRADIENT_COLUMNS)]
PROJECTED = ("skipped", "timeout")  # statuses whose projection rules out larger sizes
Size = tuple[int, int]


# -- the plan: pure bookkeeping on the client ----------------------------------------------


def parse_address(text: str) -> str | int:
    """``local:K`` → K (a LocalCluster of K single-threaded worker processes); anything
    else is a scheduler address such as ``tcp://10.0.0.1:8786``."""
    if not text.startswith("local:"):
        return text
    count = text.removeprefix("local:")
    if not count.isdigit() or int(count) < 1:
        raise GradbenchError(f"--cluster {text}: expected local:K with K a positive integer")
    return int(count)


def sizes_by_P(settings: Settings) -> list[Size]:
    """Every (N, L) of the grid, by growing P (the order a local sweep runs them in)."""
    grid = [(N, L) for N in settings.N for L in settings.L]
    return sorted(grid, key=lambda s: (settings.network(*s).P, s))


def ready(size: Size, grid: list[Size], done: set[Size]) -> bool:
    """Whether every size that ``size`` dominates (N' ≤ N, L' ≤ L) is finished."""
    N, L = size
    return all(s in done for s in grid if s != size and s[0] <= N and s[1] <= L)


def same_configuration(table: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The rows measured under these settings, any size."""
    mask = np.logical_and.reduce([table[k] == v for k, v in config_of(settings).items()])
    return table[mask]


def finished(table: pd.DataFrame, settings: Settings, methods: list[str]) -> set[Size]:
    """Sizes whose every cell (the references and each method) has a row on file."""
    mine = same_configuration(table, settings)
    wanted = {*REFERENCES, *methods}
    return {(N, L) for (N, L), rows in mine.groupby(["N", "L"]) if wanted <= set(rows["method"])}


def ruled_out(table: pd.DataFrame, settings: Settings, method: str, size: Size) -> dict | None:
    """The fields of a ``skipped`` row when ``method`` was skipped or timed out over a
    budget (:func:`gradbench.projection.too_slow`, the local sweep's rule) at a size that
    ``size`` dominates — larger cells are slower — else None."""
    mine = same_configuration(table, settings)
    N, L = size
    budgets = Budgets(settings.budget_s, settings.prepare_budget_s)
    smaller = mine[(mine["method"] == method) & (mine["N"] <= N) & (mine["L"] <= L)]
    slow = smaller[[too_slow(r, budgets) for r in smaller.to_dict("records")]]
    if slow.empty:
        return None
    row = slow.sort_values(["N", "L"]).iloc[-1]
    return {
        "status": "skipped",
        "reason": f"{row.status} at smaller N={row.N}, L={row.L}: larger cells are slower",
        "projected_s": float(row.projected_s),
    }


def cell_row(
    settings: Settings, entries: dict[str, Entry], method: str, size: Size, **fields
) -> dict:
    """A row the client writes itself (a method it did not send, a lost unit's cells):
    the cell's key, kind, P and cost model in forward passes, and ``fields``."""
    net = settings.network(*size)
    if method in REFERENCES:
        kind, cost = "reference", REFERENCES[method][1]
    else:
        entry = entries.get(method)
        ok = entry is not None and entry.available
        kind, cost = (entry.method.kind, entry.method.cost(net)) if ok else ("", math.nan)
    return {
        "method": method,
        "N": size[0],
        "L": size[1],
        **config_of(settings),
        "kind": kind,
        "P": net.P,
        "loss_evals": cost,
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }


def settings_toml(settings: Settings, size: Size, methods: list[str]) -> str:
    """These settings at one size as a TOML file of one profile, ``[unit]``: what a
    worker's sweep reads, so every setting reaches it, whichever machine it is on."""
    values = asdict(settings) | {"N": [size[0]], "L": [size[1]], "methods": methods}
    lines = [f"[{PROFILE}]"]
    for f in fields(Settings):
        if f.name != "train":
            value = values[f.name]
            lines.append(
                f"{f.name} = {json.dumps(list(value) if isinstance(value, tuple) else value)}"
            )
    return "\n".join(lines) + "\n"


def layout_warnings(workers: dict[str, dict]) -> list[str]:
    """What in the cluster's layout (Dask's scheduler_info()["workers"]) spoils timings:
    a worker running several units at once, or several workers sharing one host."""
    notes = [
        f"worker {address} has {info['nthreads']} threads and runs that many sizes at once; "
        "start workers with --nthreads 1 for clean timings"
        for address, info in workers.items()
        if info.get("nthreads", 1) > 1
    ]
    hosts = pd.Series([info.get("host", address) for address, info in workers.items()])
    for host, count in hosts.value_counts().items():
        if count > 1:
            notes.append(
                f"{count} workers share host {host}: their timings disturb each other "
                "(one worker per node gives clean timings)"
            )
    return notes


# -- one unit, inside a Dask worker ---------------------------------------------------------


def machine_fingerprint(threads: int) -> str:
    """This machine's fingerprint (:func:`gradbench.environment.fingerprint`) at the BLAS
    thread count the unit's sweep runs with."""
    with threadpool_limits(limits=threads, user_api="blas"):
        return environment.fingerprint()


def _scratch() -> str | None:
    """The worker's own scratch folder (Dask cleans it up), or the system's temp."""
    from distributed import get_worker

    try:
        return get_worker().local_directory
    except ValueError:  # not inside a worker
        return None


def run_unit(size: Size, profile: str, prior: str, plugins: list[str], threads: int) -> dict:
    """Run one size's local sweep in a subprocess; return its rows (each with the
    fingerprint of this machine), the raw JSON by file name, environment and host.

    ``profile`` is :func:`settings_toml`'s text, ``prior`` the CSV of smaller sizes'
    rows (the sweep projects from them)."""
    with tempfile.TemporaryDirectory(prefix="gradbench-unit-", dir=_scratch()) as tmp:
        folder = Path(tmp)
        (folder / "unit.toml").write_text(profile)
        out = folder / "out"
        out.mkdir()
        if prior:
            (out / "gradients.csv").write_text(prior)
        command = [
            sys.executable,
            "-m",
            "gradbench",
            "run",
            "--config",
            str(folder / "unit.toml"),
            "--profile",
            PROFILE,
            "--out",
            str(out),
            "--threads",
            str(threads),
            "--extend",  # keep the smaller sizes' rows: the sweep projects from them
            *(arg for path in plugins for arg in ("--plugin", path)),
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, preexec_fn=supervisor.die_with_parent
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise RuntimeError(f"the size's sweep failed: {lines[-1]}")
        rows = pd.read_csv(out / "gradients.csv")
        raw = {p.name: p.read_bytes() for p in (out / "raw").iterdir() if p.is_file()}
        env = json.loads((out / "environment.json").read_text())
    mine = rows[(rows["N"] == size[0]) & (rows["L"] == size[1])].reindex(columns=COLUMNS)
    mine["fingerprint"] = mine["fingerprint"].fillna(machine_fingerprint(threads))
    return {
        "rows": mine.to_dict("records"),
        "raw": raw,
        "environment": env,
        "fingerprint": machine_fingerprint(threads),
        "host": socket.gethostname(),
    }


# -- the client --------------------------------------------------------------------------


class ClusterSweep:
    """One run on a cluster: the results folder as the client keeps it (rows by their key,
    rewritten atomically as units finish), the units to send and what came back."""

    def __init__(
        self,
        settings: Settings,
        entries: list[Entry],
        out: Path,
        *,
        fresh: bool = False,
        plugins: tuple[str, ...] = (),
        threads: int = 1,
        retries: int = 2,
    ) -> None:
        self.settings = settings
        self.entries = {e.name: e for e in entries}
        self.methods = list(self.entries)
        self.out = Path(out)
        self.csv = self.out / "gradients.csv"
        self.plugins = [str(Path(p).resolve()) for p in plugins]
        self.threads, self.retries = threads, retries
        self.run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        on_file = pd.DataFrame(columns=COLUMNS)
        if not fresh:
            on_file = read_table(self.csv, GRADIENT_COLUMNS, missing_ok=True)
        self.rows = {tuple(r[k] for k in KEY): r for r in on_file.to_dict("records")}
        self.machines: dict[str, dict] = {}
        self.grid = sizes_by_P(settings)
        self.done = finished(self.frame(), settings, self.methods)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(list(self.rows.values())).reindex(columns=COLUMNS)
        return frame.sort_values(["P", "N", "method"], kind="stable").reset_index(drop=True)

    def unit(self, size: Size) -> tuple[tuple, dict[str, dict]]:
        """``run_unit``'s arguments for ``size``, and the methods not sent (the fields of
        their ``skipped`` rows): those skipped or timed out at a smaller size."""
        frame = self.frame()
        skip = {
            m: why
            for m in self.methods
            if m != REFERENCE
            if (why := ruled_out(frame, self.settings, m, size))
        }
        prior = same_configuration(frame, self.settings)
        prior = prior[prior["status"].isin(("ok", "wrong", *PROJECTED))]  # timed or projected
        profile = settings_toml(self.settings, size, [m for m in self.methods if m not in skip])
        return (size, profile, prior.to_csv(index=False), self.plugins, self.threads), skip

    def collect(self, future, size: Size, skip: dict[str, dict]) -> list[dict]:
        """Record a finished unit: the worker's rows, then the methods not sent; or, when
        the unit was lost for good, every cell of the size ``crashed`` with the reason."""
        try:
            result = future.result()
        except Exception as exc:
            cells = [m for m in [*REFERENCES, *self.methods] if m not in skip]
            rows = [
                self.row(m, size, status="crashed", reason=f"unit lost: {one_line(exc)}")
                for m in cells
            ]
            fingerprint = ""
        else:
            self._keep(result, size)
            rows, fingerprint = result["rows"], result["fingerprint"]
        rows = [*rows, *(self.row(m, size, fingerprint=fingerprint, **w) for m, w in skip.items())]
        rows = [row | {"run_id": self.run_id} for row in rows]
        for row in rows:
            self.rows[tuple(row.get(k) for k in KEY)] = row
        write_atomic(self.frame(), self.csv)
        self.done.add(size)
        return rows

    def row(self, method: str, size: Size, **fields) -> dict:
        return cell_row(self.settings, self.entries, method, size, **fields)

    def _keep(self, result: dict, size: Size) -> None:
        """A unit's raw JSON under raw/ and its machine in environment.json (one record
        per fingerprint), each file replaced whole."""
        for name, data in result["raw"].items():
            path = self.out / "raw" / f"{self.run_id}-N{size[0]}-L{size[1]}-{name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.tmp")
            partial.write_bytes(data)
            partial.replace(path)
        self.machines[result["fingerprint"]] = result["environment"] | {"host": result["host"]}
        record = {"run_id": self.run_id, "machines": self.machines,
                  "settings": asdict(self.settings)}  # fmt: skip
        write_text_atomic(json.dumps(record, indent=2, default=str), self.out / "environment.json")


def run(sweep: ClusterSweep, address: str) -> dict[str, int]:
    """Run ``sweep`` on the cluster at ``address`` (see the module's docstring for the
    rules); returns the count of rows by status."""
    target = parse_address(address)
    distributed = _import_dask()
    started = time.perf_counter()
    with _connect(distributed, target, sweep.retries) as client, _sigterm_interrupts():
        for note in layout_warnings(client.scheduler_info()["workers"]):
            _echo(f"gradbench: note: {note}")
        waiting = [s for s in sweep.grid if s not in sweep.done]
        _echo(
            f"gradbench: {len(sweep.grid)} sizes ({len(sweep.grid) - len(waiting)} on file) on "
            f"{len(client.nthreads())} Dask workers at {client.scheduler.address}; budget "
            f"{sweep.settings.budget_s:g} s per gradient; results in {sweep.out}/"
        )
        units, sent = distributed.as_completed(), {}

        def send() -> None:
            """Submit waiting sizes whose smaller sizes are done, by growing P, while a
            worker thread is free."""
            free = max(1, sum(client.nthreads().values())) - len(sent)
            for size in [s for s in waiting if ready(s, sweep.grid, sweep.done)][: max(0, free)]:
                waiting.remove(size)
                args, skip = sweep.unit(size)
                future = client.submit(
                    run_unit,
                    *args,
                    retries=sweep.retries,
                    pure=False,
                    key=f"gradbench-{sweep.run_id}-N{size[0]}-L{size[1]}",
                )
                sent[future] = (size, skip)
                units.add(future)

        send()
        for future in units:
            size, skip = sent.pop(future)
            rows = sweep.collect(future, size, skip)
            elapsed = time.perf_counter() - started
            _echo(_progress(size, rows, len(sweep.done), len(sweep.grid), elapsed))
            send()
    return sweep.frame()["status"].value_counts().to_dict()


def _progress(size: Size, rows: list[dict], done: int, total: int, elapsed: float) -> str:
    counts = pd.Series([r["status"] for r in rows]).value_counts()
    where = next((r.get("fingerprint") for r in rows if r.get("fingerprint")), "") or "?"
    return (
        f"[{done}/{total}] N={size[0]:<4} L={size[1]:<2} on {where}: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f" | {elapsed:.0f}s elapsed"
    )


def _import_dask():
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise GradbenchError(INSTALL) from None
    return distributed


@contextlib.contextmanager
def _connect(distributed, target: str | int, retries: int) -> Iterator:
    """A client on the scheduler at address ``target``, or on a LocalCluster of ``target``
    workers (loopback only, no dashboard, one thread per worker process)."""
    with contextlib.ExitStack() as stack:
        if isinstance(target, int):
            import dask

            # and no statistical profiler sampling every 10 ms beside the timed sweep
            quiet = {"distributed.scheduler.allowed-failures": retries,
                     "distributed.worker.profile.enabled": False}  # fmt: skip
            stack.enter_context(dask.config.set(quiet))
            target = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=target,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            )
        try:
            client = stack.enter_context(distributed.Client(target, timeout="20s"))
        except OSError as exc:
            raise GradbenchError(f"cannot reach the Dask scheduler at {target}: {exc}") from None
        yield client


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does: rows written so far are kept."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _echo(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
