"""The ``gradbench`` command: list, check, run, train, report, merge.

Every problem a user can cause (a bad argument, an unknown method, a broken plugin file,
a corrupt results file, a size too large for memory, a results folder that cannot be
written) ends in one line on stderr and exit status 2, never a traceback. An unexpected
internal error is one line too, with exit status 1; ``--debug`` (or GRADBENCH_DEBUG=1)
shows its traceback. Ctrl-C and SIGTERM keep what is finished and exit 128 + the signal.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import timeit
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from gradbench import __version__, config, lock, memory, registry, supervisor
from gradbench.errors import GradbenchError, one_line
from gradbench.methods.base import ask
from gradbench.model import ACTIVATIONS, DTYPES, LOSSES, Network
from gradbench.problem import make_problem
from gradbench.testing import check_grads, reference_gradient

REFERENCE = "backprop"  # the exact method every other gradient is compared with


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise GradbenchError(message)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return positive_int(text) if text.strip() != "0" else 0


def int_list(text: str) -> list[int]:
    """'4,8,16' → [4, 8, 16], each a positive integer."""
    return [positive_int(part) for part in text.split(",")]


def name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated method names, got {text!r}")
    return names


def byte_size(text: str) -> int:
    try:
        return memory.parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_memory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--memory-budget",
        type=byte_size,
        help="bytes one cell may use, e.g. 4G "  # pragma: no mutate
        "(default: half the memory available at start)",  # pragma: no mutate
    )


NETWORK_OPTIONS = ("activation", "loss", "dtype", "bias", "seed")


def _add_network_args(p: argparse.ArgumentParser, *, grid: bool = False) -> None:
    """Network options; for a grid (``run``) they default to the profile's values."""
    if grid:
        p.add_argument(
            "--N",
            type=int_list,
            help="widths, e.g. 4,8,16",  # pragma: no mutate
        )
        p.add_argument(
            "--L",
            type=int_list,
            help="depths, e.g. 1,2,4",  # pragma: no mutate
        )
        p.add_argument(
            "--B",
            type=positive_int,
            help="batch size",  # pragma: no mutate
        )
    else:
        p.add_argument(
            "--N",
            type=positive_int,
            default=8,
            help="width (default 8)",  # pragma: no mutate
        )
        p.add_argument(
            "--L",
            type=positive_int,
            default=3,
            help="depth (default 3)",  # pragma: no mutate
        )
        p.add_argument(
            "--B",
            type=positive_int,
            default=64,
            help="batch size (default 64)",  # pragma: no mutate
        )
    settings = config.Settings()
    default = {k: None if grid else getattr(settings, k) for k in NETWORK_OPTIONS}
    p.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        default=default["activation"],
        help="between layers",  # pragma: no mutate
    )
    p.add_argument(
        "--loss",
        choices=list(LOSSES),
        default=default["loss"],
        help="loss on the outputs",  # pragma: no mutate
    )
    p.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default=default["dtype"],
        help="floating-point type",  # pragma: no mutate
    )
    p.add_argument(
        "--no-bias",
        dest="bias",
        action="store_false",
        default=default["bias"],
        help="layers without bias",  # pragma: no mutate
    )
    p.add_argument(
        "--seed",
        type=int,
        default=default["seed"],
        help="seed of the data and the initial weights",  # pragma: no mutate
    )
    p.add_argument(
        "--methods",
        type=name_list,
        help="comma-separated method names",  # pragma: no mutate
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        help="a local plugin file (repeatable)",  # pragma: no mutate
    )
    _add_memory_arg(p)


LIST_WIDTH = 100  # `gradbench list` fits a terminal this wide
LIST_SIZES = (Network(16, 2), Network(64, 4))  # where the cost and memory models are shown
LIST_B = 64
LIST_ROW = "{:<18} {:<11} {:>12} {:>12} {:>12}  {}"


