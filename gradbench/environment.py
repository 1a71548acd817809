"""What machine and software a run measured on: recorded with every result, because
timings from different machines or thread counts are not comparable."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import scipy
from threadpoolctl import threadpool_info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas() -> dict:
    """The BLAS numpy uses and its current thread count (threadpoolctl)."""
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return {"blas": "unknown", "blas_threads": 0}
    pool = pools[0]
    name = f"{pool.get('internal_api', '?')} {pool.get('version') or ''}".strip()
    return {"blas": name, "blas_threads": int(pool.get("num_threads", 0))}


def git_commit(where: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.cache  # one mallopt per process; later calls only report the outcome
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks instead of returning them to the kernel.

    By default glibc maps every block over 128 KiB fresh from the kernel and unmaps it
    on free, so a loop that allocates the same large temporaries again and again pays a
    page fault per 4 KiB each time: measured here, batched finite differences at N = 64
    ran 3× slower for it. This is process-wide and helps every method alike; it is
    recorded with the results. Returns whether it was applied (glibc only).
    """
    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, 2**30) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):
        return False
    return bool(ok)


def describe() -> dict:
    """Everything worth recording about this machine and software, right now."""
    return {
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        **blas(),
        "git_commit": git_commit(),
    }
