"""One generic contract test that every registered method passes, plugins included: a new
method is tested by being registered. Correctness is part of the contract: the gradient
must be within the method's tolerance of backprop's (gradbench.testing.check_grads)."""

from pathlib import Path

import numpy as np
import pytest
from fake_methods import OffByTenPercent, WritesData, WritesTheta

from gradbench import registry
from gradbench.methods.base import KINDS, ask
from gradbench.model import Network
from gradbench.problem import make_problem
from gradbench.testing import check_grads

EXAMPLE = (
    Path(__file__).resolve().parent.parent / "examples/gradbench-richardson/gradbench_richardson.py"
)
# the built-in methods, installed plugins, and the example plugin package
INSTALLED = registry.discover()
FILES = [] if "fd-richardson" in INSTALLED else [str(EXAMPLE)]  # unless pip-installed already
ENTRIES = [e for e in registry.discover(FILES).values() if e.available]


def meets_the_contract(method, dtype: str) -> None:
    """Assert everything the contract promises, on one small problem."""
    assert method.kind in KINDS and method.description
    p = make_problem(4, 2, 8, dtype=dtype, seed=11)
    if method.supports(p) is not None:
        pytest.skip(method.supports(p))
    assert method.cost(p.net) > 0
    memory = ask(method, "memory", p.net, p.B)
    assert memory is None or memory > 0
    verdict = check_grads(method, p, theta=p.theta0 + 0.01)
    assert verdict.status == "ok", f"{method.name}: {verdict.status}: {verdict.reason}"
    assert verdict.grad.dtype == p.theta0.dtype and np.any(verdict.grad != 0)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_method_meets_the_contract(entry, dtype):
    meets_the_contract(entry.method, dtype)


def test_the_contract_test_fails_a_wrong_gradient():
    with pytest.raises(AssertionError, match="wrong: grad_error .* > tolerance 1e-08"):
        meets_the_contract(OffByTenPercent(), "float64")


@pytest.mark.parametrize("fake", [WritesTheta, WritesData])
def test_a_method_writing_into_shared_data_fails_with_a_clear_reason(fake):
    p = make_problem(3, 2, 4)
    X, theta0 = p.X.copy(), p.theta0.copy()
    verdict = check_grads(fake(), p)
    assert verdict.status == "error"
    assert verdict.reason.startswith("grad_fn wrote into read-only data")
    np.testing.assert_array_equal(p.X, X)  # nothing was changed for the next method
    np.testing.assert_array_equal(p.theta0, theta0)


def test_default_hooks_of_a_plugin_that_does_not_subclass_method():
    class Bare:  # a plugin object with only what check_method requires
        name, kind, description = "bare", "approximate", "no optional hooks"

    net = Network(4, 2)
    assert ask(Bare(), "memory", net, 8) is None
    assert ask(Bare(), "prepare_cost", net) is None
    assert ask(Bare(), "tolerance", "float64") == 1e-6  # the approximate kind's default