def _number(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def _bytes(x: float | None) -> str:
    if x is None:
        return "no model"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if x < 1024 or unit == "GiB":
            return f"{x:.3g} {unit}"
        x /= 1024


def _listing(name: str, kind: str, costs: list[str], memory: str, status: str, text: str):
    lines = [LIST_ROW.format(name, kind, *costs, memory, status).rstrip()]
    return lines + textwrap.wrap(text, LIST_WIDTH, initial_indent="  ", subsequent_indent="  ")


def cmd_list(args: argparse.Namespace) -> int:
    from gradbench.sweep import FLOOR, FORWARD

    large = LIST_SIZES[-1]
    sizes = [f"N={net.N} L={net.L}" for net in LIST_SIZES]
    print(f"cost: forward passes per gradient (layer steps ÷ L) at {' and '.join(sizes)};")
    print(f"memory: bytes per gradient beyond θ and the data at {sizes[-1]} B={LIST_B}")
    print(LIST_ROW.format("method", "kind", *sizes, "memory", "").rstrip())
    lines = []
    for e in registry.discover(args.plugin).values():
        if not e.available:
            text = f"{e.reason}: {e.origin}"
            lines += _listing(e.name, "-", ["-", "-"], "-", "unavailable", text)
            continue
        m = e.method
        costs = [_number(m.cost(net)) for net in LIST_SIZES]
        memory = _bytes(ask(m, "memory", large, LIST_B))
        lines += _listing(e.name, m.kind, costs, memory, "", m.description)
    forward = "problem.loss(θ), the unit of cost."  # pragma: no mutate
    floor = "backprop's bare matrix products, the floor it nears."  # pragma: no mutate
    lines += _listing(FORWARD, "timed", ["1", "1"], "-", "", forward)
    lines += _listing(FLOOR, "timed", ["-", "-"], "-", "", floor)
    print("\n".join(lines))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    budget = args.memory_budget or memory.default_budget()
    memory.check_size(Network(args.N, args.L, args.activation, args.loss, args.bias,
                              args.dtype), args.B, budget)  # fmt: skip
    problem = make_problem(
        args.N,
        args.L,
        args.B,
        activation=args.activation,
        loss=args.loss,
        bias=args.bias,
        dtype=args.dtype,
        seed=args.seed,
    )
    entries = registry.discover(args.plugin)
    methods = registry.select(entries, args.methods)
    theta = problem.theta0
    g_ref = reference_gradient(problem, theta)
    print(
        f"N={args.N} L={args.L} B={args.B} P={problem.P} {args.activation} {args.loss} "
        f"{args.dtype} bias={args.bias}; loss {problem.loss(theta):.12g}; "
        "grad_error = max ρ against float64 backprop"
    )
    rows = [_check_one(e, problem, g_ref) for e in methods]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _check_one(entry: registry.Entry, problem, g_ref) -> dict:
    row = {"method": entry.name, "loss": "", "grad_error": "", "grad_error_mean": ""}
    row |= {"tolerance": "", "time_s": ""}
    if not entry.available:
        return row | {"status": f"unavailable: {entry.reason}"}
    method = entry.method
    if reason := method.supports(problem):
        return row | {"status": f"declined: {reason}"}
    try:
        grad_fn = method.prepare(problem)
    except Exception as exc:
        return row | {"status": f"error: {one_line(exc)}"}
    verdict = check_grads(method, problem, reference=g_ref, grad_fn=grad_fn)
    if verdict.status == "error":
        return row | {"status": f"error: {verdict.reason}"}
    seconds = min(timeit.repeat(lambda: grad_fn(problem.theta0), number=1, repeat=3))
    status = f"{verdict.status}: {verdict.reason}" if verdict.reason else verdict.status
    note = method.note(problem)
    return row | {
        "loss": f"{verdict.loss:.12g}",
        "grad_error": f"{verdict.grad_error:.1e}",
        "grad_error_mean": f"{verdict.grad_error_mean:.1e}",
        "tolerance": "-" if verdict.tolerance is None else f"{verdict.tolerance:.0e}",
        "time_s": f"{seconds:.2e}",
        "status": f"{status} ({note})" if note else status,
    }


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _settings(args: argparse.Namespace):
    """The profile from the config file, with the command line's overrides on top."""
    settings = config.load(args.profile, args.config)
    overrides = {k: getattr(args, k) for k in ("N", "L", "B") if getattr(args, k) is not None}
    overrides |= {k: getattr(args, k) for k in NETWORK_OPTIONS if getattr(args, k) is not None}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if args.methods:
        overrides["methods"] = tuple(args.methods)
    if args.budget is not None:
        overrides["budget_s"] = args.budget
        overrides["hard_limit_s"] = args.hard_limit or 10 * args.budget
    elif args.hard_limit is not None:
        overrides["hard_limit_s"] = args.hard_limit
    return config.validate(replace(settings, **overrides), "command line")


def cmd_run(args: argparse.Namespace) -> int:
    """The supervisor: lock the results folder, then run the sweep in worker processes
    (gradbench.supervisor), each the same command line plus ``--worker K``."""
    from gradbench.store import new_run_id

    settings = _settings(args)
    entries = registry.select(registry.discover(args.plugin), _method_names(settings))
    if args.cluster:
        return _run_on_cluster(args, settings, entries)
    if args.worker:
        return _run_worker(args, settings, entries)
    out = Path(args.out)
    budget = args.memory_budget or memory.default_budget()  # measured once, for every worker

    def worker(k: int) -> list[str]:
        extra = ["--worker", str(k), "--memory-budget", str(budget)]
        return [sys.executable, "-m", "gradbench", *args.argv, *extra]

    with lock.hold(out, "run", new_run_id(), echo=_say):  # the worker names the run it opens
        status = supervisor.supervise(worker, out, _say)
    if status != 0:
        return status
    from gradbench.sweep import FLOOR, FORWARD

    names = [FORWARD, FLOOR, *(e.name for e in entries)]
    counts = _statuses(out / "gradients.csv", settings, names)
    print(summary_line(counts))
    return 1 if args.strict and any(counts.get(s) for s in PROBLEMS) else 0


def _method_names(settings) -> list[str] | None:
    names = list(settings.methods) if settings.methods else None
    if names and REFERENCE not in names:
        names.insert(0, REFERENCE)  # every cell's error ρ is measured against backprop
    return names


def _run_worker(args: argparse.Namespace, settings, entries: list[registry.Entry]) -> int:
    """One worker: measures in this process, through pytest-benchmark."""
    from gradbench import harness  # imports pytest: only when a sweep runs
    from gradbench.sweep import Sweep

    supervisor.become_worker()
    first = args.worker == 1  # later workers resume the run the first one opened
    sweep = Sweep(
        settings,
        entries,
        Path(args.out),
        fresh=args.fresh and first,
        extend=args.extend and first,
        threads=args.threads or 1,  # why one: README, "One BLAS thread"
        memory_budget=args.memory_budget,
        retry_crashed=args.retry_crashed and first,
    )
    lock.note_run(sweep.out, sweep.run_id)
    sweep.echo_resumed = first
    status = harness.run(sweep)
    if supervisor.received:
        raise supervisor.Interrupted(supervisor.received)
    if status not in (0, 5):
        raise GradbenchError(
            f"the sweep stopped early (pytest exit {status}); finished cells are in {sweep.csv}"
        )
    print(f"wrote {sweep.csv} and {sweep.out / 'raw'}/{sweep.run_id}*.json.gz")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from gradbench import compare

    table = compare.compare(compare.load(Path(args.a)), compare.load(Path(args.b)))
    print(compare.render(table))
    return 0


PROBLEMS = ("crashed", "timeout", "wrong", "error")  # statuses the last line warns about


def summary_line(counts: Mapping[str, int]) -> str:
    """The sweep's last line: cells by status, and a warning when any went wrong."""
    total = sum(counts.values())
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if n)
    bad = sum(counts.get(s, 0) for s in PROBLEMS)
    if bad:
        return f"gradbench: {total} cells: {parts} — {bad} need a look (see reason column)"
    return f"gradbench: {total} cells: {parts}"


