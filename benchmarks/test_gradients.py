"""The sweep's benchmark suite: one pytest-benchmark test per cell (method × N × L).

Cells come from ``gradbench run`` (or ``make bench``), which parametrizes ``cell`` and
``timing_pass`` (the grid is timed pass by pass) and provides the ``gradbench_sweep``
fixture; see gradbench/harness.py.
"""


def test_gradient(benchmark, gradbench_sweep, cell, timing_pass):
    gradbench_sweep.measure(benchmark, cell, timing_pass)
