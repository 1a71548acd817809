"""Memory: what one gradient needs, projected before a cell runs and measured while it runs.

**Projection.** A method may declare ``memory(net, B)``: the bytes one gradient needs
beyond θ and the data (activations, buffers, the gradient itself). A cell's projected
bytes are that plus the problem it runs on,

    problem bytes = (P + B·N + |target|) · itemsize    (θ, inputs X, target),

and a cell projected over the memory budget (default: half the memory available when the
run starts) is skipped, as a cell projected over the time budget is. A plugin without a
memory model still runs. The shared forward pass needs two layers' activations,
2·B·N numbers.

**Measurement.** ``peak_rss_bytes`` is the peak resident memory of the measuring process
during one gradient call, above its resident memory just before the call:

    peak_rss = VmHWM − VmRSS₀    (both from /proc/self/status)

where the high-water mark VmHWM is reset to the current RSS just before the call (writing
"5" to /proc/self/clear_refs). It counts every allocator alike — numpy's, PyTorch's,
XLA's, a C extension's — which tracemalloc (``peak_mem_bytes``, numpy's allocations
only) cannot. gradbench asks glibc to keep freed blocks (see
:func:`gradbench.environment.keep_freed_memory`); resident free blocks would hide new
allocations, so ``malloc_trim(0)`` returns them to the kernel before the baseline is
read. The figure includes the gradient returned and any buffers the method keeps; its
resolution is one page (4 KiB). Where clear_refs is not writable (not Linux, or
forbidden), it is NaN.

The call measured is the sweep's untimed validation call, the first after ``prepare``;
when that took under ``WARM_S``, a second call is measured instead, so that one-time
lazy set-up inside a library (PyTorch starts its autograd threads on the first backward
pass: ~15 MiB here) is not charged to the gradient.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from gradbench.errors import GradbenchError
from gradbench.model import Network

WARM_S = 0.1  # a first call faster than this is followed by a measured, warm one
UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """'512M' → 536870912, '4G', '2.5GiB', '1000000' (bytes); refuses anything else."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if not match or float(match[1]) <= 0:
        raise ValueError(f"expected a size such as 512M, 4G or a number of bytes, got {text!r}")
    return int(float(match[1]) * UNITS[match[2]])


def human(n: float) -> str:
    """Bytes as a short human string: '745 GiB', '12.5 MiB'."""
    if not math.isfinite(n):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_bytes() -> int:
    """Memory available to a new process now (MemAvailable), or physical memory."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_budget() -> int:
    """Half of the memory available now."""
    return available_bytes() // 2


def problem_bytes(net: Network, B: int) -> int:
    """θ, the inputs X (B, N) and the target (labels (B,) or logits (B, N))."""
    target = B if net.loss == "cross_entropy" else B * net.N
    return (net.P + B * net.N + target) * np.dtype(net.dtype).itemsize


def forward_bytes(net: Network, B: int) -> int:
    """The forward pass alone: two layers' activations, B·N numbers each."""
    return 2 * B * net.N * np.dtype(net.dtype).itemsize


def floor_bytes(net: Network, B: int) -> int:
    """Backprop's bare matrix products (methods.backprop.matmul_floor): three (B, N)
    arrays and two (N, N) ones."""
    return (3 * B * net.N + 2 * net.N**2) * np.dtype(net.dtype).itemsize


def model_bytes(method: object, net: Network, B: int) -> float | None:
    """What ``method.memory(net, B)`` declares, or None when it declares nothing."""
    declare = getattr(method, "memory", None)
    if not callable(declare):
        return None
    value = declare(net, B)
    return None if value is None else float(value)


def over_budget(projected: float | None, budget: float) -> str:
    """The reason to skip a cell projected at ``projected`` bytes, or '' to run it."""
    if projected is None or projected <= budget:
        return ""
    return f"memory: projected {human(projected)} > budget {human(budget)}"


def skipped(row: dict) -> bool:
    """Whether a results row was skipped for memory: such a row is decided again by every
    run, since the budget depends on the memory available when it starts."""
    return row.get("status") == "skipped" and str(row.get("reason", "")).startswith("memory:")


def check_size(net: Network, B: int, budget: float) -> None:
    """Refuse (GradbenchError, one line) a size whose θ, data and one forward pass's
    activations alone exceed ``budget``."""
    need = problem_bytes(net, B) + forward_bytes(net, B)
    if need > budget:
        raise GradbenchError(
            f"N={net.N} L={net.L} B={B} needs {human(need)} for θ, the data and one forward "
            f"pass (P={net.P:,}), over the memory budget {human(budget)}; "
            "choose a smaller size or raise --memory-budget"
        )


# -- measurement ------------------------------------------------------------------------

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


@functools.cache
def _trim():
    """glibc's malloc_trim, or a no-op where there is none."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def _status_bytes(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in {STATUS}")


@functools.cache
def rss_measurable() -> bool:
    """Whether this process may reset its resident high-water mark."""
    try:
        CLEAR_REFS.write_text("5")
        _status_bytes("VmHWM")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def peak_rss() -> Iterator[list[float]]:
    """Peak resident bytes above the baseline inside the block, in ``result[0]`` (NaN
    where it cannot be measured)."""
    result = [math.nan]
    if not rss_measurable():
        yield result
        return
    if trim := _trim():
        trim(0)
    CLEAR_REFS.write_text("5")  # VmHWM := VmRSS
    base = _status_bytes("VmRSS")
    try:
        yield result
    finally:
        result[0] = max(0, _status_bytes("VmHWM") - base)


def gauge(fn: Callable) -> tuple[Callable, list[float]]:
    """``fn`` wrapped so that each call's :func:`peak_rss` is appended to the list
    returned beside it (which starts with NaN: nothing measured yet)."""
    peaks = [math.nan]

    def measured(*args):
        result = [math.nan]
        try:
            with peak_rss() as result:
                return fn(*args)
        finally:
            peaks.append(result[0])

    return measured, peaks