def _statuses(csv: Path, settings, methods: list[str]) -> dict[str, int]:
    """This sweep's cells on file (the folder holds this run's configuration only),
    counted by status."""
    from gradbench.results import GRADIENT_COLUMNS, read_table

    t = read_table(csv, GRADIENT_COLUMNS, missing_ok=True)
    mine = t.method.isin(methods) & t.N.isin(settings.N) & t.L.isin(settings.L)
    return t[mine].status.value_counts().to_dict()


def _run_on_cluster(args: argparse.Namespace, settings, entries: list[registry.Entry]) -> int:
    from gradbench import cluster

    sweep = cluster.ClusterSweep(
        settings, entries, Path(args.out), fresh=args.fresh, plugins=tuple(args.plugin),
        threads=args.threads or 1, retries=args.retries,
    )  # fmt: skip
    counts = cluster.run(sweep, args.cluster)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"wrote {sweep.csv} ({summary}) and the raw JSON of each size in {sweep.out / 'raw'}/")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """The supervisor, as for ``run``: lock the results folder, then train in worker
    processes, each the same command line plus ``--worker K``; a run whose worker died
    is recorded ``crashed`` by the next worker, which goes on with the next run."""
    from gradbench import training  # imports scipy.optimize and cma
    from gradbench.store import new_run_id

    settings = _settings(args)
    if args.budget_train is not None:
        train = replace(settings.train, budget_evals=args.budget_train)
        settings = replace(settings, train=train)
    # refuse an unknown optimizer or gradient method before running anything; backprop
    # also tunes gradient descent's learning rate
    parsed = [training.parse(name) for name in settings.train.optimizers]
    entries = registry.discover(args.plugin)
    registry.select(entries, [REFERENCE] + [method for _, method in parsed if method])
    out = Path(args.out)
    if args.worker:
        return _train_worker(args, settings, entries, out)

    def worker(k: int) -> list[str]:
        return [sys.executable, "-m", "gradbench", *args.argv, "--worker", str(k)]

    with lock.hold(out, "train", new_run_id(), echo=_say):  # the worker names the run
        return supervisor.supervise(worker, out, _say)


