"""What machine and software a run measured on: recorded with every result, because
timings from different machines or thread counts are not comparable."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg  # noqa: F401  loads scipy's own BLAS, so blas() always sees both
from threadpoolctl import threadpool_info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Instruction-set extensions that BLAS kernels dispatch on (x86 and ARM names in cpuinfo).
BLAS_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "neon",
              "asimd", "sve")  # fmt: skip


def cpu_flags() -> tuple[str, ...]:
    """The :data:`BLAS_FLAGS` this CPU has (empty where /proc/cpuinfo is not readable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                have = set(line.split(":", 1)[1].split())
                return tuple(f for f in BLAS_FLAGS if f in have)
    except OSError:
        pass
    return ()


def blas() -> dict:
    """The BLAS libraries loaded (numpy's and scipy's may differ), the kernels they chose,
    and their current thread count (threadpoolctl). Sorted, so that the answer does not
    depend on which library happened to be loaded first."""
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return {"blas": "unknown", "blas_kernel": "unknown", "blas_threads": 0}
    names = {f"{p.get('internal_api', '?')} {p.get('version') or ''}".strip() for p in pools}
    kernels = {str(p.get("architecture") or "unknown") for p in pools}
    return {
        "blas": ", ".join(sorted(names)),
        "blas_kernel": ", ".join(sorted(kernels)),
        "blas_threads": max(int(p.get("num_threads", 0)) for p in pools),
    }


def fingerprint_parts() -> dict:
    """What a timing depends on, beyond the code measured: CPU model and the instruction
    sets its BLAS kernel can use, cores, BLAS library, kernel and threads, Python, numpy
    and gradbench versions. Call it under the thread limit the measurements run with."""
    from gradbench import __version__

    return {
        "machine": cpu_model(),
        "cpu_flags": " ".join(cpu_flags()),
        "cores": os.cpu_count(),
        **blas(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gradbench": __version__,
    }


def fingerprint() -> str:
    """A short hash of :func:`fingerprint_parts`: two runs with the same fingerprint timed
    the same machine and software. ``GRADBENCH_FINGERPRINT`` overrides it (for tests)."""
    if forced := os.environ.get("GRADBENCH_FINGERPRINT"):
        return forced
    text = json.dumps(fingerprint_parts(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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


KEPT_BLOCK_BYTES = 64 * 2**20  # the largest freed block malloc keeps (see keep_freed_memory)


@functools.cache  # one mallopt per process; later calls only report the outcome
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 64 MiB instead of returning them to
    the kernel.

    By default glibc maps every block over 128 KiB fresh from the kernel and unmaps it
    on free, so a loop that allocates the same large temporaries again and again pays a
    page fault per 4 KiB each time: measured here, batched finite differences at N = 64
    ran 3× slower for it. Blocks over 64 MiB still come from the kernel and go back: kept,
    the multi-gigabyte temporaries of the dense forward modes, called again pass after
    pass between other cells, grew a run at N ≤ 64, L ≤ 8 to a 6.4–7.0 GB peak (1.7 GB
    with the cap). This is process-wide and the same for every method; it is recorded
    with the results. Returns whether it was applied (glibc only).
    """
    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)
        ok = ok and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):
        return False
    return bool(ok)


def describe() -> dict:
    """Everything worth recording about this machine and software, right now."""
    return {
        **fingerprint_parts(),
        "fingerprint": fingerprint(),
        "platform": platform.platform(),
        "scipy": scipy.__version__,
        "git_commit": git_commit(),
    }
