"""One generic contract test that every registered method passes, plugins included: a new
method is tested by being registered."""

from pathlib import Path

import numpy as np
import pytest

from gradbench import registry
from gradbench.methods.base import KINDS, check_result
from gradbench.problem import make_problem

EXAMPLE = (
    Path(__file__).resolve().parent.parent / "examples/gradbench-richardson/gradbench_richardson.py"
)
# the built-in methods, installed plugins, and the example plugin package
INSTALLED = registry.discover()
FILES = [] if "fd-richardson" in INSTALLED else [str(EXAMPLE)]  # unless pip-installed already
ENTRIES = [e for e in registry.discover(FILES).values() if e.available]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_method_meets_the_contract(entry, dtype):
    method = entry.method
    assert method.kind in KINDS and method.description
    p = make_problem(4, 2, 8, dtype=dtype, seed=11)
    if method.supports(p) is not None:
        pytest.skip(method.supports(p))
    assert method.cost(p.net) > 0
    theta = p.theta0 + 0.01
    loss, grad = check_result(method.prepare(p)(theta), p)  # shape, finite values
    assert grad.dtype == theta.dtype
    assert loss == pytest.approx(p.loss(theta), rel=1e-5 if dtype == "float32" else 1e-12)
    assert np.any(grad != 0)