def _train_worker(args: argparse.Namespace, settings, entries: dict, out: Path) -> int:
    """One training worker: trains in this process, then writes and prints the summary."""
    from gradbench import training, training_analysis
    from gradbench.results import write_atomic

    supervisor.become_worker()
    first = args.worker == 1  # later workers resume the run the first one opened
    # one BLAS thread by default: these matrices are small, and waking a second thread
    # for each product made the quick profile 2.5× slower; the budget is in evaluations,
    # so the thread count changes only the time columns (and the last digits)
    with threadpool_limits(limits=args.threads or 1, user_api="blas"):
        trajectories = training.run_all(
            settings, entries, out, fresh=args.fresh and first, extend=args.extend and first,
            retry_crashed=args.retry_crashed and first, echo=_print,
        )  # fmt: skip
    summary = training_analysis.summarize(trajectories)
    write_atomic(summary, out / "training_summary.csv")
    shown = summary[["label", "P", "reached", "evals_to_target", "final_loss", "test_accuracy"]]
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(training_analysis.crossovers(summary).to_string(index=False))
    print(f"wrote {out / 'training.csv'} and {out / 'training_summary.csv'}")
    return 0


def _print(line: str) -> None:
    """A line on stdout now, not when the buffer fills: a worker may die at any moment."""
    print(line, flush=True)


