"""Tidy result tables on disk: read, validate, write atomically.

Files are only ever replaced whole (write to a temporary file, then rename), so an
interrupted run leaves either the old file or the new one, never half of one. A file
that does not parse or lacks the schema's columns is refused with one line: it is never
silently overwritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from gradbench.errors import GradbenchError

# ok: measured; wrong: measured, gradient outside the method's tolerance; skipped: not run
# (projection, unavailable, declined); error: raised or broke the contract; timeout: past
# the hard limit; crashed: the process measuring it died.
STATUSES = ("ok", "skipped", "error", "timeout", "wrong", "crashed")

# results/gradients.csv, one row per cell. Column names are a public interface.
# Ratios are paired inside the cell: the median of per-round ratios, with the bounds of its
# 95 % interval (_lo, _hi) over ``pairs`` rounds; absolute times are this machine's.
GRADIENT_COLUMNS = [
    "method", "kind", "N", "L", "B", "P", "dtype", "activation", "loss", "bias", "seed",
    "status", "reason", "note",
    "time_median_s", "time_min_s", "time_iqr_s", "rounds", "projected_s",
    "forward_time_s", "ratio_to_forward", "ratio_to_backprop", "ratio_to_floor", "loss_evals",
    "peak_mem_bytes", "grad_error", "grad_error_mean", "cosine",
    "budget_s", "run_id", "timestamp", "machine", "numpy", "blas_threads",
    "ratio_to_forward_lo", "ratio_to_forward_hi", "ratio_to_backprop_lo",
    "ratio_to_backprop_hi", "ratio_to_floor_lo", "ratio_to_floor_hi", "pairs",
    "tolerance", "layer_steps", "prepare_s", "prepare_cost", "projected_prepare_s",
    "memory_model_bytes", "projected_bytes", "peak_rss_bytes", "allocator_bytes",
    "ops_forward", "ops_derivatives", "ops_cse",
    "hard_limit_s", "max_time_s", "cell_time_s", "prepare_budget_s", "passes",
    "fingerprint", "gradbench",
]  # fmt: skip
# Columns added to a table after its first release, with the value every older row had:
# a file written before them reads as if it held that value.
ADDED = {"passes": 1}

# results/training.csv, one row per recorded point of a trajectory. `loss` is the value
# (best so far); the loss *function* is `loss_function`. Test columns: final point only.
TRAINING_COLUMNS = [
    "run_id", "optimizer", "gradient_method", "kind", "N", "L", "P", "seed",
    "evals", "wall_s", "loss", "accuracy", "test_loss", "test_accuracy", "cosine",
    "status", "reason", "budget_evals", "lr", "B", "n_train", "n_test",
    "dtype", "activation", "loss_function", "bias", "config", "fingerprint", "gradbench",
]  # fmt: skip


def write_text_atomic(text: str, path: Path) -> None:
    """Replace ``path`` with ``text`` so that readers only ever see a complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV, atomically."""
    write_text_atomic(frame.to_csv(index=False), path)


# Key columns that are text even when a value looks like a number (a hex fingerprint of
# digits only, or "12e4…"): read as numbers, a resume would miss every row.
TEXT_KEYS = ("fingerprint", "run_id", "config")


def read_table(path: Path, columns: list[str], *, missing_ok: bool = False) -> pd.DataFrame:
    """Read a results CSV, refusing (one line) a file that is corrupt or not ours."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return pd.DataFrame(columns=columns)
        raise GradbenchError(f"results file not found: {path} (run `gradbench run` first)")
    try:
        frame = pd.read_csv(path, keep_default_na=True, dtype=dict.fromkeys(TEXT_KEYS, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GradbenchError(
            f"{path} is corrupt ({_first_line(exc)}); move it away or use --fresh"
        ) from None
    except OSError as exc:
        raise GradbenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    for column, value in ADDED.items():
        if column in columns and column not in frame.columns:
            frame[column] = value
    lacking = [c for c in columns if c not in frame.columns]
    if lacking:
        raise GradbenchError(
            f"{path} is corrupt or not a gradbench table: no column {lacking[0]!r}"
        )
    if "status" in columns and not frame["status"].isin(STATUSES).all():
        bad = frame.loc[~frame["status"].isin(STATUSES), "status"].iloc[0]
        raise GradbenchError(f"{path} is corrupt or truncated: status {bad!r} in a row")
    return frame


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
