"""The ``gradbench`` command: list, check, run, train, report, merge.

Every problem a user can cause (a bad argument, an unknown method, a broken plugin file,
a corrupt results file) ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from dataclasses import replace
from pathlib import Path

import pandas as pd

from gradbench import config, registry
from gradbench.errors import GradbenchError, one_line
from gradbench.methods.base import check_result, rho
from gradbench.model import ACTIVATIONS, DTYPES, LOSSES, Network
from gradbench.problem import make_problem

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
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_network_args(p: argparse.ArgumentParser, *, grid: bool = False) -> None:
    if grid:
        p.add_argument("--N", type=int_list, help="widths, e.g. 4,8,16")
        p.add_argument("--L", type=int_list, help="depths, e.g. 1,2,4")
        p.add_argument("--B", type=positive_int, help="batch size")
    else:
        p.add_argument("--N", type=positive_int, default=8, help="width (default 8)")
        p.add_argument("--L", type=positive_int, default=3, help="depth (default 3)")
        p.add_argument("--B", type=positive_int, default=64, help="batch size (default 64)")
        p.add_argument("--activation", choices=list(ACTIVATIONS), default="tanh")
        p.add_argument("--loss", choices=list(LOSSES), default="cross_entropy")
        p.add_argument("--dtype", choices=list(DTYPES), default="float64")
        p.add_argument("--no-bias", dest="bias", action="store_false")
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", type=name_list, help="comma-separated method names")
    p.add_argument("--plugin", action="append", default=[], help="a local plugin file (repeatable)")


def cmd_list(args: argparse.Namespace) -> int:
    example = Network(64, 4)
    rows = [
        {
            "method": e.name,
            "kind": e.method.kind if e.available else "-",
            "cost (fwd passes, N=64 L=4)": f"{e.method.cost(example):.0f}" if e.available else "-",
            "status": "available" if e.available else f"unavailable: {e.reason}",
            "description": e.method.description if e.available else e.origin,
        }
        for e in registry.discover(args.plugin).values()
    ]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
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
    reference = registry.select(entries, [REFERENCE])[0].method
    theta = problem.theta0
    _, g_ref = reference.prepare(problem)(theta)
    print(
        f"N={args.N} L={args.L} B={args.B} P={problem.P} {args.activation} {args.loss} "
        f"{args.dtype} bias={args.bias}; reference loss {problem.loss(theta):.12g}"
    )
    rows = [_check_one(e, problem, theta, g_ref) for e in registry.select(entries, args.methods)]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _check_one(entry: registry.Entry, problem, theta, g_ref) -> dict:
    row = {"method": entry.name, "loss": "", "rho_max": "", "rho_mean": "", "time_s": ""}
    if not entry.available:
        return row | {"status": f"unavailable: {entry.reason}"}
    method = entry.method
    if reason := method.supports(problem):
        return row | {"status": f"declined: {reason}"}
    try:
        grad_fn = method.prepare(problem)
        loss, grad = check_result(grad_fn(theta), problem)
        seconds = min(timeit.repeat(lambda: grad_fn(theta), number=1, repeat=3))
    except Exception as exc:
        return row | {"status": f"error: {one_line(exc)}"}
    err, note = rho(grad, g_ref), method.note(problem)
    return row | {
        "loss": f"{loss:.12g}",
        "rho_max": f"{err.max():.1e}",
        "rho_mean": f"{err.mean():.1e}",
        "time_s": f"{seconds:.2e}",
        "status": f"ok ({note})" if note else "ok",
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
    from gradbench import harness  # imports pytest: only when a sweep runs
    from gradbench.sweep import Sweep

    settings = _settings(args)
    entries = registry.discover(args.plugin)
    names = list(settings.methods) if settings.methods else None
    if names and REFERENCE not in names:
        names.insert(0, REFERENCE)  # every cell's error ρ is measured against backprop
    if args.cluster:
        return _run_on_cluster(args, settings, registry.select(entries, names))
    sweep = Sweep(settings, registry.select(entries, names), Path(args.out), fresh=args.fresh)
    status = harness.run(sweep, args.threads)
    if status not in (0, 5):
        raise GradbenchError(
            f"the sweep stopped early (pytest exit {status}); finished cells are in {sweep.csv}"
        )
    print(f"wrote {sweep.csv} and {sweep.out / 'raw'}/{sweep.run_id}.json")
    return 0


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
    from gradbench import training  # imports scipy.optimize: only when training runs
    from gradbench.results import write_atomic

    settings = _settings(args)
    if args.budget_train is not None:
        settings = replace(settings, train=replace(settings.train, budget_s=args.budget_train))
    # refuse an unknown optimizer or gradient method before running anything
    parsed = [training.parse(name) for name in settings.train.optimizers]
    entries = registry.discover(args.plugin)
    registry.select(entries, [method for _, method in parsed if method])
    out = Path(args.out)
    trajectories = training.run_all(settings, entries, out, fresh=args.fresh)
    summary = training.summarize(trajectories)
    write_atomic(summary, out / "training_summary.csv")
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"wrote {out / 'training.csv'} and {out / 'training_summary.csv'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gradbench import report  # imports matplotlib: only when reporting

    path = report.build(Path(args.out))
    print(f"wrote {path}, {path.parent / 'fits.csv'} and the figures in {path.parent / 'plots'}/")
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


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="default", help="profile in the config file")
    p.add_argument("--config", help="a TOML file of profiles (default: the packaged grids.toml)")
    p.add_argument("--out", default="results", help="results folder (default results/)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("list", help="list every gradient method and whether it is available")
    p.add_argument("--plugin", action="append", default=[], help="a local plugin file")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("check", help="every method's loss, error ρ against backprop and time")
    _add_network_args(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("run", help="time every method across the grid (pytest-benchmark)")
    _add_run_args(p)
    _add_network_args(p, grid=True)
    p.add_argument(
        "--budget", type=positive_float, help="seconds per gradient before a cell is skipped"
    )
    p.add_argument(
        "--hard-limit",
        type=positive_float,
        help="seconds before a call is stopped (default 10× budget)",
    )
    p.add_argument("--threads", type=positive_int, help="BLAS threads (default: all cores)")
    p.add_argument("--fresh", action="store_true", help="discard results on file and measure again")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run each size on a Dask worker: a scheduler address (tcp://host:8786), or "
        "local:K for K local worker processes (needs the 'cluster' extra)",
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        default=2,
        help="with --cluster: times a size lost with its worker is run again (default 2)",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("train", help="gradient-free against gradient-based training, equal budgets")
    _add_run_args(p)
    p.add_argument("--budget", dest="budget_train", type=positive_float, help="seconds per run")
    p.add_argument("--plugin", action="append", default=[], help="a local plugin file")
    p.add_argument("--fresh", action="store_true", help="discard runs on file")
    p.set_defaults(
        func=cmd_train, N=None, L=None, B=None, methods=None, budget=None, hard_limit=None
    )
    p = sub.add_parser("merge", help="results folders of several machines in one table")
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folders to merge")
    p.add_argument("--out", required=True, help="folder for the merged gradients.csv")
    p.set_defaults(func=cmd_merge)
    p = sub.add_parser("report", help="fits, figures and REPORT.md from the CSV files alone")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gradbench.environment import keep_freed_memory

    keep_freed_memory()  # before any measurement, for every method alike
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (GradbenchError, ValueError) as exc:
        print(f"gradbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradbench: interrupted; results written so far are kept", file=sys.stderr)
        return 130