def cmd_report(args: argparse.Namespace) -> int:
    from gradbench import report  # imports matplotlib: only when reporting

    path = report.build(Path(args.out))
    print(f"wrote {path}, {path.parent / 'fits.csv'} and the figures in {path.parent / 'plots'}/")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from gradbench import analysis, predict

    if (args.P is None) == (args.N is None) or (args.N is None) != (args.L is None):
        raise GradbenchError("give either --P, or both --N and --L")
    spec = {"P": args.P} if args.P is not None else {"N": args.N, "L": args.L}
    g = analysis.load_gradients(Path(args.out) / "gradients.csv")
    g = analysis.main_configuration(analysis.latest_machine(g))
    P = predict.size_of(spec, predict.laws_of(g, analysis.load_presentation()).bias)[0]
    first = g.iloc[-1]
    print(
        f"PREDICTED (not measured) time of one gradient at P = {P} on "
        f"{first[analysis.machine_key(g)]}, from {Path(args.out) / 'gradients.csv'}: "
        "forward-time law × cost law; "  # pragma: no mutate
        "95 % prediction intervals from both fits' errors and, "  # pragma: no mutate
        "beyond the measured range, each law's slope gap "  # pragma: no mutate
        "to its theory (see predict.py)."  # pragma: no mutate
    )
    table = predict.table_for(g, analysis.load_presentation(), spec)
    print(table.to_string(index=False))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from gradbench import merge

    merged = merge.merge([Path(f) for f in args.folders], Path(args.out))
    machines = merged["fingerprint"].nunique()
    print(
        f"wrote {Path(args.out) / 'gradients.csv'} ({len(merged)} rows from {machines} "
        f"machine(s)) and {Path(args.out) / 'MACHINES.md'}"
    )
    return 0


def _add_out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        default="results",
        help="results folder (default results/)",  # pragma: no mutate
    )


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="default",
        help="profile in the config file",  # pragma: no mutate
    )
    p.add_argument(
        "--config",
        help="a TOML file of profiles (default: the packaged grids.toml)",  # pragma: no mutate
    )
    _add_out_arg(p)


def _add_resume_args(p: argparse.ArgumentParser, verb: str, items: str) -> None:
    """What `run` and `train` share: how a results folder's rows are kept (the store's
    --fresh / --extend), crashed items retried, and the supervisor's hidden --worker."""
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--fresh", action="store_true", help=f"archive the rows on file and {verb} everything"
    )
    how.add_argument(
        "--extend",
        action="store_true",
        help=f"keep the rows on file of this machine and configuration; {verb} only missing "
        f"{items}",
    )
    p.add_argument(
        "--retry-crashed", action="store_true", help=f"{verb} again the {items} recorded crashed"
    )
    p.add_argument("--worker", type=positive_int, help=argparse.SUPPRESS)  # set by the supervisor


