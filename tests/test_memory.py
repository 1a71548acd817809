"""Memory: the budget's bookkeeping (one expected number or reason per rule) and the
peak-RSS measurement against allocations of a known size."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradbench import memory
from gradbench.environment import KEPT_BLOCK_BYTES, keep_freed_memory
from gradbench.errors import GradbenchError
from gradbench.model import Network

MiB = 2**20
CRASHERS = str(Path(__file__).with_name("crash_methods.py"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 * MiB), ("4G", 4 * 2**30), ("2.5GiB", int(2.5 * 2**30)), ("1000", 1000),
     ("64k", 64 * 1024), ("1 TB", 2**40)],
)  # fmt: skip
def test_parse_bytes(text, expected):
    assert memory.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1G", "0", "4X", "G"])
def test_parse_bytes_refuses(text):
    with pytest.raises(ValueError, match="expected a size"):
        memory.parse_bytes(text)


def test_problem_bytes_counts_theta_inputs_and_target():
    # N=10, L=3 with bias: P = 3·(100 + 10) = 330; X is 64×10; labels 64; float64
    assert memory.problem_bytes(Network(10, 3), 64) == (330 + 640 + 64) * 8
    # MSE targets are logits (64×10); float32 is 4 bytes a number
    net = Network(10, 3, loss="mse", dtype="float32")
    assert memory.problem_bytes(net, 64) == (330 + 640 + 640) * 4


def test_forward_and_floor_bytes():
    assert memory.forward_bytes(Network(10, 3), 64) == 2 * 64 * 10 * 8
    assert memory.floor_bytes(Network(10, 3), 64) == (3 * 64 * 10 + 2 * 100) * 8


def test_model_bytes_reads_the_declared_model_or_none():
    class Declares:
        def memory(self, net, B):
            return 123

    class Declines:
        def memory(self, net, B):
            return None

    net = Network(4, 2)
    assert memory.model_bytes(Declares(), net, 8) == 123.0
    assert memory.model_bytes(Declines(), net, 8) is None
    assert memory.model_bytes(object(), net, 8) is None  # a plugin without a model


def test_over_budget_gives_a_reason_only_over_the_budget():
    assert memory.over_budget(2 * MiB, 2 * MiB) == ""
    assert memory.over_budget(None, 1) == ""
    assert memory.over_budget(3 * MiB, 2 * MiB) == "memory: projected 3 MiB > budget 2 MiB"


def test_rows_skipped_for_memory_are_decided_again():
    assert memory.skipped({"status": "skipped", "reason": "memory: projected 3 GiB > …"})
    assert not memory.skipped({"status": "skipped", "reason": "projected 9 s > budget 2 s"})
    assert not memory.skipped({"status": "ok", "reason": ""})


def test_check_size_refuses_theta_and_activations_over_the_budget():
    net = Network(100_000_000 // 1000, 100)  # N = 1e5: θ alone is 8 TB
    with pytest.raises(GradbenchError, match=r"N=100000 L=100 B=64 needs 7.28 TiB"):
        memory.check_size(net, 64, 16 * 2**30)
    memory.check_size(Network(8, 2), 64, 16 * 2**30)  # small: no error


def test_human():
    assert memory.human(745 * 2**30) == "745 GiB"
    assert memory.human(1536) == "1.5 KiB"
    assert memory.human(math.nan) == "?"


needs_proc = pytest.mark.skipif(not memory.rss_measurable(), reason="no /proc/self/clear_refs")


@needs_proc
def test_peak_rss_sees_a_known_allocation():
    with memory.peak_rss() as peak:
        block = np.ones(64 * MiB // 8)  # every page written
    del block
    assert 62 * MiB <= peak[0] <= 70 * MiB


@needs_proc
def test_peak_rss_sees_an_allocation_into_memory_malloc_kept():
    keep_freed_memory()  # glibc keeps freed blocks: without the trim they would hide this
    np.ones(32 * MiB // 8)  # allocated and freed: kept by malloc (under KEPT_BLOCK_BYTES)
    with memory.peak_rss() as peak:
        block = np.ones(32 * MiB // 8)
    del block
    assert 30 * MiB <= peak[0] <= 38 * MiB


@needs_proc
def test_malloc_gives_a_block_over_the_kept_size_back_to_the_kernel():
    """A 256 MiB temporary, freed, leaves the resident set where it was: blocks over
    KEPT_BLOCK_BYTES (64 MiB) are not kept, so a run calling multi-gigabyte gradients
    again and again does not grow by them."""
    assert keep_freed_memory() and KEPT_BLOCK_BYTES == 64 * MiB
    before = memory._status_bytes("VmRSS")
    block = np.ones(256 * MiB // 8)  # every page written
    grown = memory._status_bytes("VmRSS") - before
    del block
    assert grown >= 250 * MiB and memory._status_bytes("VmRSS") - before < 16 * MiB


@needs_proc
def test_peak_rss_of_nothing_is_small():
    with memory.peak_rss() as peak:
        pass
    assert 0 <= peak[0] < MiB


def test_the_sweep_skips_a_cell_over_the_memory_budget_and_measures_the_rest(tmp_path):
    out = tmp_path / "r"
    # the plugin declares (and touches) 64 MiB: over a 40 MiB budget, under a 256 MiB one
    run = subprocess.run(
        [sys.executable, "-m", "gradbench", "run", "--out", str(out), "--N", "2", "--L", "1",
         "--threads", "1", "--plugin", CRASHERS, "--methods", "allocates",
         "--memory-budget", "40M"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    t = pd.read_csv(out / "gradients.csv").set_index("method")
    cell = t.loc["allocates"]
    assert cell.status == "skipped" and cell.reason == (
        f"memory: projected {memory.human(cell.projected_bytes)} > budget 40 MiB"
    )
    assert cell.memory_model_bytes == 64 * MiB
    assert cell.projected_bytes == 64 * MiB + (6 + 2 * 64 + 64) * 8
    assert (t.drop("allocates").status == "ok").all()
    # a larger budget: the same cell is decided again, measured, and its peak RSS seen
    run = subprocess.run(
        [sys.executable, "-m", "gradbench", "run", "--out", str(out), "--N", "2", "--L", "1",
         "--threads", "1", "--plugin", CRASHERS, "--methods", "allocates",
         "--memory-budget", "256M"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cell = pd.read_csv(out / "gradients.csv").set_index("method").loc["allocates"]
    assert cell.status == "ok"
    if memory.rss_measurable():
        assert 63 * MiB <= cell.peak_rss_bytes <= 72 * MiB  # 64 MiB, give or take a page


@needs_proc
def test_gauge_records_each_calls_peak():
    gauged, peaks = memory.gauge(lambda n: np.ones(n).sum())
    assert math.isnan(peaks[0])
    assert gauged(32 * MiB // 8) == 32 * MiB // 8
    gauged(8)
    assert len(peaks) == 3 and 30 * MiB <= peaks[1] <= 36 * MiB and peaks[2] < MiB