def _command(sub, name: str, func, text: str) -> argparse.ArgumentParser:
    """A subcommand: its name, the function that runs it and its line in --help."""
    p = sub.add_parser(name, help=text)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradbench", description=__doc__.splitlines()[0])  # pragma: no mutate
    parser.add_argument("--version", action="version", version=f"gradbench {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an unexpected error",  # pragma: no mutate
    )
    sub = parser.add_subparsers(dest="command", required=True)  # subcommands are _Parsers too
    p = _command(
        sub,
        "list",
        cmd_list,
        "list every gradient method and whether it is available",  # pragma: no mutate
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        help="a local plugin file",  # pragma: no mutate
    )
    p = _command(
        sub,
        "check",
        cmd_check,
        "every method's loss, error ρ against backprop and time",  # pragma: no mutate
    )
    _add_network_args(p)
    p = _command(
        sub,
        "run",
        cmd_run,
        "time every method across the grid (pytest-benchmark)",  # pragma: no mutate
    )
    _add_run_args(p)
    _add_network_args(p, grid=True)
    p.add_argument(
        "--budget",
        type=positive_float,
        help="seconds per gradient before a cell is skipped",  # pragma: no mutate
    )
    p.add_argument(
        "--hard-limit",
        type=positive_float,
        help="seconds before a call is stopped (default 10× budget)",  # pragma: no mutate
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="BLAS threads (default 1)",  # pragma: no mutate
    )
    _add_resume_args(p, "measure", "cells")  # pragma: no mutate (words of its help texts)
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if any cell crashed, timed out or is wrong",  # pragma: no mutate
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",  # pragma: no mutate
        help="run each size on a Dask worker: "  # pragma: no mutate
        "a scheduler address (tcp://host:8786), or "  # pragma: no mutate
        "local:K for K local worker processes (needs the 'cluster' extra)",  # pragma: no mutate
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        default=2,
        help="with --cluster: times a size lost with its worker is run "  # pragma: no mutate
        "again (default 2)",  # pragma: no mutate
    )
    p = _command(
        sub,
        "compare",
        cmd_compare,
        "two results folders side by side, cell by cell",  # pragma: no mutate
    )
    p.add_argument(
        "a",
        help="results folder A (the baseline)",  # pragma: no mutate
    )
    p.add_argument(
        "b",
        help="results folder B",  # pragma: no mutate
    )
    p = _command(
        sub,
        "train",
        cmd_train,
        "gradient-free against gradient-based training, equal budgets",  # pragma: no mutate
    )
    _add_run_args(p)
    p.add_argument(
        "--budget",
        dest="budget_train",
        type=positive_float,
        help="forward-pass equivalents per run "  # pragma: no mutate
        "(a loss = 1, a gradient = its cost model)",  # pragma: no mutate
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        help="a local plugin file",  # pragma: no mutate
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="BLAS threads (default 1)",  # pragma: no mutate
    )
    _add_resume_args(p, "train", "runs")  # pragma: no mutate (words of its help texts)
    p.set_defaults(
        N=None, L=None, B=None, methods=None, budget=None, hard_limit=None,
        **dict.fromkeys(NETWORK_OPTIONS),
    )  # fmt: skip
    p = _command(
        sub,
        "merge",
        cmd_merge,
        "results folders of several machines in one table",  # pragma: no mutate
    )
    p.add_argument(
        "folders",
        nargs="+",
        metavar="DIR",  # pragma: no mutate
        help="results folders to merge",  # pragma: no mutate
    )
    p.add_argument(
        "--out",
        required=True,
        help="folder for the merged gradients.csv",  # pragma: no mutate
    )
    p = _command(
        sub,
        "report",
        cmd_report,
        "fits, figures and REPORT.md from the CSV files alone",  # pragma: no mutate
    )
    _add_out_arg(p)
    p = _command(
        sub,
        "predict",
        cmd_predict,
        "predicted time of one gradient at a size not measured",  # pragma: no mutate
    )
    _add_out_arg(p)
    p.add_argument(
        "--P",
        type=positive_float,
        help="number of weights, e.g. 25e6",  # pragma: no mutate
    )
    p.add_argument(
        "--N",
        type=positive_int,
        help="width (with --L)",  # pragma: no mutate
    )
    p.add_argument(
        "--L",
        type=positive_int,
        help="depth (with --N)",  # pragma: no mutate
    )
    return parser


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from gradbench.environment import keep_freed_memory

    keep_freed_memory()  # before any measurement, for every method alike
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("GRADBENCH_DEBUG", "") not in ("", "0")
    supervisor.handle_termination()
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        return args.func(args)
    except (GradbenchError, ValueError) as exc:
        _say(f"gradbench: error: {exc}")
        return 2
    except KeyboardInterrupt as exc:
        _say("gradbench: interrupted; results written so far are kept")
        return supervisor.exit_status(exc)
    except Exception as exc:
        if debug:
            raise
        _say(
            f"gradbench: internal error: {one_line(exc)} "
            "(run with --debug or GRADBENCH_DEBUG=1 for the traceback)"
        )
        return 1
